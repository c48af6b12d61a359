#!/usr/bin/env bash
# Figure 8 of the benchmark: files through the product beside nginx alone.
# Called by bench.sh on its side stack; it inherits PORT, RUN, RES,
# LOAD, NCHAN_PORT (a free port for the reference nginx), NGINX_WORKERS and
# NGINX_CONNECTIONS from there.  Runs by hand on any stack too (the header
# of tests/bench/README.md, figure 8, says how).
#
#   tests/bench/files.sh full|quick
#
# For a 1 MiB and a 10 MiB file (a PDF: "%PDF-" then random bytes, so the
# type check passes and nothing compresses):
#   uploads: POST /api/v1/uploads with a bearer token, UP_C at once (curl
#     --parallel over keep-alive connections), beside a stock nginx taking
#     the same body to disk the same way (a WebDAV PUT: the body to a
#     temporary file, then a rename, which is what the edge does before its
#     type check, hash, flush and the worker's row);
#   downloads: GET of the attachment's url with the token (a worker says
#     yes, then nginx sends the file through the internal redirect), DOWN_C
#     keep-alive clients (chatload http), beside the stock nginx sending the
#     same bytes as a static file; then a 1 MiB Range of the 10 MiB file on
#     both.
# Both nginx have the same workers and the same settings for sending files
# (the defaults: no sendfile, no aio).  Prints lines into $RES/summary.8;
# figures, never assertions.
set -euo pipefail

MODE=${1:-full}
: "${PORT:?}" "${RUN:?}" "${RES:?}" "${LOAD:?}" "${NCHAN_PORT:?}" \
  "${NGINX_WORKERS:?}" "${NGINX_CONNECTIONS:?}"
UP_C=4 DOWN_C=8

case "$MODE" in
    full)  UP_N1=200 UP_N10=40 WARM=2 MEAS=10 ;;
    quick) UP_N1=40 UP_N10=8 WARM=1 MEAS=3 ;;
    *)     echo "usage: $0 full|quick" >&2; exit 2 ;;
esac

log() { printf 'bench: %s\n' "$*" >&2; }
out() { printf '%s\n' "$1" >> "$RES/summary.8"; printf '%s\n' "$1" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

D=$RUN/files
REF=$D/nginx
rm -rf "$D"
mkdir -p "$D" "$REF/tmp" "$REF/www/put"

# a user of its own per size (uploads count against a user's quota)
token() {
    curl -fsS -XPOST -H 'content-type: application/json' \
        -d "{\"email\":\"bench-files-$1-$$@bench.invalid\",\"password\":\"bench-password-1\",\"display_name\":\"Bench files $1\"}" \
        "http://127.0.0.1:$PORT/api/v1/auth/register" \
        | sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}

# the reference: a stock nginx, same workers, serving www/ and taking PUTs
# into www/put/ (client_body_temp_path on the same filesystem, like ours)
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
cat > "$REF/nginx.conf" <<CONF
$user_line
worker_processes $NGINX_WORKERS;
pid $REF/nginx.pid;
error_log $REF/error.log notice;
events { worker_connections $NGINX_CONNECTIONS; }
http {
    access_log $REF/access.log;
    client_body_temp_path $REF/tmp/body; proxy_temp_path $REF/tmp/proxy;
    fastcgi_temp_path $REF/tmp/fastcgi; uwsgi_temp_path $REF/tmp/uwsgi; scgi_temp_path $REF/tmp/scgi;
    server {
        listen 127.0.0.1:$NCHAN_PORT;
        location / { root $REF/www; default_type application/pdf; }
        location /put/ {
            root $REF/www;
            client_max_body_size 25m;
            dav_methods PUT;
            create_full_put_path on;
        }
    }
}
CONF
# (the catalog figure's static nginx may still be letting go of the port)
for ((i = 0; ; i++)); do
    nginx -q -p "$REF" -c "$REF/nginx.conf" 2>"$REF/start.log" && break
    (( i < 50 )) || { cat "$REF/start.log" >&2; die "the reference nginx did not start"; }
    sleep 0.1
done
trap 'kill -TERM "$(cat "$REF/nginx.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
sleep 0.3

# upload <label> <file> <n> <method> <url> [curl args]: n uploads of the
# file, UP_C at once; one line: req/s, MB/s (of file bytes) and latency
upload() {
    local label=$1 file=$2 n=$3 method=$4 url=$5 size t0 t1 i cfg=$D/up.cfg
    shift 5
    size=$(stat -c %s "$file")
    : > "$cfg"
    for ((i = 0; i < n; i++)); do
        printf 'url = "%s"\noutput = "/dev/null"\n' "${url//@I@/$i}" >> "$cfg"
    done
    t0=$(date +%s.%N)
    curl -sS --parallel --parallel-immediate --parallel-max "$UP_C" -X "$method" \
        --data-binary "@$file" -H 'content-type: application/pdf' -H 'Expect:' "$@" \
        -w '%{http_code} %{time_total}\n' -K "$cfg" > "$D/up.times" 2> "$D/up.err" || true
    t1=$(date +%s.%N)
    sort -k2 -n "$D/up.times" | awk -v label="$label" -v n="$n" -v c="$UP_C" -v size="$size" \
        -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
        $1 ~ /^20[0-9]$/ { t[ok++] = $2 }
        END {
            p50 = ok ? t[int(ok * 0.5)] * 1000 : 0; p99 = ok ? t[int(ok * 0.99)] * 1000 : 0
            printf "upload %s: %d uploads, %d at once: %.1f req/s %.1f MB/s errors %d p50=%.1fms p99=%.1fms\n",
                label, n, c, ok / s, ok * size / 1e6 / s, n - ok, p50, p99 }'
}

# mbs <line>: the MB/s of a line (chatload http's or upload's)
mbs() { sed -n 's/.* \([0-9.]*\) MB\/s.*/\1/p' <<< "$1" | head -1; }
rps() { sed -n 's/.* \([0-9.]*\) req\/s.*/\1/p' <<< "$1" | head -1; }
ratio() {   # ratio <what> <ours line> <reference line>
    out "$(awk -v w="$1" -v a="$(mbs "$2")" -v b="$(mbs "$3")" -v ra="$(rps "$2")" -v rb="$(rps "$3")" 'BEGIN {
        printf "%s: chat / nginx = %.2f (MB/s), %.2f (req/s)", w, (b > 0 ? a / b : 0), (rb > 0 ? ra / rb : 0) }')"
}

http() {    # http <label> <port> <paths file> [--header ...]
    local label=$1 port=$2 paths=$3
    shift 3
    "$LOAD" http --port "$port" --paths "$paths" --concurrency "$DOWN_C" \
        --warmup "$WARM" --measure "$MEAS" --label "$label" "$@"
}

for mib in 1 10; do
    n=$UP_N1
    [ "$mib" = 10 ] && n=$UP_N10
    f=$D/file-${mib}m.pdf
    { printf '%%PDF-1.4\n'; head -c $(( mib * 1048576 - 9 )) /dev/urandom; } > "$f"
    cp "$f" "$REF/www/"
    tok=$(token "$mib")
    [ -n "$tok" ] || die "could not register the files user"
    auth="Authorization: Bearer $tok"

    log "figure 8: $n uploads of $mib MiB, $UP_C at once, chat then nginx"
    ours=$(upload "chat ${mib} MiB (POST /api/v1/uploads)" "$f" "$n" POST \
               "http://127.0.0.1:$PORT/api/v1/uploads?name=bench-@I@.pdf" -H "$auth")
    ref=$(upload "nginx ${mib} MiB (WebDAV PUT to disk)" "$f" "$n" PUT \
              "http://127.0.0.1:$NCHAN_PORT/put/file-${mib}m.pdf")
    out "$ours"
    out "$ref"
    ratio "upload ${mib} MiB" "$ours" "$ref"

    id=$(curl -fsS -XPOST -H "$auth" -H 'content-type: application/pdf' -H 'Expect:' \
             --data-binary "@$f" "http://127.0.0.1:$PORT/api/v1/uploads?name=bench.pdf" \
         | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
    [ -n "$id" ] || die "the upload for the downloads failed"
    echo "/api/v1/attachments/$id" > "$D/ours.paths"
    echo "/file-${mib}m.pdf" > "$D/ref.paths"
    curl -fsS -H "$auth" "http://127.0.0.1:$PORT/api/v1/attachments/$id" | cmp -s - "$f" \
        || die "the download of attachment $id is not the file uploaded"

    log "figure 8: downloads of $mib MiB, $DOWN_C clients, chat then nginx"
    ours=$(http "chat GET ${mib} MiB attachment" "$PORT" "$D/ours.paths" --header "$auth")
    ref=$(http "nginx GET ${mib} MiB static file" "$NCHAN_PORT" "$D/ref.paths")
    out "$ours"
    out "$ref"
    ratio "download ${mib} MiB" "$ours" "$ref"

    if [ "$mib" = 10 ]; then
        range="Range: bytes=1048576-2097151"
        ours=$(http "chat GET 1 MiB Range of the 10 MiB attachment" "$PORT" "$D/ours.paths" \
                   --header "$auth" --header "$range")
        ref=$(http "nginx GET 1 MiB Range of the 10 MiB static file" "$NCHAN_PORT" "$D/ref.paths" \
                  --header "$range")
        out "$ours"
        out "$ref"
        ratio "Range 1 MiB of 10 MiB" "$ours" "$ref"
    fi
    rm -f "$REF/www/put/"*
done
