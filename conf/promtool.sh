#!/bin/sh
# Prints the path of a promtool binary, taking it out of Debian's prometheus
# package into build/tools/ the first time (apt-get download and dpkg -x:
# nothing is installed, no service is set up).  Used by the metrics test to
# run `promtool check metrics`; exits 1 with the reason on stderr when it
# cannot be had (no network, no package), and the test says so and skips.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$ROOT/build/tools
BIN=$TOOLS/promtool

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi

if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$TOOLS"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    echo "promtool.sh: apt-get download prometheus failed" >&2
    exit 1
fi

dpkg -x "$tmp"/prometheus_*.deb "$tmp/x"
if [ ! -x "$tmp/x/usr/bin/promtool" ]; then
    echo "promtool.sh: the prometheus package has no usr/bin/promtool" >&2
    exit 1
fi

cp "$tmp/x/usr/bin/promtool" "$BIN"
echo "$BIN"
