#!/usr/bin/env bash
# Figure 5 of the benchmark: the bookstore catalog at a million books
# (issue 4).  Called by bench.sh on its side stack, after the chat figures;
# it inherits PORT, REDIS_PORT, PG, RUN, RES, LOAD, NCHAN_PORT,
# NGINX_WORKERS and NGINX_CONNECTIONS from there.
#
#   tests/bench/catalog.sh full|quick
#
# full: 1,000,000 books; quick: 100,000.  Then, at 200 concurrent
# keep-alive clients (chatload http):
#   search by kind in PostgreSQL alone at one client (search_kinds.sh),
#      right after the load and vacuumed;
#   a. search, a mix of queries, with the edge cache OFF so every query
#      reaches PostgreSQL: p50/p99; and the common word alone (one title in
#      four has "history"), beside PostgreSQL ranking that word's matches
#      with ts_rank over the GIN index (EXPLAIN ANALYZE, same data);
#      each kind of the mix at one client through the whole stack; the
#      mix open loop at fixed offered rates (200, 500, 1,000/s) and its
#      ceiling; chat at 500 msg/s alone and beside the mix at its ceiling
#      (isolation.mjs, the isolation ratio of figure 7);
#   b. book details served from the edge cache (1,000 hot books), beside a
#      stock nginx serving a static file of the same size, same workers,
#      same client: requests/s and latency;
#   c. book details that miss the cache (each id asked once): p50/p99
#      through the worker pool and PostgreSQL.
# Prints lines into $RES/summary.5; figures, never assertions.
#
# CATALOG_STEPS (words, default all of them) runs only some parts, on a
# catalog already loaded, to measure one part again:
#   kinds   search by kind in PostgreSQL alone, right after the load and vacuumed
#   mix     the mix and "history" at 200 clients, and one page beside ts_rank
#   stack   each kind at one client through the whole stack
#   open    the mix open loop at fixed rates, its ceiling, chat beside it
#   cache   b. details from the cache beside a static file
#   miss    c. details missing the cache
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=${1:-full}
C=200

# OPEN_*: the open-loop steps (fixed rates; the ceiling's steps are
# shorter: STEP_MEAS); KIND_MEAS: each kind at one client through the stack
case "$MODE" in
    full)  BOOKS=${BENCH_BOOKS:-1000000} WARM=2 MEAS=10 OPEN_MEAS=8 STEP_MEAS=5
           CEIL_STEPS=8 KIND_MEAS=3 ISO_S=10 ;;
    quick) BOOKS=${BENCH_BOOKS:-100000} WARM=1 MEAS=4 OPEN_MEAS=3 STEP_MEAS=2
           CEIL_STEPS=4 KIND_MEAS=1 ISO_S=4 ;;
    *)     echo "usage: $0 full|quick" >&2; exit 2 ;;
esac

STEPS=" ${CATALOG_STEPS:-kinds mix stack open cache miss} "
want() { [[ $STEPS == *" $1 "* ]]; }

log() { printf 'bench: %s\n' "$*" >&2; }
# the machine is shared: every figure is printed with the load beside it
load() { printf 'load=%s' "$(cut -d' ' -f1 /proc/loadavg)"; }
out() { printf '%s\n' "$1" >> "$RES/summary.5"; printf '%s\n' "$1" >&2; }
q() { psql "$PG" -XtAq -v ON_ERROR_STOP=1 -c "$1"; }

# chat nginx with the read cache on or off (the stack's own template)
chat_nginx() {
    local pid
    if [ -f "$RUN/nginx/nginx.pid" ]; then
        pid=$(cat "$RUN/nginx/nginx.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    CHAT_CACHE=$1 "$ROOT/conf/stack.sh" start > "$RES/catalog-stack.log" 2>&1 \
        || { cat "$RES/catalog-stack.log" >&2; exit 1; }
}

http() {  # http <label> <paths file> [seconds]
    "$LOAD" http --port "${PORT_OVERRIDE:-$PORT}" --paths "$2" --concurrency "$C" \
        --warmup "$WARM" --measure "${3:-$MEAS}" --label "$1"
}

# --- data ---
log "figure 5: $BOOKS books (tests/bench/catalog_gen.sh)"
t=$(date +%s)
"$HERE/catalog_gen.sh" "$PG" "$BOOKS" 50000 >&2
gen_s=$(( $(date +%s) - t ))
read -r lo hi < <(q "SELECT min(id), max(id) FROM books WHERE isbn13 LIKE '9798%'" | tr '|' ' ')
total=$(q "SELECT count(*) FROM books")
common=$(q "SELECT count(*) FROM books WHERE title_doc @@ to_tsquery('simple', 'history')")
out "catalog: $total books (generated in ${gen_s}s), \"history\" in $common titles"

# --- paths ---
mapfile -t cats < <(q "SELECT id FROM categories WHERE slug LIKE 'gen-%-%' ORDER BY id LIMIT 12")
mapfile -t isbns < <(q "SELECT isbn13 FROM books TABLESAMPLE SYSTEM (1) LIMIT 200")
words=(garden river kingdom lighthouse cartographer orchid voyage harbor compass lantern)
prefixes=(lighth cartog clockm orch harb lante)
typos=(lighthuose cartographar orchad hrabor compas lanterm)
surnames=(okafor lindqvist nakamura ferreira kowalski haddad)
kind_names=("history" "history + word" "two words" "prefix" "typo" "surname" "isbn"
            "price <= 20 + in stock" "category + word")
: > "$RES/search.paths"
for ((j = 0; j < 9; j++)); do : > "$RES/kind$j.paths"; done
for ((k = 0; k < 2000; k++)); do
    w=${words[k % 10]} w2=${words[(k / 10) % 10]}
    case $(( k % 10 )) in
        0|1) p="q=history" j=0 ;;
        2)   p="q=history%20$w" j=1 ;;
        3)   p="q=$w%20$w2" j=2 ;;
        4)   p="q=${prefixes[k % 6]}" j=3 ;;
        5)   p="q=${typos[k % 6]}" j=4 ;;
        6)   p="q=${surnames[k % 6]}" j=5 ;;
        7)   i=${isbns[k % ${#isbns[@]}]}; p="q=${i:0:3}-${i:3:1}-${i:4:5}-${i:9:3}-${i:12}" j=6 ;;
        8)   p="q=$w&max_price=2000&in_stock=true" j=7 ;;
        9)   p="q=$w&category=${cats[k % ${#cats[@]}]}" j=8 ;;
    esac
    echo "/api/v1/books/search?$p" >> "$RES/search.paths"
    echo "/api/v1/books/search?$p" >> "$RES/kind$j.paths"
done
echo "/api/v1/books/search?q=history" > "$RES/common.paths"
awk -v lo="$lo" 'BEGIN { for (i = 0; i < 1000; i++) print "/api/v1/books/" lo + i * 7 }' > "$RES/hot.paths"
awk -v lo="$lo" -v hi="$hi" 'BEGIN { srand(7); for (i = 0; i < 200000; i++) print "/api/v1/books/" int(lo + 7001 + rand() * (hi - lo - 7001)) }' \
    > "$RES/cold.paths"

# --- search by kind of query in PostgreSQL alone, one client ---
# Right after the bulk load the visibility map is unset (index-only walks
# then visit the heap) and the GIN pending lists are unmerged; production
# has had autovacuum pass.  Both states are measured and labelled.
if want kinds; then
log "figure 5: search by kind in PostgreSQL alone (tests/bench/search_kinds.sh)"
while read -r line; do out "$line (right after the load) $(load)"; done \
    < <("$HERE/search_kinds.sh" "$PG" 10)
t=$(date +%s)
# one statement per psql -c: several in one -c are one transaction, and
# VACUUM refuses to run inside one
for tbl in books search_postings catalog_words; do q "VACUUM ANALYZE $tbl"; done
out "VACUUM ANALYZE of books and search_postings: $(( $(date +%s) - t ))s"
while read -r line; do out "$line (vacuumed) $(load)"; done \
    < <("$HERE/search_kinds.sh" "$PG" 20)
fi

# --- a. search, every query to PostgreSQL ---
chat_nginx off
if want mix; then
log "figure 5a: search, cache off, $C clients"
http "search mix (cache off)" "$RES/search.paths" > "$RES/search.line"
http "search \"history\" (cache off)" "$RES/common.paths" > "$RES/common.line"
out "$(cat "$RES/search.line") $(load)"
out "$(cat "$RES/common.line") $(load)"
ours=$(q "EXPLAIN ANALYZE SELECT b.id FROM (SELECT * FROM books b WHERE b.deleted_at IS NULL
          ORDER BY b.popularity DESC, b.id DESC LIMIT 5000) b
          WHERE b.title_doc @@ 'history'::tsquery ORDER BY b.popularity DESC, b.id DESC LIMIT 21" \
       | sed -n 's/.*Execution Time: //p')
rank=$(q "EXPLAIN ANALYZE SELECT id FROM books WHERE search_doc @@ 'history'::tsquery
          AND deleted_at IS NULL ORDER BY ts_rank(search_doc, 'history'::tsquery) DESC, id LIMIT 21" \
       | sed -n 's/.*Execution Time: //p')
out "one \"history\" page in PostgreSQL alone: title tier, popularity walk $ours; GIN + ts_rank over every match $rank"
fi

# --- each kind at one client through the whole stack (cache off) ---
if want stack; then
log "figure 5a: each kind at one client through the stack"
for ((j = 0; j < 9; j++)); do
    out "$("$LOAD" http --port "$PORT" --paths "$RES/kind$j.paths" --concurrency 1 \
        --warmup 0.5 --measure "$KIND_MEAS" --label "kind ${kind_names[j]}, 1 client, whole stack") $(load)"
done
fi

# --- the mix open loop: fixed offered rates, then the ceiling ---
# shellcheck source=tests/bench/bus.sh
. "$HERE/bus.sh"
if want open; then
export REDISCLI_AUTH=${REDISCLI_AUTH:-$(cd "$ROOT" && conf/stack.sh env | sed -n 's/^REDISCLI_AUTH=//p')}
# Open loop: requests are due at the offered rate whatever the answers do,
# and a late one's latency runs from when it was due (chatload http
# --rates), so a stack that falls behind shows in p99 and "late".
open_step() {  # open_step <rate> <measure s> <label>
    bus_settle read 30
    "$LOAD" http --port "$PORT" --paths "$RES/search.paths" --concurrency 256 \
        --warmup 1 --measure "$2" --rates "$1" --label "$3"
}
# carried: achieved within 2 % of offered, p99 under 100 ms, no errors
# and nothing late (figure 1's rule for its ceiling)
carried() {
    awk '{ for (i = 1; i <= NF; i++) {
             if ($i ~ /^offered=/) { split($i, a, /[=\/]/); off = a[2] }
             if ($i ~ /^achieved=/) { split($i, a, /[=\/]/); ach = a[2] }
             if ($i ~ /^p99=/) { p = $i; sub(/^p99=/, "", p); sub(/ms$/, "", p) }
             if ($i == "errors") err = $(i + 1)
             if ($i ~ /^late=/) { late = $i; sub(/^late=/, "", late) } } }
         END { exit !(p != "-" && ach >= 0.98 * off && p + 0 < 100 && err == 0 && late == 0) }'
}
log "figure 5a: the search mix open loop at 200, 500, 1000/s, cache off"
for r in 200 500 1000; do
    out "$(open_step "$r" "$OPEN_MEAS" "search mix open loop (cache off)") $(load)"
done
# the ceiling: from 250/s doubling until a step is not carried, then
# halving the gap until it is within 5 %; at most CEIL_STEPS steps
lo=0 hi=0 r=250 steps=0
: > "$RES/ceiling-search.lines"
while (( steps < CEIL_STEPS )); do
    line=$(open_step "$r" "$STEP_MEAS" "search mix ceiling step")
    steps=$((steps + 1))
    if carried <<< "$line"; then
        echo "$line carried=yes $(load)" >> "$RES/ceiling-search.lines"
        lo=$r
    else
        echo "$line carried=no $(load)" >> "$RES/ceiling-search.lines"
        hi=$r
    fi
    if (( hi == 0 )); then
        r=$((r * 2))
        (( r > 8000 )) && break
    else
        (( (hi - lo) * 20 <= hi )) && break
        r=$(( (lo + hi) / 2 ))
    fi
done
out "search mix ceiling (highest offered rate carried within 2% with p99 < 100 ms, cache off): ${lo}/s"
sed 's/^/  /' "$RES/ceiling-search.lines" >> "$RES/summary.5"
cat "$RES/ceiling-search.lines" >&2

# --- chat at 500 msg/s alone and beside the search mix at its ceiling ---
# isolation.mjs (figure 7's probe) with the mix as what runs beside; the
# ratio is the window's chat p99 over the one measured alone
if (( lo > 0 )); then
    log "figure 5a: chat at 500 msg/s alone and beside the search mix at ${lo}/s"
    bus_settle read 30
    iso=$(set -a; eval "$("$ROOT/conf/stack.sh" env)"; set +a
          node "$HERE/isolation.mjs" --rate 500 --seconds "$ISO_S" --phases search \
              --search-rate "$lo" --search-paths "$RES/search.paths" \
              --chatload "$LOAD" --port "$PORT") \
        || iso="isolation: did not finish"
    while read -r line; do out "$line $(load)"; done <<< "$iso"
fi
fi

# --- b. details from the cache, beside a static file ---
if want cache; then
log "figure 5b: details from the cache, beside nginx serving a static file"
chat_nginx on
http warm "$RES/hot.paths" 2 > /dev/null
size=$(curl -fsS "http://127.0.0.1:$PORT/api/v1/books/$lo" | wc -c)
d=$RUN/static
mkdir -p "$d/tmp" "$d/www"
curl -fsS "http://127.0.0.1:$PORT/api/v1/books/$lo" > "$d/www/book.json"
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
cat > "$d/nginx.conf" <<CONF
$user_line
worker_processes $NGINX_WORKERS;
pid $d/nginx.pid;
error_log $d/error.log notice;
events { worker_connections $NGINX_CONNECTIONS; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
    server {
        listen 127.0.0.1:$NCHAN_PORT;
        location / { root $d/www; default_type application/json; }
    }
}
CONF
nginx -q -p "$d" -c "$d/nginx.conf"
sleep 0.3
echo "/book.json" > "$RES/static.paths"
out "$(http "details from the edge cache ($size bytes)" "$RES/hot.paths")"
out "$(PORT_OVERRIDE=$NCHAN_PORT http "nginx static file ($size bytes)" "$RES/static.paths")"
kill -TERM "$(cat "$d/nginx.pid")" 2>/dev/null || true
fi

# --- c. details that miss the cache ---
if want miss; then
log "figure 5c: details missing the cache"
out "$(http "details, cache misses (worker + PostgreSQL)" "$RES/cold.paths")"
fi
