#!/usr/bin/env bash
# Configures a private copy of Debian's nginx source tree (from nginx-dev) with
# the flags Debian's own nginx was built with plus our module, so the .so
# loads into the stock /usr/sbin/nginx.
#   build-module.sh <build dir> [extra configure flags, e.g. --with-cc-opt=...]
# CC, CFLAGS, CPPFLAGS and LDFLAGS from the environment are honoured.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
shift
src=${NGINX_SRC:-/usr/share/nginx/src}

[ -f "$src/conf_flags" ] || { echo "build-module: $src/conf_flags missing: install nginx-dev" >&2; exit 1; }

rm -rf "$build"
mkdir -p "$(dirname "$build")"
cp -a "$src" "$build"

# conf_flags defines the bash array NGX_CONF_FLAGS
# shellcheck disable=SC1091
. "$src/conf_flags"

# the caller's CC, CFLAGS, CPPFLAGS and LDFLAGS (a distribution's
# hardening from dpkg-buildflags) go after nginx's own flags, which keep
# -Werror; later --with-cc-opt arguments (the sanitizer build's) win
flags=()
[ -n "${CC:-}" ] && flags+=(--with-cc="$CC")
if [ -n "${CFLAGS:-}${CPPFLAGS:-}" ]; then
    flags+=(--with-cc-opt="${CPPFLAGS:-} ${CFLAGS:-} -fPIC")
fi
[ -n "${LDFLAGS:-}" ] && flags+=(--with-ld-opt="$LDFLAGS -fPIC")

# configure itself must not see CFLAGS: nginx takes a CFLAGS in the
# environment as the whole set and then drops its own -W -Wall -Werror
cd "$build"
env -u CFLAGS ./configure "${NGX_CONF_FLAGS[@]}" "${flags[@]}" "$@" --add-dynamic-module="$root" > configure.log 2>&1 \
    || { tail -30 configure.log >&2; echo "build-module: configure failed, see $build/configure.log" >&2; exit 1; }
