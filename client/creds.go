package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/local"

	"github.com/triage-sh/triage/internal/auth"
)

// maxTokenFile bounds the size of a token file; a token is a line.
const maxTokenFile = 64 << 10

// transportCredentials chooses TLS or plaintext from o:
//
//   - Insecure: plaintext;
//   - a Unix socket with no TLS material (CA, Cert, Key, Dev): plaintext;
//   - otherwise TLS, with Dev's files filling whatever CA, Cert and Key
//     were not given.
//
// Plaintext uses grpc's local credentials, which refuse any address that is
// not loopback or a Unix socket: the sidecar serves plaintext nowhere else.
func transportCredentials(o Options) (credentials.TransportCredentials, error) {
	hasTLS := o.CA != "" || o.Cert != "" || o.Key != "" || o.Dev != ""
	if o.Insecure {
		if hasTLS {
			return nil, errors.New("--insecure connects in plaintext, but TLS files were given (--ca, --cert, --key or --dev): drop --insecure, or the TLS flags")
		}
		return local.NewCredentials(), nil
	}
	if isUnix(o.Addr) && !hasTLS {
		return local.NewCredentials(), nil
	}
	ca, cert, key := o.CA, o.Cert, o.Key
	if o.Dev != "" {
		files, err := auth.EnsureDev(o.Dev)
		if err != nil {
			return nil, fmt.Errorf("--dev %s: %w", o.Dev, err)
		}
		if ca == "" {
			ca = files.CA
		}
		if cert == "" && key == "" {
			cert, key = files.ClientCert, files.ClientKey
		}
	}
	cfg, err := auth.ClientTLS(ca, cert, key, o.ServerName)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return credentials.NewTLS(cfg), nil
}

// bearerToken returns the token to send, from o.Token or o.TokenFile, or ""
// for none. The token itself never appears in an error.
func bearerToken(o Options) (string, error) {
	switch {
	case o.Token != "" && o.TokenFile != "":
		return "", errors.New("both a token and --token-file were given: use one")
	case o.TokenFile != "":
		return readToken(o.TokenFile)
	case o.Token == "":
		return "", nil
	}
	tok := strings.TrimSpace(o.Token)
	switch {
	case tok == "":
		return "", errors.New("the bearer token is blank")
	case strings.ContainsAny(tok, "\r\n"):
		return "", errors.New("the bearer token spans more than one line")
	}
	return tok, nil
}

// readToken reads a bearer token: the file's content without surrounding
// white space.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("--token-file %s: %w", path, err)
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("--token-file %s is larger than %d bytes: it should hold one token", path, maxTokenFile)
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case tok == "":
		return "", fmt.Errorf("--token-file %s is empty: write the bearer token into it", path)
	case strings.ContainsAny(tok, "\r\n"):
		return "", fmt.Errorf("--token-file %s holds more than one line: it should hold only the token", path)
	}
	return tok, nil
}

// bearer sends a token as "authorization: Bearer <token>" on every call.
type bearer struct {
	token           string
	requireSecurity bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// token is never sent in plaintext unless the caller chose Insecure.
func (b bearer) RequireTransportSecurity() bool { return b.requireSecurity }
