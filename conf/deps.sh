#!/usr/bin/env bash
# Installs the Debian packages the build, the local stack and the tests need,
# skipping the ones already there.  Uses sudo when not root.
set -euo pipefail

packages=(
    build-essential nginx nginx-dev libhiredis-dev libpq-dev libcjson-dev
    libssl-dev redis-server redis-tools postgresql postgresql-client
    libcurl4-openssl-dev postgresql-15-rum
    nodejs curl procps clang libclang-rt-14-dev
    # the browser tests (tests/browser): headless Chromium (npm, for the
    # pinned puppeteer-core, comes with the nodejs package)
    chromium
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || echo "deps: apt-get update failed, trying the cached lists"
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Debian starts the packaged services on install; our stack runs its own.
for svc in nginx redis-server postgresql; do
    $sudo systemctl stop "$svc" 2>/dev/null || $sudo service "$svc" stop 2>/dev/null || true
done
