# triage — the two commands that matter: `make demo` and `make test`.
# Everything else is fetched by `go run` at pinned versions; nothing but Go is needed.

GO            ?= go
BUF           := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
STATICCHECK   := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN           := bin
PKGS          := ./...
FUZZTIME      ?= 10s

.PHONY: all build tools test test-short fuzz demo generate check-generated lint bench clean manifests

all: build

## build: the binaries in bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

## manifests: render every kustomize overlay and decode each object strictly into its Kubernetes type
manifests:
	bash scripts/manifests.sh

## tools: the oracles the tests compare against (tcpdump, tshark, ...) and the control plane (etcd, kube-apiserver), installed or built when missing
tools:
	@bash scripts/install-tools.sh
	@bash scripts/kube-control-plane.sh

## test: every test, with the race detector
test: tools
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-short: without the race detector, for quick iteration
test-short:
	$(GO) test -count=1 $(PKGS)

## fuzz: each fuzz target for FUZZTIME (default 10s)
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

## demo: build, start the demo app and a sidecar in development mode, walk the capabilities
demo: build
	bash scripts/demo.sh

## generate: regenerate the API's Go code from proto/ (pinned plugins via go run)
generate:
	$(BUF) generate

## check-generated: fail when the committed generated code differs from a fresh generation
check-generated: generate
	@git diff --exit-code -- proto/ || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- proto/)" || { git status --porcelain -- proto/; echo "untracked generated files: run 'make generate' and commit"; exit 1; }

## lint: gofmt, go vet, staticcheck and buf lint
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)
	$(BUF) lint

## bench: RSS and latency against the anchors; writes README's Performance section
bench: build
	$(GO) build -trimpath -o $(BIN)/triage-bench-floor ./internal/bench/floor
	$(GO) run ./internal/bench/report -readme README.md -sidecar $(BIN)/triage-sidecar -floor $(BIN)/triage-bench-floor
	$(GO) run ./internal/bench/runtimereport -readme README.md -sidecar $(BIN)/triage-sidecar -cli $(BIN)/triage
	$(GO) run ./internal/bench/capturereport -readme README.md -sidecar $(BIN)/triage-sidecar -cli $(BIN)/triage
	$(GO) run ./internal/bench/envoyreport -readme README.md
	$(GO) run ./internal/bench/injectorreport -readme README.md
	$(GO) run ./internal/bench/fleetreport -readme README.md -sidecar $(BIN)/triage-sidecar -cli $(BIN)/triage
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./internal/bench/

clean:
	rm -rf $(BIN) demo-out
