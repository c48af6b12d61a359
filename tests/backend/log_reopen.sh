#!/usr/bin/env bash
# tests/backend/log_reopen.sh: SIGHUP reopens chat-backend's --log-file.
#
# logrotate's way: rename the log, SIGHUP the supervisor.  Afterwards the
# supervisor and every worker must write to a new file under the old name,
# the renamed file must get nothing more, and the pool must still run and
# stop cleanly on SIGTERM.  Without a log file SIGHUP must not stop it.
# No Redis or PostgreSQL is needed: the workers log their reconnect
# attempts to a closed port, which is what lets us see them write.
#
#   tests/backend/log_reopen.sh [path to chat-backend]
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/backend/chat-backend}
dir=$(mktemp -d)
pass=0
fail=0
pid=""

cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

check() {
    local what=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
        echo "ok: $what"
    else
        fail=$((fail + 1))
        echo "FAILED: $what"
    fi
}

# waits up to $1 tenths of a second for the rest of the line to succeed
wait_until() {
    local n=$1
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

head -c 48 /dev/urandom | base64 -w0 > "$dir/secret"
chmod 600 "$dir/secret"     # the secret reader refuses one others may read

# start <log flags...>: a small pool (chat lane, presence) on dead ports
start() {
    "$bin" --redis 127.0.0.1:1 --pg "host=127.0.0.1 port=1 connect_timeout=1" \
        --token-secret-file "$dir/secret" --workers 1 \
        --lane read:procs=0 --lane auth:procs=0 --lane orders:procs=0 \
        --lane admin:procs=0 --pidfile "$dir/pid" "$@" \
        >> "$dir/stderr" 2>&1 < /dev/null &
    pid=$!
    wait_until 100 test -s "$dir/pid"
}

# the pids that wrote to file $1 (the third field of "date [level] role pid:")
writers() {
    awk '{ sub(":", "", $4); print $4 }' "$1" | sort -u
}

start --log-file "$dir/backend.log"
check "the log file is created" wait_until 100 grep -q "started worker" "$dir/backend.log"
check "a worker writes to it" wait_until 100 grep -q "chat [0-9]*: redis" "$dir/backend.log"
check "nothing on stderr" test ! -s "$dir/stderr"

mv "$dir/backend.log" "$dir/backend.log.1"
kill -HUP "$pid"
check "the supervisor reopens the path" \
    wait_until 50 grep -q "got SIGHUP: reopened $dir/backend.log" "$dir/backend.log"
# the chat worker retries Redis at most every 5 s, so within 7 s it logs
check "the worker writes to the new file" \
    wait_until 70 grep -q "chat [0-9]*: redis" "$dir/backend.log"
sleep 1
old_size=$(stat -c %s "$dir/backend.log.1")
sleep 6
check "the renamed file gets nothing more" \
    test "$(stat -c %s "$dir/backend.log.1")" = "$old_size"
check "every process writing before writes after" \
    test "$(writers "$dir/backend.log.1" | grep -c .)" -le "$(writers "$dir/backend.log" | grep -c .)"
check "the pool still runs after SIGHUP" kill -0 "$pid"

kill -TERM "$pid"
check "SIGTERM still stops it" wait_until 150 grep -q "supervisor [0-9]*: stopped" "$dir/backend.log"
wait "$pid"
check "exit status 0" test $? -eq 0
pid=""

# without a log file: SIGHUP is logged and changes nothing
start
kill -HUP "$pid"
check "without --log-file SIGHUP is only logged" \
    wait_until 50 grep -q "no --log-file, nothing to reopen" "$dir/stderr"
sleep 0.5
check "and the pool still runs" kill -0 "$pid"
kill -TERM "$pid"
wait "$pid"
pid=""

# a log file that cannot be opened is an error before anything starts
"$bin" --token-secret-file "$dir/secret" --log-file "$dir/no/such/dir/log" \
    > /dev/null 2> "$dir/err"
rc=$?
check "an unopenable --log-file exits 2" test "$rc" -eq 2
check "and says why" grep -q "cannot open" "$dir/err"
"$bin" --token-secret-file "$dir/secret" --log-file relative.log \
    > /dev/null 2> "$dir/err"
check "a relative --log-file is refused (workers reopen it by name)" test $? -eq 2

echo "log_reopen: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
