#!/usr/bin/env bash
# kube-control-plane.sh: the real control plane the tests in internal/kubetest
# run against — Debian's etcd and a kube-apiserver built from the Go module
# proxy. Idempotent and fast once everything is there.
#
#   etcd            from Debian's etcd-server package (installed with apt-get
#                   when missing and running as root; otherwise says what to do)
#   kube-apiserver  built from k8s.io/kubernetes in the separate module
#                   test/kube-apiserver (its huge dependency graph never
#                   touches the main go.mod) into a cache outside the repo:
#                   ${XDG_CACHE_HOME:-$HOME/.cache}/triage/kube-apiserver-$K8S_VERSION
#                   About 4-6 minutes and 2 GB of module and build cache the
#                   first time on 2 cores; reused afterwards.
#
# The tests find the binary in that cache (or at $TRIAGE_KUBE_APISERVER) and
# etcd in PATH; without them they skip and name this script.
set -euo pipefail

K8S_VERSION=v1.37.2 # must match k8s.io/kubernetes in test/kube-apiserver/go.mod and internal/kubetest
GO=${GO:-go}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/triage/kube-apiserver-$K8S_VERSION
apiserver=$cache/kube-apiserver

# --- etcd -------------------------------------------------------------------
if ! command -v etcd >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "kube-control-plane: installing etcd-server (apt-get)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y --no-install-recommends etcd-server >/dev/null ||
			{ apt-get update >/dev/null && apt-get install -y --no-install-recommends etcd-server >/dev/null; }
	else
		echo "kube-control-plane: etcd is missing: install Debian's etcd-server (apt-get install etcd-server, as root) or put an etcd 3.4+ binary in PATH" >&2
		exit 1
	fi
fi

# --- kube-apiserver -----------------------------------------------------------
if [ ! -x "$apiserver" ]; then
	mkdir -p "$cache"
	echo "kube-control-plane: building kube-apiserver $K8S_VERSION from the Go module proxy (first time: ~5 minutes, ~2 GB)"
	start=$(date +%s)
	(
		cd "$root/test/kube-apiserver"
		# -mod=readonly: the committed go.sum pins everything; GOWORK=off: this
		# module is built on its own, never as part of a workspace.
		GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly" "$GO" build -trimpath \
			-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean" \
			-o "$apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
	)
	mv -f "$apiserver.tmp" "$apiserver"
	echo "kube-control-plane: built in $(($(date +%s) - start))s"
fi

echo "etcd:           $(command -v etcd) ($(etcd --version 2>/dev/null | head -1))"
echo "kube-apiserver: $apiserver ($("$apiserver" --version 2>/dev/null))"
