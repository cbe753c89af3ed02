package agent_test

import (
	"context"
	"log"

	"github.com/triage-sh/triage/sidecar/agent"
)

// The two lines in main, and what the app believes.
func Example() {
	a, err := agent.Start(context.Background(), agent.Options{FlightRecorder: true})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	type dbConfig struct {
		Host     string `json:"host"`
		Password string `json:"password"`                // redacted by name
		Replica  string `json:"replica" triage:"secret"` // redacted by tag
	}
	a.RegisterConfig("db", func() any { return dbConfig{Host: "db:5432"} })
	a.RegisterState("queue", func() any { return map[string]int{"depth": 3} })
}
