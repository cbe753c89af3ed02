package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the demo's optional configuration file. YAML and JSON both
// work (JSON is read as YAML). DBPassword exists to show that triage
// redacts secret-looking values.
type Config struct {
	// Greeting is what / answers.
	Greeting string `yaml:"greeting"`
	// Workers is the size of the background worker pool.
	Workers int `yaml:"workers"`
	// Tick is how often each worker does a little work, e.g. "250ms".
	Tick time.Duration `yaml:"tick"`
	// OpenFiles is how many temporary files the demo keeps open.
	OpenFiles int `yaml:"open_files"`
	// DBURL is a pretend database address; it is never dialled.
	DBURL string `yaml:"db_url"`
	// DBPassword is a pretend secret; it is never logged or served.
	DBPassword string `yaml:"db_password"`
}

// DefaultConfig is the configuration without a file.
func DefaultConfig() Config {
	return Config{Greeting: "hello from triage-demo", Workers: 4, Tick: 250 * time.Millisecond, OpenFiles: 3}
}

// Limits keep a configuration from turning the demo into a load test.
const (
	maxWorkers   = 64
	maxOpenFiles = 256
	minTick      = 10 * time.Millisecond
)

// LoadConfig reads path over the defaults; "" means the defaults. Unknown
// keys are errors, so a typo does not pass silently.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("--config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("--config %s: %w", path, err)
	}
	if err := cfg.validate(); err != nil {
		return cfg, fmt.Errorf("--config %s: %w", path, err)
	}
	return cfg, nil
}

func (c Config) validate() error {
	switch {
	case c.Workers < 0 || c.Workers > maxWorkers:
		return fmt.Errorf("workers is %d: use 0 to %d", c.Workers, maxWorkers)
	case c.OpenFiles < 0 || c.OpenFiles > maxOpenFiles:
		return fmt.Errorf("open_files is %d: use 0 to %d", c.OpenFiles, maxOpenFiles)
	case c.Workers > 0 && c.Tick < minTick:
		return fmt.Errorf("tick is %s: use at least %s", c.Tick, minTick)
	}
	return nil
}
