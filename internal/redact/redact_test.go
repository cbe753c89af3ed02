package redact

import "testing"

func TestIsSecretName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"API_KEY", true},
		{"apiKey", true},
		{"X-Auth-Token", true},
		{"DB_PASSWORD", true},
		{"AWS_SECRET_ACCESS_KEY", true},
		{"SESSION_COOKIE", true},
		{"GITHUB_TOKEN", true},
		{"HTTPToken", true},
		{"tls.private_key", true},
		{"client-credentials", true},
		{"PATH", false},
		{"HOME", false},
		{"MONKEY", false},
		{"KEYBOARD_LAYOUT", false},
		{"GOMAXPROCS", false},
		{"TRIAGE_ADDR", false},
		{"tokenizer", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsSecretName(tt.name); got != tt.want {
			t.Errorf("IsSecretName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValue(t *testing.T) {
	if v, r := Value("DB_PASSWORD", "hunter2"); v != Redacted || !r {
		t.Errorf("Value(DB_PASSWORD) = %q, %v", v, r)
	}
	if v, r := Value("PORT", "8080"); v != "8080" || r {
		t.Errorf("Value(PORT) = %q, %v", v, r)
	}
}
