#!/usr/bin/env bash
# tests/package/run.sh: the Debian packages installed, run and purged on
# this machine, the way an operator would use them.
#
#   make test-package      (builds them first: make deb)
#
# 0. make install DESTDIR=<tmp> PREFIX=/opt/chat lays out the same files;
# 1. install build/deb/{libnginx-mod-http-chat,chat-backend}_*.deb with apt
#    under a policy-rc.d that forbids service starts (the host's nginx is
#    neither reloaded nor started by the module's trigger);
# 2. check the files are where Debian puts them (dpkg -L), the enabled
#    snippet, the user, the secret's owner and mode, the unit (systemd-analyze
#    verify), the version;
# 3. a private Redis and PostgreSQL on side ports (PKG_REDIS_PORT 8390,
#    PKG_PG_PORT 8440), `chat-backend migrate` from /usr/share/chat-backend/sql,
#    the installed chat-backend as its system user with the installed
#    settings file, and the stock /usr/sbin/nginx with the enabled snippet
#    and the shipped sample site on PKG_PORT (8280), its own pid and logs;
# 4. smoke: health 200, register, login, a conversation, an HTTP message
#    and its history; the module logged its version;
# 5. stop what it started, purge both packages, check no process runs the
#    installed binary and no file of theirs is left.
#
# Prints "N passed, N failed"; exit status 1 on any failure.  Needs root
# (it installs packages).  Refuses to run when either package is already
# installed: that installation is not the test's to purge.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORT=${PKG_PORT:-8280}
REDIS_PORT=${PKG_REDIS_PORT:-8390}
PG_PORT=${PKG_PG_PORT:-8440}
PKGS=(libnginx-mod-http-chat chat-backend)
VERSION=$(sed -n 's/^#define CHAT_VERSION  *"\(.*\)"/\1/p' "$ROOT/protocol/chat_version.h")
PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
POLICY=/usr/sbin/policy-rc.d
BASE=http://127.0.0.1:$PORT

pass=0
fail=0
tmp=""
saved_policy=""

ok()   { pass=$((pass + 1)); echo "ok: $*"; }
bad()  { fail=$((fail + 1)); echo "FAILED: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

wait_until() {
    local n=$1
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.2
        n=$((n - 1))
    done
    return 1
}

as_pg() { runuser -u postgres -- "$@"; }

# policy-rc.d 101: no invoke-rc.d / deb-systemd-invoke start, stop or
# reload while dpkg runs (see conf/README.md, deps.sh)
forbid_services() {
    if [ -e "$POLICY" ]; then
        saved_policy=$tmp/policy-rc.d.saved
        cp -p "$POLICY" "$saved_policy"
    fi
    printf '#!/bin/sh\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
}

allow_services() {
    if [ -n "$saved_policy" ]; then
        cp -p "$saved_policy" "$POLICY"
        saved_policy=""
    else
        rm -f "$POLICY"
    fi
}

stop_pidfile() {
    local f=$1 sig=$2 pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    kill "-$sig" "$pid" 2>/dev/null || return 0
    wait_until 100 bash -c "! kill -0 $pid 2>/dev/null"
}

stop_all() {
    stop_pidfile "$tmp/nginx/nginx.pid" QUIT
    stop_pidfile "$tmp/backend/backend.pid" TERM
    [ -n "$tmp" ] && [ -d "$tmp/pg/data" ] && \
        as_pg "$PG_BIN/pg_ctl" -D "$tmp/pg/data" -m fast -w stop >/dev/null 2>&1
    stop_pidfile "$tmp/redis/redis.pid" TERM
}

purge() {
    forbid_services
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${PKGS[@]}" >/dev/null 2>&1
    allow_services
}

cleanup() {
    stop_all
    # packages installed by this run and still there: purge them
    if [ -n "$tmp" ] && [ -f "$tmp/installed" ]; then
        dpkg-query -W -f='${Status}' chat-backend 2>/dev/null | grep -q installed && purge
    fi
    allow_services
    [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || { echo "package test: needs root (it installs packages)"; exit 1; }

for p in "${PKGS[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        echo "package test: $p is already installed here; not ours to purge, not running"
        exit 1
    fi
done

debs=()
for p in "${PKGS[@]}"; do
    f=$(find "$ROOT/build/deb" -maxdepth 1 -name "${p}_${VERSION}_*.deb" | head -1)
    [ -n "$f" ] || { echo "package test: no build/deb/${p}_${VERSION}_*.deb: run make deb"; exit 1; }
    debs+=("$f")
done

tmp=$(mktemp -d /tmp/chat-package-test.XXXXXX)
chmod 755 "$tmp"

# ---- 0. make install, for other distributions ---------------------------------
echo "== make install DESTDIR=... PREFIX=/opt/chat"
dest=$tmp/destdir
make -s -C "$ROOT" install DESTDIR="$dest" PREFIX=/opt/chat > "$tmp/install.log" 2>&1
check "make install DESTDIR PREFIX succeeds" test $? -eq 0 || tail -20 "$tmp/install.log"
for f in lib/nginx/modules/ngx_chat_module.so share/nginx/modules-available/mod-http-chat.conf \
         share/doc/libnginx-mod-http-chat/examples/chat-site.conf sbin/chat-backend \
         share/man/man8/chat-backend.8 lib/systemd/system/chat-backend.service \
         etc/chat-backend/chat-backend.conf share/chat-backend/sql/migrate.sh; do
    check "make install puts /opt/chat/$f" test -e "$dest/opt/chat/$f"
done
check "its snippet and unit name the PREFIX's paths" \
    bash -c "grep -q 'load_module /opt/chat/lib/nginx/modules/ngx_chat_module.so;' '$dest/opt/chat/share/nginx/modules-available/mod-http-chat.conf' && grep -q '^ExecStart=/opt/chat/sbin/chat-backend' '$dest/opt/chat/lib/systemd/system/chat-backend.service'"
# no database here: reaching migrate.sh's own error proves it was found
check "that chat-backend finds its migrations beside it (../share/chat-backend/sql)" \
    bash -c "'$dest/opt/chat/sbin/chat-backend' --pg 'host=127.0.0.1 port=1 connect_timeout=1' migrate 2>&1 | grep -q 'migrate: cannot reach the database'"

# ---- 1. install -------------------------------------------------------------
# with conf/deps.sh, the installer make run and make test use: its
# policy-rc.d is what keeps the module's nginx-reload trigger (and any
# postinst) off the host's services
echo "== install ${debs[*]##*/} (conf/deps.sh)"
policy_before=$(cat "$POLICY" 2>/dev/null || echo none)
touch "$tmp/installed"
DEPS_LOG=$tmp/apt.log "$ROOT/conf/deps.sh" "${debs[@]}"
rc=$?
check "conf/deps.sh ./*.deb installs them" test $rc -eq 0 || tail -20 "$tmp/apt.log"
check "deps.sh put policy-rc.d back as it was" \
    test "$(cat "$POLICY" 2>/dev/null || echo none)" = "$policy_before"
check "deps.sh starts, stops or reloads no service (nothing but denials in apt's output)" \
    bash -c "! grep -E 'Starting|Stopping|Reloading|Restarting|Triggering nginx reload' '$tmp/apt.log'"
for p in "${PKGS[@]}"; do
    check "$p is installed" bash -c "dpkg-query -W -f='\${Status}' $p | grep -q 'ok installed'"
done
dpkg -L "${PKGS[@]}" | sort -u > "$tmp/files"

# ---- 2. files -----------------------------------------------------------------
echo "== files"
for f in /usr/lib/nginx/modules/ngx_chat_module.so \
         /usr/share/nginx/modules-available/mod-http-chat.conf \
         /usr/share/doc/libnginx-mod-http-chat/examples/chat-site.conf \
         /usr/share/doc/libnginx-mod-http-chat/copyright \
         /usr/sbin/chat-backend \
         /usr/share/man/man8/chat-backend.8.gz \
         /lib/systemd/system/chat-backend.service \
         /etc/chat-backend/chat-backend.conf \
         /usr/share/chat-backend/sql/migrate.sh \
         /usr/share/chat-backend/sql/001_accounts.sql \
         /usr/share/doc/chat-backend/copyright; do
    check "dpkg -L lists $f and it exists" bash -c "grep -qx '$f' '$tmp/files' && test -e '$f'"
done
check "the snippet is enabled in /etc/nginx/modules-enabled" \
    test "$(readlink /etc/nginx/modules-enabled/50-mod-http-chat.conf)" = \
         /usr/share/nginx/modules-available/mod-http-chat.conf
check "the module depends on the nginx ABI" \
    bash -c "dpkg-query -W -f='\${Depends}' libnginx-mod-http-chat | grep -q 'nginx-abi-'"
check "the system user chat-backend exists" bash -c "getent passwd chat-backend >/dev/null"
check "the token secret is 0640 root:chat-backend" \
    test "$(stat -c '%a %U:%G' /etc/chat-backend/token_secret)" = "640 root:chat-backend"
check "the token secret is at least 32 bytes" \
    test "$(stat -c %s /etc/chat-backend/token_secret)" -ge 32
check "chat-backend.conf is a conffile" \
    bash -c "dpkg-query -W -f='\${Conffiles}' chat-backend | grep -q /etc/chat-backend/chat-backend.conf"
check "chat-backend --version is $VERSION" \
    test "$(/usr/sbin/chat-backend --version)" = "chat-backend $VERSION"
check "the man page reads" bash -c "man -l /usr/share/man/man8/chat-backend.8.gz 2>/dev/null | grep -q 'SIGHUP'"
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify chat-backend.service" \
        bash -c "systemd-analyze verify /lib/systemd/system/chat-backend.service 2>&1 | grep -v -e 'man chat-backend' -e '^$' | { ! grep .; }"
fi
check "the unit is neither enabled nor started by the install" \
    test ! -e /etc/systemd/system/multi-user.target.wants/chat-backend.service

# ---- 3. run ----------------------------------------------------------------
echo "== Redis on $REDIS_PORT, PostgreSQL on $PG_PORT"
mkdir -p "$tmp/redis" "$tmp/pg" "$tmp/backend" "$tmp/nginx/tmp"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$tmp/redis" \
    --pidfile "$tmp/redis/redis.pid" --daemonize yes --appendonly yes \
    --logfile "$tmp/redis/redis.log" --save "" >/dev/null
chown postgres: "$tmp/pg"
as_pg "$PG_BIN/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 \
    --locale=C.UTF-8 > "$tmp/pg/initdb.log" 2>&1
as_pg "$PG_BIN/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/postgres.log" -w -t 30 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $tmp/pg" start >/dev/null
check "PostgreSQL is up" as_pg psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE chat"
check "Redis is up" wait_until 50 bash -c "redis-cli -p $REDIS_PORT ping 2>/dev/null | grep -q PONG"

conninfo="host=127.0.0.1 port=$PG_PORT dbname=chat user=postgres"
check "chat-backend migrate applies the shipped migrations" \
    bash -c "/usr/sbin/chat-backend --pg '$conninfo' migrate > '$tmp/migrate.log' 2>&1 && grep -q 'applied 001_accounts.sql' '$tmp/migrate.log'"
check "chat-backend migrate again applies nothing" \
    bash -c "/usr/sbin/chat-backend --pg '$conninfo' migrate 2>&1 | grep -q '^migrate: 0 applied'"

echo "== chat-backend (installed, as chat-backend) and nginx (stock, the sample site) on $PORT"
chown chat-backend: "$tmp/backend"
# the unit's way: the installed settings file, then what this test moves
runuser -u chat-backend -- env -i PATH=/usr/bin:/bin bash -c "
    set -a; . /etc/chat-backend/chat-backend.conf; set +a
    CHAT_REDIS=127.0.0.1:$REDIS_PORT CHAT_PG='$conninfo' \
    exec setsid /usr/sbin/chat-backend --workers 1 \
        --lane auth:procs=1 --lane orders:procs=1 --lane admin:procs=0 \
        --pidfile '$tmp/backend/backend.pid' --log-file '$tmp/backend/backend.log' \
        < /dev/null > '$tmp/backend/stderr' 2>&1 &"
check "chat-backend starts as its user, reading the 0640 secret" \
    wait_until 50 test -s "$tmp/backend/backend.pid"

# the sample site, moved to this test's ports; everything else as shipped
sed -e "s|listen 80;|listen 127.0.0.1:$PORT;|" -e '/listen \[::\]:80;/d' \
    -e "s|chat_redis 127.0.0.1:6379;|chat_redis 127.0.0.1:$REDIS_PORT;|" \
    -e "s|chat_ws_allowed_origins .*;|chat_ws_allowed_origins http://127.0.0.1:$PORT;|" \
    /usr/share/doc/libnginx-mod-http-chat/examples/chat-site.conf > "$tmp/nginx/chat-site.conf"
cat > "$tmp/nginx/nginx.conf" <<CONF
# the module as the package enabled it (not modules-enabled/*: other
# modules of the host are none of this test's business)
include /etc/nginx/modules-enabled/50-mod-http-chat.conf;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log notice;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;
    include $tmp/nginx/chat-site.conf;
}
CONF
# nginx's own prefix (/usr/share/nginx), as the snippet's relative
# modules/ path expects; every other path in the config is absolute
check "nginx -t accepts the sample site" /usr/sbin/nginx -q -t -c "$tmp/nginx/nginx.conf"
/usr/sbin/nginx -c "$tmp/nginx/nginx.conf" 2>>"$tmp/nginx/error.log"
check "nginx starts" wait_until 50 test -s "$tmp/nginx/nginx.pid"

# ---- 4. smoke ---------------------------------------------------------------
echo "== smoke"
# api METHOD PATH [BODY] [TOKEN]: prints the status, then the body
api() {
    local auth=()
    [ -n "${4:-}" ] && auth=(-H "Authorization: Bearer $4")
    curl -s -m 30 -o "$tmp/body" -w '%{http_code}' -X "$1" "${auth[@]}" \
        -H 'Content-Type: application/json' ${3:+--data "$3"} "$BASE$2"
}
json() { node -e "let j=JSON.parse(require('fs').readFileSync('$tmp/body'));console.log($1)"; }

check "GET /api/v1/health is 200" \
    wait_until 150 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $BASE/api/v1/health)\" = 200 ]"
check "the module logged its version" grep -q "chat module $VERSION" "$tmp/nginx/error.log"

st=$(api POST /api/v1/auth/register '{"email":"ann@example.com","password":"password one","display_name":"Ann"}')
check "register is 201" test "$st" = 201
st=$(api POST /api/v1/auth/register '{"email":"bob@example.com","password":"password two","display_name":"Bob"}')
bob=$(json j.user.id 2>/dev/null)
check "a second register is 201" test "$st" = 201
st=$(api POST /api/v1/auth/login '{"email":"ann@example.com","password":"password one"}')
token=$(json j.token 2>/dev/null)
check "login is 200 with a token" test "$st" = 200 -a -n "$token"
st=$(api POST /api/v1/conversations "{\"type\":\"direct\",\"user_id\":$bob}" "$token")
conv=$(json j.conversation.id 2>/dev/null || true)
[ -z "$conv" ] && conv=$(json j.id 2>/dev/null)
check "a conversation is created" test "$st" = 201 -o "$st" = 200
st=$(api POST "/api/v1/conversations/$conv/messages" '{"client_msg_id":"pkg-1","text":"hello from the packages"}' "$token")
check "a message is sent over HTTP (201)" test "$st" = 201
st=$(api GET "/api/v1/conversations/$conv/messages" "" "$token")
check "its history holds it" bash -c "[ $st = 200 ] && grep -q 'hello from the packages' '$tmp/body'"
check "every worker writes to the installed backend's log" grep -q "started as consumer" "$tmp/backend/backend.log"

# ---- 5. stop, purge ---------------------------------------------------------
echo "== stop and purge"
stop_pidfile "$tmp/nginx/nginx.pid" QUIT
stop_pidfile "$tmp/backend/backend.pid" TERM
check "chat-backend stopped cleanly" grep -q "supervisor [0-9]*: stopped" "$tmp/backend/backend.log"
purge
for p in "${PKGS[@]}"; do
    check "$p is purged" bash -c "! dpkg-query -W -f='\${Status}' $p 2>/dev/null | grep -q installed"
done
left=$(while read -r f; do
           [ -d "$f" ] && continue       # shared directories (/usr, /etc) stay
           [ -e "$f" ] || [ -L "$f" ] && echo "$f"
       done < "$tmp/files")
check "no file of the packages is left${left:+: $left}" test -z "$left"
check "/etc/chat-backend is gone (secret included)" test ! -e /etc/chat-backend
check "the modules-enabled link is gone" test ! -e /etc/nginx/modules-enabled/50-mod-http-chat.conf -a ! -L /etc/nginx/modules-enabled/50-mod-http-chat.conf
running=$(for p in /proc/[0-9]*; do
              case $(readlink "$p/exe" 2>/dev/null) in
                  /usr/sbin/chat-backend*) echo "${p#/proc/}" ;;
              esac
          done)
check "no process runs the installed chat-backend${running:+: $running}" test -z "$running"
rm -f "$tmp/installed"

echo "package: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
