// Command triage-bench-floor is the "floor" of `make bench`: the smallest
// grpc-go server comparable to triage-sidecar. It serves TLS 1.3 (mutual,
// when -client-ca is given, as the sidecar does) with only the standard
// grpc.health.v1 service, and no interceptors, audit or capabilities. Its
// memory and latency are what any grpc-go TLS server costs; the sidecar is
// measured against it. It is built from this module, so it uses the same grpc
// version as the sidecar.
//
// It prints "listening on HOST:PORT" on stdout once it accepts connections,
// and stops on SIGINT or SIGTERM.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	certFile := flag.String("tls-cert", "", "server certificate (PEM)")
	keyFile := flag.String("tls-key", "", "server private key (PEM)")
	clientCA := flag.String("client-ca", "", "if set, require client certificates chaining to this CA bundle (PEM)")
	flag.Parse()
	if err := run(*addr, *certFile, *keyFile, *clientCA); err != nil {
		fmt.Fprintln(os.Stderr, "triage-bench-floor:", err)
		os.Exit(1)
	}
}

func run(addr, certFile, keyFile, clientCA string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return fmt.Errorf("-client-ca: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-client-ca %s: no PEM certificate", clientCA)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	healthpb.RegisterHealthServer(s, health.NewServer()) // "" is SERVING
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		s.Stop()
	}()
	fmt.Printf("listening on %s\n", l.Addr())
	return s.Serve(l)
}
