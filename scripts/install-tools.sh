#!/usr/bin/env bash
# Installs the real tools the tests use as oracles (tcpdump for the BPF
# filter compiler's differential tests; tcpdump and tshark to read the
# captures; ip and setpriv to make network namespaces and drop
# CAP_NET_RAW), when they are missing and this machine can install them.
# Tests that need a missing tool skip and say so.
set -u
need=()
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-tools: missing ${need[*]}; not root or no apt-get, so the tests that need them will skip" >&2
  exit 0
fi
echo "install-tools: installing ${need[*]}" >&2
if ! { apt-get update -qq && echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/tmp/triage-install-tools.log 2>&1; then
  echo "install-tools: apt-get failed (see /tmp/triage-install-tools.log); the tests that need ${need[*]} will skip" >&2
fi
exit 0
