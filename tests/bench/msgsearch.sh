#!/usr/bin/env bash
# Figure 9 of the benchmark: message search (GET /api/v1/messages/search)
# over many stored messages.  Called by bench.sh on its side stack; it
# inherits PORT, PG, RES and LOAD from there (and runs by hand on any
# stack with those set: tests/bench/README.md, figure 9).
#
#   tests/bench/msgsearch.sh full|quick
#
# full: 10,000,000 messages; quick: 100,000 (BENCH_MESSAGES overrides).
# Seeded straight into PostgreSQL with generate_series, in transactions
# of at most 1,000,000 rows (one per core at a time), with every index of
# messages in place and kept up to date (the search's GIN index
# included), like a server that has been taking messages:
#   - one conversation per 200 messages (50,000 at 10 M), each with two
#     members of a pool of users who take turns sending; every
#     conversation gets the same number of messages, over a year;
#   - text: two phrases of 2 to 6 words, each one of 100,000 phrases drawn
#     once from a 300-word chat vocabulary with a skewed (power-law)
#     choice, so a few words are in most messages and the tail in under
#     1 %; one message in 50 also names an invoice number (invoiceNNNN,
#     5,000 of them: a word in a few dozen messages);
#   - the searcher, registered through the API, is a member of one
#     conversation in 250 (200 at 10 M, at least 4), spread evenly: the
#     share of a busy person on a big server.
# Then, at one client per kind of query (chatload http, keep-alive, the
# searcher's bearer token): p50/p99 through the API of a common word, a
# mid-frequency word, two words, a prefix, a rare word, a word found
# nowhere; and PostgreSQL's own time for the same query (the op's SQL,
# taken from backend/chat/op_search.c by the preprocessor, prepared with
# a generic plan as the worker prepares it, EXPLAIN ANALYZE EXECUTE; the
# median of 5).  Both right after the load (ANALYZE only) and, in full
# mode, after VACUUM ANALYZE (each labelled).  Then the mix of all kinds
# at 4 and 16 concurrent clients.  Prints lines into $RES/summary.9;
# figures, never assertions.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=${1:-full}
: "${PORT:?}" "${PG:?}" "${RES:?}" "${LOAD:?}"

case "$MODE" in
    full)  MSGS=${BENCH_MESSAGES:-10000000} WARM=2 MEAS=10 VACUUM=1 ;;
    quick) MSGS=${BENCH_MESSAGES:-100000} WARM=1 MEAS=3 VACUUM=0 ;;
    *)     echo "usage: $0 full|quick" >&2; exit 2 ;;
esac
CHUNK=1000000
CONVS=$(( MSGS / 200 > 20 ? MSGS / 200 : 20 ))
USERS=$(( CONVS / 5 > 10 ? CONVS / 5 : 10 ))
SHARE=$(( CONVS / 250 > 4 ? CONVS / 250 : 4 ))

log() { printf 'bench: %s\n' "$*" >&2; }
out() { printf '%s\n' "$1" >> "$RES/summary.9"; printf '%s\n' "$1" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
q() { psql "$PG" -XtAq -v ON_ERROR_STOP=1 "$@"; }

# --- the searcher, through the API ---
reg=$(curl -fsS -XPOST -H 'content-type: application/json' \
    -d "{\"email\":\"bench-msgsearch-$$@bench.invalid\",\"password\":\"bench-password-1\",\"display_name\":\"Bench searcher\"}" \
    "http://127.0.0.1:$PORT/api/v1/auth/register")
tok=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<< "$reg")
me=$(q -c "SELECT id FROM users WHERE email = 'bench-msgsearch-$$@bench.invalid'")
if [ -z "$tok" ] || [ -z "$me" ]; then die "could not register the searcher"; fi
auth="Authorization: Bearer $tok"

# --- users and conversations ---
log "figure 9: $USERS users, $CONVS conversations, the searcher in $SHARE"
read -r UB CB < <(q -F ' ' -v tag="$$" -v n="$USERS" -v c="$CONVS" -v s="$SHARE" -v me="$me" <<'SQL'
BEGIN;
INSERT INTO users (email, display_name, password_hash)
SELECT 'bench-ms-' || :'tag' || '-' || g || '@bench.invalid', 'Sender ' || g,
       (SELECT password_hash FROM users WHERE id = :me)
  FROM generate_series(1, :n) g ORDER BY g;
SELECT max(id) - :n + 1 AS ub FROM users WHERE email LIKE 'bench-ms-' || :'tag' || '-%' \gset
INSERT INTO conversations (type, title, created_by, created_at)
SELECT 'group', 'Bench chat ' || k, :ub + (2 * k) % :n, now() - interval '366 days'
  FROM generate_series(0, :c - 1) k ORDER BY k;
SELECT max(id) - :c + 1 AS cb FROM conversations WHERE title LIKE 'Bench chat %' \gset
INSERT INTO conversation_members (conversation_id, user_id)
SELECT :cb + k, :ub + (2 * k + v) % :n
  FROM generate_series(0, :c - 1) k, (VALUES (0), (1)) x(v);
INSERT INTO conversation_members (conversation_id, user_id)
SELECT :cb + k * (:c / :s), :me FROM generate_series(0, :s - 1) k;
COMMIT;
SELECT :ub, :cb;
SQL
)
[ -n "${CB:-}" ] || die "could not seed the conversations"

# --- messages, CHUNK at a time ---
# Word picks are what costs: 100,000 phrases of 2 to 6 words are drawn
# once, and each message joins two of them chosen by hashes of its number
# (10^10 different texts, the same word frequencies as drawing each word).
t=$(date +%s)
q -v c="$CONVS" <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_phrases;
CREATE UNLOGGED TABLE bench_phrases (id int PRIMARY KEY, text text NOT NULL);
-- the vocabulary, most common first: the pick below favours the front
WITH v AS (SELECT ARRAY[
 'the','i','you','to','a','and','it','is','we','that','ok','for','on','in','at','of','me','can','be','tomorrow',
 'yes','no','this','will','just','so','what','have','do','with','meeting','are','call','thanks','lol','today','see','now','not','time',
 'get','good','later','know','think','going','need','when','how','send','there','my','your','up','out','great','here','sure','like','back',
 'sorry','night','morning','lunch','dinner','week','work','home','office','team','project','deadline','review','update','file','photo','link','price','order','train',
 'bus','flight','hotel','weekend','friday','monday','coffee','party','birthday','doctor','dentist','school','kids','game','movie','music','book','car','rain','weather',
 'report','budget','client','contract','invoice','payment','bank','plan','idea','question','answer','problem','issue','fix','bug','release','deploy','server','database','login',
 'password','email','phone','address','ticket','store','market','shopping','groceries','recipe','pizza','sushi','wine','beer','gym','run','walk','park','beach','holiday',
 'vacation','summer','winter','spring','autumn','january','february','march','april','may','june','july','august','september','october','november','december','anniversary','gift','cake',
 'wedding','baby','mom','dad','sister','brother','uncle','aunt','cousin','grandma','neighbour','landlord','rent','apartment','kitchen','garden','dog','cat','vet','plumber',
 'lisbon','paris','kyoto','oslo','vienna','berlin','madrid','rome','london','dublin','maria','james','aiko','omar','elena','kwame','sofia','liam','priya','mateo',
 'ingrid','chen','presentation','slides','agenda','minutes','draft','final','signed','approved','postponed','cancelled','confirmed','booked','delayed','arrived','landed','leaving','waiting','ready',
 'amazing','terrible','funny','weird','tired','hungry','busy','free','late','early','soon','maybe','definitely','probably','honestly','anyway','btw','congrats','cheers','welcome',
 'football','tennis','chess','guitar','piano','concert','festival','museum','gallery','theatre','library','hospital','pharmacy','airport','station','taxi','bike','scooter','parking','traffic',
 'quarterly','forecast','spreadsheet','dashboard','metrics','roadmap','sprint','retro','standup','onboarding','interview','candidate','offer','salary','promotion','resignation','audit','compliance','lawyer','notary',
 'telescope','origami','kayak','saxophone','sourdough','bonsai','marathon','calligraphy','astronomy','beekeeping'
] AS w)
INSERT INTO bench_phrases
SELECT k, array_to_string(ARRAY(
           SELECT v.w[1 + floor(power(random(), 3) * array_length(v.w, 1))::int]
             FROM generate_series(1, 2 + k % 5)), ' ')
  FROM generate_series(0, 99999) k, v;
ANALYZE bench_phrases;
SQL
# load_chunk <lo> <hi>: messages lo .. hi - 1 in one transaction
load_chunk() {
    q -v lo="$1" -v hi="$2" -v n="$USERS" -v c="$CONVS" -v total="$MSGS" \
      -v ub="$UB" -v cb="$CB" <<'SQL'
INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, text, created_at)
SELECT :cb + g % :c, g / :c + 1,
       :ub + (2 * (g % :c) + (g / :c) % 2) % :n,
       'ms' || g,
       a.text || ' ' || b.text
       || CASE WHEN g % 50 = 0 THEN ' invoice' || (g / 50) % 5000 ELSE '' END,
       now() - interval '365 days' * (1 - g::float8 / :total)
  FROM generate_series(:lo::bigint, :hi - 1) g
  JOIN bench_phrases a ON a.id = (g * 7919) % 100000
  JOIN bench_phrases b ON b.id = (g * 104729 + 13) % 100000;
SQL
}
# one transaction per core at a time (BENCH_LOAD_JOBS)
JOBS=${BENCH_LOAD_JOBS:-$(nproc)}
pids=()
for ((lo = 0; lo < MSGS; lo += CHUNK)); do
    hi=$(( lo + CHUNK < MSGS ? lo + CHUNK : MSGS ))
    load_chunk "$lo" "$hi" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ] || [ "$hi" -ge "$MSGS" ]; then
        for p in "${pids[@]}"; do wait "$p" || die "loading the messages failed"; done
        pids=()
        log "figure 9: $hi of $MSGS messages ($(( $(date +%s) - t ))s)"
    fi
done
q -c "DROP TABLE bench_phrases"
q -v c="$CONVS" -v cb="$CB" -v m="$MSGS" \
  -c "UPDATE conversations SET last_seq = (SELECT max(seq) FROM messages WHERE conversation_id = conversations.id),
             last_activity_at = now() WHERE id BETWEEN $CB AND $CB + $CONVS - 1" >/dev/null
load_s=$(( $(date +%s) - t ))
t=$(date +%s)
q -c "ANALYZE messages; ANALYZE conversation_members"
visible=$(q -c "SELECT count(*) FROM messages m JOIN conversation_members me
                 ON me.conversation_id = m.conversation_id WHERE me.user_id = $me")
out "messages: $(q -c "SELECT count(*) FROM messages") stored (these $MSGS loaded in ${load_s}s, indexes kept up, ANALYZE $(( $(date +%s) - t ))s), $CONVS conversations; the searcher is in $SHARE of them ($visible messages); search index $(q -c "SELECT pg_size_pretty(sum(pg_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'messages_search_doc_idx'::regclass"), table $(q -c "SELECT pg_size_pretty(pg_total_relation_size('messages') + coalesce(sum(pg_total_relation_size(inhrelid)), 0)) FROM pg_inherits WHERE inhparent = 'messages'::regclass") with indexes"

# a fresh token: a load of 10 M messages outlives the first one
tok=$(curl -fsS -XPOST -H 'content-type: application/json' \
    -d "{\"email\":\"bench-msgsearch-$$@bench.invalid\",\"password\":\"bench-password-1\"}" \
    "http://127.0.0.1:$PORT/api/v1/auth/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$tok" ] || die "could not log the searcher in again"
auth="Authorization: Bearer $tok"

# --- the queries: kind, q (URL-encoded) ---
KINDS=(common "meeting" mid "dentist" two "meeting%20tomorrow" prefix "meet" rare "invoice1234" none "zyzzyva")
# shares of the messages holding each word (the whole table)
# (one pass over the table: the search index is per conversation, so a
# count over all of them reads every message once)
shares=$(q -F ' ' -c "SELECT 'meeting=' || count(*) FILTER (WHERE d @@ 'meeting'),
                             'dentist=' || count(*) FILTER (WHERE d @@ 'dentist'),
                             'invoice1234=' || count(*) FILTER (WHERE d @@ 'invoice1234')
                        FROM (SELECT to_tsvector('simple', text) AS d FROM messages
                               WHERE deleted_at IS NULL) s")
out "messages holding: $shares"

# the op's own SQL: backend/chat/op_search.c's chat_search_sql through the
# preprocessor (its macros expanded), its string literals joined
search_sql() {
    (cd "$ROOT/backend" && cc -E -Iengine -Ichat -I../ngx_chat_module -I/usr/include/postgresql \
        chat/op_search.c) | python3 -c "$(cat <<'PY'
import ast, re, sys
src = sys.stdin.read()
lit = r'"(?:[^"\\]|\\.)*"'
body = re.search(r'chat_search_sql\[\]\s*=((?:\s*' + lit + r')+)\s*;', src).group(1)
print(''.join(ast.literal_eval(s) for s in re.findall(lit, body)))
PY
)"
}
SQL_TEXT=$(search_sql)
[ -n "$SQL_TEXT" ] || die "could not read the search SQL from op_search.c"

# pg_time <words>: PostgreSQL's time for the op's query: prepared once and
# run as the worker runs it (backend/engine/db.c: a prepared statement,
# plan_cache_mode = force_generic_plan), EXPLAIN (ANALYZE, TIMING OFF)
# 6 times in one session; the median Execution Time of the last 5, in ms
pg_time() {
    local args=("$PG" -XtAq -c "SET plan_cache_mode = force_generic_plan" -c "PREPARE s AS $SQL_TEXT") i
    for ((i = 0; i < 6; i++)); do
        args+=(-c "EXPLAIN (ANALYZE, TIMING OFF) EXECUTE s($me, '$1', NULL, NULL, NULL, NULL, 21)")
    done
    psql "${args[@]}" | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p' | tail -n +2 | sort -n | sed -n 3p
}

http() {    # http <label> <concurrency> <paths file>
    "$LOAD" http --port "$PORT" --paths "$3" --concurrency "$2" --warmup "$WARM" \
        --measure "$MEAS" --label "$1" --header "$auth"
}

# by_kind <state>: one line per kind at one client, PostgreSQL beside it
by_kind() {
    local i kind word hits state=$1
    for ((i = 0; i < ${#KINDS[@]}; i += 2)); do
        kind=${KINDS[i]} word=${KINDS[i + 1]}
        echo "/api/v1/messages/search?q=$word" > "$RES/msgsearch-$kind.paths"
        hits=$(curl -fsS -H "$auth" "http://127.0.0.1:$PORT/api/v1/messages/search?q=$word" \
               | grep -o '"snippet"' | wc -l || true)
        out "$(http "search $kind \"${word//%20/ }\" ($hits on page 1), 1 client, $state" 1 \
               "$RES/msgsearch-$kind.paths") | PostgreSQL alone $(pg_time "${word//%20/ }") ms"
    done
}

log "figure 9: one client per kind of query (right after the load)"
by_kind "after the load, ANALYZE only"
if [ "$VACUUM" = 1 ]; then
    t=$(date +%s)
    q -c "VACUUM ANALYZE messages"
    out "VACUUM ANALYZE messages: $(( $(date +%s) - t ))s"
    by_kind "vacuumed"
fi

: > "$RES/msgsearch-mix.paths"
for ((i = 0; i < ${#KINDS[@]}; i += 2)); do
    echo "/api/v1/messages/search?q=${KINDS[i + 1]}" >> "$RES/msgsearch-mix.paths"
done
for c in 4 16; do
    log "figure 9: the mix at $c clients"
    out "$(http "search mix of the 6 kinds, $c clients" "$c" "$RES/msgsearch-mix.paths")"
done
