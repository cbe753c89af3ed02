#!/usr/bin/env bash
# Renders every kustomization under deploy/ and checks the result: each object
# is decoded strictly into its Kubernetes Go type (a typo fails) and the
# installation is checked semantically (package internal/deploytest).
#
# kustomize runs through `go run` at a pinned version, so it never enters
# go.mod and nothing but Go is needed (the first run downloads and builds it,
# about a minute; later runs use Go's caches).
#
#   scripts/manifests.sh            render into a temporary directory, check, remove it
#   MANIFESTS_OUT=DIR scripts/...   render into DIR and keep it
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.2} # v5.8.3 needs Go 1.27
KUSTOMIZE="$GO run sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"

if [[ -n "${MANIFESTS_OUT:-}" ]]; then
	out=$MANIFESTS_OUT
	mkdir -p "$out"
else
	out=$(mktemp -d "${TMPDIR:-/tmp}/triage-manifests.XXXXXX")
	trap 'rm -rf "$out"' EXIT
fi

# name of the rendered file -> kustomization directory; internal/deploytest
# expects exactly these names.
targets=(
	"cert-manager:deploy/overlays/cert-manager"
	"builtin-certs:deploy/overlays/builtin-certs"
	"example-app:deploy/examples/app"
)
# An overlay added later must be listed above (and checked by the test).
for dir in deploy/overlays/*/; do
	name=$(basename "$dir")
	if [[ " ${targets[*]} " != *" $name:"* ]]; then
		echo "manifests: $dir is not rendered: add it to scripts/manifests.sh and internal/deploytest" >&2
		exit 1
	fi
done

for t in "${targets[@]}"; do
	name=${t%%:*} dir=${t#*:}
	echo "manifests: kustomize build $dir"
	$KUSTOMIZE build "$dir" >"$out/$name.yaml"
done

echo "manifests: checking $out"
TRIAGE_MANIFESTS_DIR=$out $GO test -count=1 ./internal/deploytest/ "$@"
