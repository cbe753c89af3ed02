// Package config resolves a program's settings from, in rising precedence, the
// built-in defaults, an optional YAML configuration file, TRIAGE_* environment
// variables and command-line flags, and remembers where each effective value
// came from so explain can show it.
//
// The flag set is the single table of settings: every flag is a setting, its
// file key is the flag name and its environment variable is the prefix plus
// the flag name upper-cased with '-' turned into '_' (--tls-cert,
// tls-cert:, TRIAGE_TLS_CERT). Values from the file and the environment are
// applied with pflag's own Set, so they are parsed and validated exactly as
// flags are.
package config

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/triage-sh/triage/internal/redact"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Value is one effective setting.
type Value struct {
	// Name is the flag name and file key.
	Name string
	// Value is the effective value; secrets are redacted.
	Value string
	// Source says where it came from.
	Source triagev1.Source
	// Origin is the exact place: "--addr", "TRIAGE_ADDR", "file.yaml:3", "default".
	Origin string
}

// Proto returns v as the API's Setting.
func (v Value) Proto() *triagev1.Setting {
	return &triagev1.Setting{Name: v.Name, Value: v.Value, Source: v.Source, Origin: v.Origin}
}

// Options tunes Resolve.
type Options struct {
	// EnvPrefix is prepended to environment variable names, e.g. "TRIAGE_".
	EnvPrefix string
	// Environ is the environment as KEY=VALUE; nil means os.Environ().
	Environ []string
	// File is the configuration file path; "" means none.
	File string
	// Skip lists flags that are not settings (e.g. "config", "help").
	Skip []string
}

// EnvName is the environment variable for flag name.
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Resolve applies the file and environment to the flags the command line did
// not set, and returns every setting's effective value and source, sorted by name.
func Resolve(fs *pflag.FlagSet, o Options) ([]Value, error) {
	skip := map[string]bool{"help": true}
	for _, s := range o.Skip {
		skip[s] = true
	}
	env := o.Environ
	if env == nil {
		env = os.Environ()
	}
	envMap := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	var file map[string]fileValue
	if o.File != "" {
		data, err := os.ReadFile(o.File)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w (check --config)", err)
		}
		file, err = parseFile(o.File, data, func(k string) bool { return fs.Lookup(k) != nil && !skip[k] })
		if err != nil {
			return nil, err
		}
	}
	var out []Value
	var firstErr error
	fs.VisitAll(func(f *pflag.Flag) {
		if skip[f.Name] || firstErr != nil {
			return
		}
		v := Value{Name: f.Name, Source: triagev1.Source_SOURCE_DEFAULT, Origin: "default"}
		envName := EnvName(o.EnvPrefix, f.Name)
		switch {
		case f.Changed:
			v.Source, v.Origin = triagev1.Source_SOURCE_FLAG, "--"+f.Name
		case o.EnvPrefix != "" && hasKey(envMap, envName):
			if err := fs.Set(f.Name, envMap[envName]); err != nil {
				firstErr = fmt.Errorf("%s=%q: %w", envName, envMap[envName], err)
				return
			}
			v.Source, v.Origin = triagev1.Source_SOURCE_ENV, envName
		case file[f.Name].set:
			fv := file[f.Name]
			if err := fs.Set(f.Name, fv.value); err != nil {
				firstErr = fmt.Errorf("%s:%d: %s: %w", o.File, fv.line, f.Name, err)
				return
			}
			v.Source, v.Origin = triagev1.Source_SOURCE_FILE, fmt.Sprintf("%s:%d", o.File, fv.line)
		}
		v.Value = f.Value.String()
		if isSecret(f) && v.Value != "" {
			v.Value = redact.Redacted
		}
		out = append(out, v)
	})
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// secretAnnotation marks a flag whose value is itself a secret (not a path to one).
const secretAnnotation = "triage.secret"

// MarkSecret marks flag name as holding a secret value: explain shows it as
// [redacted]. Paths to secret files (--tls-key, --tokens-file) are not
// secrets themselves and stay visible, since knowing which file is in use is
// what an incident needs.
func MarkSecret(fs *pflag.FlagSet, name string) error {
	return fs.SetAnnotation(name, secretAnnotation, []string{"true"})
}

func isSecret(f *pflag.Flag) bool { return len(f.Annotations[secretAnnotation]) > 0 }

// Override records that a program changed a setting after Resolve (for
// instance development mode filling in certificate paths).
func Override(values []Value, name, value string, src triagev1.Source, origin string) []Value {
	for i := range values {
		if values[i].Name == name {
			values[i].Value, values[i].Source, values[i].Origin = value, src, origin
			return values
		}
	}
	return append(values, Value{Name: name, Value: value, Source: src, Origin: origin})
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

type fileValue struct {
	value string
	line  int
	set   bool
}

// parseFile reads a flat YAML mapping of setting names to scalars or lists.
// Unknown keys are errors naming the file, line and key.
func parseFile(name string, data []byte, known func(string) bool) (map[string]fileValue, error) {
	out := map[string]fileValue{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return out, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the configuration file must be a mapping of setting names to values", name, m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if !known(k.Value) {
			return nil, fmt.Errorf("%s:%d: unknown key %q (keys are the flag names of `triage-sidecar --help`)", name, k.Line, k.Value)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("%s:%d: key %q given twice", name, k.Line, k.Value)
		}
		var val string
		switch v.Kind {
		case yaml.ScalarNode:
			val = v.Value
		case yaml.SequenceNode:
			parts := make([]string, 0, len(v.Content))
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s:%d: %s: list items must be scalars", name, c.Line, k.Value)
				}
				parts = append(parts, c.Value)
			}
			val = strings.Join(parts, ",")
		default:
			return nil, fmt.Errorf("%s:%d: %s: value must be a scalar or a list", name, v.Line, k.Value)
		}
		out[k.Value] = fileValue{value: val, line: k.Line, set: true}
	}
	return out, nil
}
