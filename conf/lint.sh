#!/usr/bin/env bash
# make lint: cppcheck on the C of protocol/, backend/ and ngx_chat_module/,
# then every shell script through shellcheck, and the version in
# debian/changelog against protocol/chat_version.h.  Clean means no finding at all; a
# finding is fixed, or suppressed where it is (shellcheck disable=... with
# a reason) or in conf/cppcheck.supp with one.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
failed=()

# the module is checked with nginx's headers and the configured
# ngx_auto_config.h of the dev build (make module), so nginx's macros are
# known rather than guessed
nginx=build/nginx
if [ ! -f "$nginx/objs/ngx_auto_config.h" ]; then
    conf/build-module.sh "$nginx" || exit 1
fi
nginx_inc=(-I "$nginx/objs")
for d in core event event/modules os/unix http http/modules http/v2; do
    nginx_inc+=(-I "$nginx/src/$d")
done
backend_inc=(-I protocol -I /usr/include/postgresql)
for d in engine auth chat presence catalog orders; do
    backend_inc+=(-I "backend/$d")
done

# warnings, portability and performance; not "style", whose main finding
# (declare a variable in the narrowest scope) is the opposite of nginx's
# declarations-first style the project follows (STYLE.md)
cppcheck_run() {
    cppcheck -q --enable=warning,portability,performance --std=c11 -D_GNU_SOURCE \
        --inline-suppr --suppressions-list=conf/cppcheck.supp \
        --error-exitcode=1 -j 2 "$@"
}

# the shared contract alone: plain C, no nginx or libpq headers
echo "== cppcheck protocol/"
cppcheck_run -I protocol protocol || failed+=("cppcheck protocol")
echo "== cppcheck backend/"
cppcheck_run "${backend_inc[@]}" backend || failed+=("cppcheck backend")
echo "== cppcheck ngx_chat_module/"
cppcheck_run -I ngx_chat_module -I protocol "${nginx_inc[@]}" ngx_chat_module \
    || failed+=("cppcheck ngx_chat_module")

echo "== shellcheck"
mapfile -t scripts < <(git ls-files '*.sh' 'debian/*.postinst' 'debian/*.postrm')
shellcheck -x "${scripts[@]}" || failed+=("shellcheck")

echo "== version"
header=$(sed -n 's/^#define CHAT_VERSION  *"\(.*\)"/\1/p' protocol/chat_version.h)
changelog=$(dpkg-parsechangelog -S Version)
if [ "$header" != "$changelog" ]; then
    echo "lint: chat_version.h says $header, debian/changelog says $changelog"
    failed+=("version")
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "lint: FAILED: ${failed[*]}"
    exit 1
fi
echo "lint: clean"
