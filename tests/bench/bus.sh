# shellcheck shell=bash
# tests/bench/bus.sh: sourced by bench.sh and catalog.sh (needs REDIS_PORT
# and REDISCLI_AUTH, and a log function).
#
# bus_settle <lane> [seconds]: waits until no worker has anything left to
# read or acknowledge on the lane's command streams, chat:cmd:<lane>:{0..3}
# (an overloaded step leaves a backlog that would slow the next one: a
# client that gives up on a request does not take its command off the bus)

#
# The lag is taken no higher than the stream's length, as the edge's load
# shedding takes it (chat_script_stream_depth, protocol/chat_scripts.c):
# once entries were trimmed Redis can keep reporting a lag of thousands
# for a stream that holds none, and the wait would last its full time.
bus_settle() {
    local lane=$1 secs=${2:-60} i s left len
    for ((i = 0; i < secs * 5; i++)); do
        left=0
        for ((s = 0; s < 4; s++)); do
            len=$(redis-cli -p "$REDIS_PORT" XLEN "chat:cmd:$lane:{$s}" 2>/dev/null || echo 0)
            left=$(( left + $(redis-cli -p "$REDIS_PORT" --raw XINFO GROUPS "chat:cmd:$lane:{$s}" 2>/dev/null \
                  | awk -v len="${len:-0}" 'prev == "pending" { n += $1 }
                        prev == "lag" { n += ($1 + 0 > len + 0 ? len : $1) } { prev = $0 }
                        END { print n + 0 }') ))
        done
        [ "$left" -eq 0 ] && return 0
        sleep 0.2
    done
    log "the $lane lane's streams still hold $left commands after ${secs}s"
}
