#!/usr/bin/env bash
# `lro wait` of N operations straight to the emulator beside the same wait through
# tinyproxy (issue #21): wall time, client CPU and RPCs per operation, interleaved rounds.
#
#   benches/proxy/compare.sh [N] [SPREAD_SECONDS] [ROUNDS]   # default 1000 over 8 s, 3 rounds
#
# Each run gets a fresh `lro emulator` (operations take a random 0..SPREAD s after they
# start) and N purges started with `lro vision purge`; the client then waits for all N.
# CPU is user + sys of the client process (`/usr/bin/time`); the RPC count is what the
# emulator says it served, minus the N starts. Needs tinyproxy and a release build
# (`cargo build --release --features cli`).
set -euo pipefail
N=${1:-1000}
SPREAD=${2:-8}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LRO=$ROOT/target/release/lro
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
[ -x "$LRO" ] || { echo "build lro first: cargo build --release --features cli" >&2; exit 2; }
command -v tinyproxy >/dev/null || { echo "needs tinyproxy (apt-get install tinyproxy)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() { # label, emulator flags, proxy (yes|no)
    local label=$1 emulator_flags=$2 proxied=$3
    "$LRO" emulator --listen 127.0.0.1:0 --speed 1000000 --spread "$SPREAD" $emulator_flags \
        >"$WORK/emu.out" 2>"$WORK/emu.err" &
    local emu=$!
    until grep -q "listening on" "$WORK/emu.out" 2>/dev/null; do sleep 0.05; done
    local addr; addr=$(sed -n 's/^listening on //p' "$WORK/emu.out")
    local proxy_flags=() tiny=
    if [ "$proxied" = yes ]; then
        rm -f "$WORK/tinyproxy.log"
        local port; port=$(free_port)
        printf 'Port %s\nListen 127.0.0.1\nTimeout 600\nAllow 127.0.0.1\nConnectPort %s\nLogFile "%s"\nLogLevel Connect\nMaxClients 1000\n' \
            "$port" "${addr##*:}" "$WORK/tinyproxy.log" >"$WORK/tinyproxy.conf"
        tinyproxy -d -c "$WORK/tinyproxy.conf" >/dev/null 2>&1 &
        tiny=$!
        until (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null; do sleep 0.05; done
        proxy_flags=(--proxy "http://127.0.0.1:$port")
    fi
    for _ in $(seq "$N"); do
        "$LRO" --endpoint "http://$addr" vision purge --parent projects/p/locations/us-west1 --orphans | tr -d '\n'
        echo
    done >"$WORK/names.jsonl"
    /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$LRO" --endpoint "http://$addr" "${proxy_flags[@]}" \
        --quiet wait --from-file "$WORK/names.jsonl" >"$WORK/client.out" 2>"$WORK/client.err"
    kill -INT "$emu"; wait "$emu" || true
    [ -n "$tiny" ] && { kill "$tiny"; wait "$tiny" 2>/dev/null || true; }
    local served; served=$(grep -o 'served [0-9]*' "$WORK/emu.err" | grep -o '[0-9]*')
    local tunnels=-
    [ "$proxied" = yes ] && tunnels=$(grep -c "Established connection" "$WORK/tinyproxy.log" || true)
    read -r wall user sys <"$WORK/time"
    awk -v l="$label" -v w="$wall" -v u="$user" -v s="$sys" -v r="$served" -v n="$N" -v t="$tunnels" 'BEGIN {
        printf "| %s | %.1f s | %.3f s | %.2f | %s |\n", l, w, u + s, (r - n) / n, t }'
}

echo "$N operations, each done a random 0..$SPREAD s after it starts; $ROUNDS interleaved rounds"
echo "| client | wall | CPU (user + sys) | RPCs per operation | tunnels |"
echo "|---|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
    run "lro wait, direct" "" no
    run "lro wait, through tinyproxy" "" yes
    run "lro wait, direct, server without WaitOperation" "--no-wait-rpc" no
    run "lro wait, through tinyproxy, server without WaitOperation" "--no-wait-rpc" yes
done
