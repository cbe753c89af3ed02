package gops_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the app under test: see testapp_test.go.
	if os.Getenv(testAppEnv) == "1" {
		runTestApp()
		return
	}
	goleak.VerifyTestMain(m)
}
