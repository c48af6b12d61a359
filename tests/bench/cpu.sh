# shellcheck shell=bash
# tests/bench/cpu.sh: sourced by bench.sh and checkout.sh (needs RUN, the
# stack's run directory, and for "load" GEN_PIDS): where the CPU goes, per
# component of the stack, read from /proc.

# cpu_ticks <component>...: "<component> <ticks>" for each, the CPU clock
# ticks (user + system) its processes and all their descendants used so
# far, the reaped ones included (cutime); /proc is read once for all, so
# the snapshot is quick and the components' figures are of one instant
cpu_ticks() {
    local c groups=""
    for c in "$@"; do groups+="$c=$(component_pids "$c" | tr '\n' ' ');"; done
    # the time of the snapshot ("time <s>"), then the snapshot itself;
    # processes come and go while cat reads: a vanished one is no error
    echo "time $(date +%s.%N)"
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v groups="$groups" '
        {
            i = length($0); while (i > 0 && substr($0, i, 1) != ")") i--
            split(substr($0, i + 2), f, " ")
            ppid[$1] = f[2]; t[$1] = f[12] + f[13] + f[14] + f[15]
        }
        END {
            ng = split(groups, g, ";")
            for (k = 1; k <= ng; k++) {
                if (g[k] == "") continue
                split(g[k], kv, "="); delete in_tree
                n = split(kv[2], r, " "); for (i = 1; i <= n; i++) in_tree[r[i]] = 1
                do { more = 0
                     for (p in ppid) if (!(p in in_tree) && (ppid[p] in in_tree)) { in_tree[p] = 1; more = 1 }
                } while (more)
                sum = 0; for (p in in_tree) sum += t[p]
                print kv[1], sum + 0
            }
        }'
}

# the processes of each component, as root pids (their descendants count too)
component_pids() {
    case "$1" in
        nginx)    cat "$RUN/nginx/nginx.pid" ;;
        nchan)    cat "$RUN/nchan/nginx.pid" ;;
        redis)    cat "$RUN/redis/redis.pid" ;;
        postgres) head -1 "$RUN/pg/data/postmaster.pid" ;;
        workers)  cat "$RUN/backend/backend.pid" ;;
        provider) cat "$RUN/payments/provider.pid" ;;
        load)     echo "${GEN_PIDS[*]}" ;;
    esac
}
