#!/usr/bin/env bash
# Installs the Debian packages the build, the local stack and the tests need,
# skipping the ones already there.  Uses sudo when not root.  It never
# starts, stops or restarts a service of the host (see policy-rc.d below).
set -euo pipefail

packages=(
    build-essential nginx nginx-dev libhiredis-dev libpq-dev libcjson-dev
    libssl-dev redis-server redis-tools postgresql postgresql-client
    libcurl4-openssl-dev postgresql-15-rum
    # STACK_PG=pgbouncer: the pooler the backend must work behind in
    # transaction mode (conf/stack.sh runs its own on a socket)
    pgbouncer
    # image thumbnails and book covers (backend/media): libvips decodes,
    # resizes and re-encodes without EXIF, bounded and in few MB
    libvips-dev
    nodejs curl procps clang libclang-rt-14-dev
    # the browser tests (tests/browser): headless Chromium (npm, for the
    # pinned puppeteer-core, comes with the nodejs package)
    chromium
    # make lint
    cppcheck shellcheck
)
# more for one target (make deb: debhelper dpkg-dev fakeroot; the package
# test: ./build/deb/*.deb, which apt installs from the file)
packages+=("$@")

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

# Debian's postinst scripts start (or restart) nginx, redis-server and
# postgresql.  Our stacks run their own on their own ports, and the host's
# services are not ours to start, stop or restart: a policy-rc.d that
# answers 101 ("action forbidden") makes invoke-rc.d and deb-systemd-invoke
# skip every start, stop and reload for the length of the install.  One
# already there (a container's) is kept and put back.
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
    saved=$(mktemp)
    $sudo cp -p "$policy" "$saved"
fi
restore_policy() {
    if [ -n "$saved" ]; then
        $sudo cp -p "$saved" "$policy"
        rm -f "$saved"
    else
        $sudo rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# conf/deps.sh: no service starts or stops during its install\nexit 101\n' \
    | $sudo tee "$policy" >/dev/null
$sudo chmod 755 "$policy"

# DEPS_LOG keeps apt's output (tests/package reads what policy-rc.d denied)
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" \
    > "${DEPS_LOG:-/dev/null}" 2>&1
