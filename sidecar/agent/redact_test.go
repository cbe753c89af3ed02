package agent

import (
	"strings"
	"testing"
	"time"
)

func TestSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "DB_PASSWORD": true, "apiKey": true, "APIKey": true, "X-Auth-Token": true,
		"HTTPToken": true, "client.secret": true, "privateKey": true, "session_id": true, "dsn": true,
		"Authorization": true, "cookies": true, "credentials": true, "sig": false, "signature": true,
		"monkey": false, "keyboard_layout": false, "host": false, "tokenizer": false, "authors": false,
		"port": false, "passenger": false, "": false,
	} {
		if got := secretName(name); got != want {
			t.Errorf("secretName(%q) = %v, want %v (words %q)", name, got, want, nameWords(name))
		}
	}
}

type inner struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Hint     string `json:"hint" triage:"secret"`
}

type Embedded struct {
	Region string
	APIKey string
}

type outer struct {
	Embedded
	Name     string            `json:"name"`
	Skip     string            `json:"-"`
	Empty    string            `json:"empty,omitempty"`
	Inner    inner             `json:"inner"`
	Ptr      *inner            `json:"ptr"`
	Nil      *inner            `json:"nil"`
	List     []inner           `json:"list"`
	Tags     map[string]string `json:"tags"`
	Nested   map[string]any    `json:"nested"`
	When     time.Time         `json:"when"`
	Raw      []byte            `json:"raw"`
	Numbers  map[int]string    `json:"numbers"`
	Webhook  string            `triage:"secret"`
	internal string
}

func TestEncodeRedacted(t *testing.T) {
	v := outer{
		Embedded: Embedded{Region: "eu", APIKey: "k1"},
		Name:     "app", Skip: "s", internal: "i",
		Inner:   inner{User: "u", Password: "p1", Hint: "h1"},
		Ptr:     &inner{User: "v", Password: "p2"},
		List:    []inner{{User: "w", Password: "p3"}},
		Tags:    map[string]string{"env": "prod", "session": "s1", "odd name": "x"},
		Nested:  map[string]any{"deeper": []any{map[string]any{"access_token": "t1", "ok": 1}}},
		When:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Raw:     []byte("hi"),
		Numbers: map[int]string{2: "b", 1: "a"},
		Webhook: "https://hook",
	}
	got, err := encodeRedacted(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Region":"eu","APIKey":"[redacted]","name":"app","inner":{"user":"u","password":"[redacted]","hint":"[redacted]"},` +
		`"ptr":{"user":"v","password":"[redacted]","hint":"[redacted]"},"nil":null,"list":[{"user":"w","password":"[redacted]","hint":"[redacted]"}],` +
		`"tags":{"env":"prod","odd name":"x","session":"[redacted]"},"nested":{"deeper":[{"access_token":"[redacted]","ok":1}]},` +
		`"when":"2026-01-02T03:04:05Z","raw":"aGk=","numbers":{"1":"a","2":"b"},"Webhook":"[redacted]"}`
	if got.json != want {
		t.Errorf("json\n got %s\nwant %s", got.json, want)
	}
	wantPaths := "APIKey inner.password inner.hint ptr.password ptr.hint list[0].password list[0].hint tags.session nested.deeper[0].access_token Webhook"
	if p := strings.Join(got.redacted, " "); p != wantPaths {
		t.Errorf("redacted\n got %s\nwant %s", p, wantPaths)
	}
	for _, secret := range []string{`"k1"`, `"p1"`, `"p2"`, `"p3"`, `"h1"`, `"s1"`, `"t1"`, "https://hook"} {
		if strings.Contains(got.json, secret) {
			t.Errorf("leaked %q", secret)
		}
	}
}

type marshals struct{}

func (marshals) MarshalJSON() ([]byte, error) {
	return []byte(`{"password":"x","keep":{"Token":"y","n":2}}`), nil
}

type cycle struct{ Next *cycle }

func TestEncodeRedactedEdges(t *testing.T) {
	got, err := encodeRedacted(marshals{})
	if err != nil || got.json != `{"keep":{"Token":"[redacted]","n":2},"password":"[redacted]"}` {
		t.Errorf("marshaler: %s %v", got.json, err)
	}
	if got, err := encodeRedacted(nil); err != nil || got.json != "null" {
		t.Errorf("nil: %s %v", got.json, err)
	}
	if got, err := encodeRedacted("plain"); err != nil || got.json != `"plain"` {
		t.Errorf("string: %s %v", got.json, err)
	}
	c := &cycle{}
	c.Next = c
	if _, err := encodeRedacted(c); err == nil || !strings.Contains(err.Error(), "deeper than") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := encodeRedacted(map[string]any{"f": func() {}}); err == nil {
		t.Error("a func encoded")
	}
}
