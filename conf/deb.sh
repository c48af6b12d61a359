#!/usr/bin/env bash
# make deb: builds libnginx-mod-http-chat and chat-backend .deb files with
# dpkg-buildpackage from a copy of the tree in build/deb/src (tracked and
# new files, not ignored ones), so the dev build in build/ and backend/ is
# not touched.  The packages land in build/deb/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/deb
src=$out/src

cd "$root"
rm -rf "$out"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard \
    | xargs -0 tar -cf - --no-recursion \
    | tar -xf - -C "$src"

cd "$src"
dpkg-buildpackage -us -uc -b > "$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log" >&2; echo "deb: failed, see $out/build.log" >&2; exit 1; }

ls "$out"/*.deb
