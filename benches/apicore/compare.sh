#!/usr/bin/env bash
# Client CPU per completed wait: `lro wait` beside Google's Python api-core, on the same
# emulator and the same kind of batch (issue #16, item 8).
#
#   benches/apicore/compare.sh [N] [SPREAD_SECONDS]     # default 1000 operations over 8 s
#
# Each run gets a fresh `lro emulator` (operations take a random 0..SPREAD s after they
# start; --no-wait-rpc for the polling rows), N purges started with `lro vision purge`, then
# one client waits for all N. CPU is user + sys of the client process (`/usr/bin/time`);
# the RPC count is what the emulator says it served, minus the N starts.
# Needs a release build (`cargo build --release --features cli`) and Python 3 with
# requirements.txt; set PYTHON to such an interpreter, else a venv is made in target/.
set -euo pipefail
N=${1:-1000}
SPREAD=${2:-8}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LRO=$ROOT/target/release/lro
HERE=$ROOT/benches/apicore
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; kill $(jobs -p) 2>/dev/null || true' EXIT
[ -x "$LRO" ] || { echo "build lro first: cargo build --release --features cli" >&2; exit 2; }
if [ -z "${PYTHON:-}" ]; then
    VENV=$ROOT/target/apicore-venv
    [ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"; }
    PYTHON=$VENV/bin/python
fi

run() { # label, emulator flags, client command...
    local label=$1 emulator_flags=$2; shift 2
    "$LRO" emulator --listen 127.0.0.1:0 --speed 1000000 --spread "$SPREAD" $emulator_flags \
        >"$WORK/emu.out" 2>"$WORK/emu.err" &
    local emu=$!
    until grep -q "listening on" "$WORK/emu.out" 2>/dev/null; do sleep 0.05; done
    local addr; addr=$(sed -n 's/^listening on //p' "$WORK/emu.out")
    for _ in $(seq "$N"); do
        "$LRO" --endpoint "http://$addr" vision purge --parent projects/p/locations/us-west1 --orphans | tr -d '\n'
        echo
    done >"$WORK/names.jsonl"
    local cmd=("$@")
    cmd=("${cmd[@]//@ADDR@/$addr}")
    cmd=("${cmd[@]//@NAMES@/$WORK/names.jsonl}")
    /usr/bin/time -f "%e %U %S" -o "$WORK/time" "${cmd[@]}" >"$WORK/client.out" 2>"$WORK/client.err"
    kill -INT "$emu"; wait "$emu" || true
    local served; served=$(grep -o 'served [0-9]*' "$WORK/emu.err" | grep -o '[0-9]*')
    read -r wall user sys <"$WORK/time"
    awk -v l="$label" -v w="$wall" -v u="$user" -v s="$sys" -v r="$served" -v n="$N" 'BEGIN {
        printf "| %s | %.1f s | %.2f s | %.3f ms | %.2f |\n", l, w, u + s, (u + s) * 1000 / n, (r - n) / n }'
    sed -n 's/.*cpu after imports \([0-9.]*\) s.*/  (api-core after its imports: \1 s)/p' "$WORK/client.err"
}

echo "$N operations, each done a random 0..$SPREAD s after it starts"
echo "| client | wall | CPU (user + sys) | CPU per wait | RPCs per operation |"
echo "|---|---|---|---|---|"
run "lro wait (WaitOperation)" "" "$LRO" --endpoint http://@ADDR@ --quiet wait --from-file @NAMES@
run "lro wait (server without WaitOperation)" "--no-wait-rpc" "$LRO" --endpoint http://@ADDR@ --quiet wait --from-file @NAMES@
run "lro wait --strategy poll" "" "$LRO" --endpoint http://@ADDR@ --quiet wait --strategy poll --from-file @NAMES@
run "api-core, a thread per operation" "" "$PYTHON" "$HERE/apicore_wait.py" @ADDR@ @NAMES@ threads
run "api-core, asyncio" "" "$PYTHON" "$HERE/apicore_wait.py" @ADDR@ @NAMES@ asyncio
