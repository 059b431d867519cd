#!/usr/bin/env bash
# Client CPU per completed wait, side by side on a server built from Google's published stubs
# (grpcio_server.py): the floor (tonic's generated client, nothing around it), `lro wait`
# and Google's Python api-core (issue #24).
#
#   benches/apicore/side_by_side.sh [N] [SPREAD_SECONDS] [ROUNDS]   # default 1000, 8, 3
#
# Three servers: without WaitOperation (it lists its collection), without WaitOperation or
# ListOperations, and with WaitOperation. Each round runs every client against a fresh server
# of each kind, interleaved; the table gives medians over the rounds. N operations under one
# collection, each done a random 0..SPREAD s after a client first asks about it, waited for
# by name. CPU is user + sys of the client process (`/usr/bin/time`), start-up included;
# RPCs are what the server says it served. The server sets no stream limit: at Google's 100
# a connection, the floor (one connection, nothing around it) fails with REFUSED_STREAM.
#
# Needs `cargo build --release --features cli`, `cargo bench --features testing --bench floor
# --no-run`, and Python 3 with requirements.txt (PYTHON, else target/apicore-venv is made).
set -euo pipefail
N=${1:-1000}
SPREAD=${2:-8}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/apicore
LRO=$ROOT/target/release/lro
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; kill $(jobs -p) 2>/dev/null || true' EXIT
[ -x "$LRO" ] || { echo "build lro first: cargo build --release --features cli" >&2; exit 2; }
FLOOR=$(cd "$ROOT" && cargo bench --features testing --bench floor --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$FLOOR" ] || { echo "cannot build the floor client" >&2; exit 2; }
if [ -z "${PYTHON:-}" ]; then
    VENV=$ROOT/target/apicore-venv
    [ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"; }
    PYTHON=$VENV/bin/python
fi

# server kind, client: prints "cpu rpcs" (seconds, RPCs per operation)
run() {
    local kind=$1 client=$2 flags=""
    case $kind in
        list) flags="--no-wait" ;;
        byname) flags="--no-wait --no-list" ;;
        wait) flags="" ;;
    esac
    "$PYTHON" "$HERE/grpcio_server.py" --ops "$N" --spread "$SPREAD" --names "$WORK/names.jsonl" $flags \
        >"$WORK/server.out" 2>"$WORK/server.err" &
    local server=$!
    until grep -q "listening on" "$WORK/server.out" 2>/dev/null; do sleep 0.05; done
    local addr; addr=$(sed -n 's/^listening on //p' "$WORK/server.out")
    local floor_client=floor-poll
    [ "$kind" = wait ] && floor_client=floor-wait
    case $client in
        floor) env LRO_FLOOR_CLIENT=$floor_client LRO_FLOOR_ENDPOINT="http://$addr" LRO_FLOOR_NAMES="$WORK/names.jsonl" \
            /usr/bin/time -f "%U %S" -o "$WORK/time" "$FLOOR" >"$WORK/client.out" 2>"$WORK/client.err" ;;
        lro) /usr/bin/time -f "%U %S" -o "$WORK/time" "$LRO" --endpoint "http://$addr" --quiet wait \
            --from-file "$WORK/names.jsonl" >"$WORK/client.out" 2>"$WORK/client.err" ;;
        apicore) /usr/bin/time -f "%U %S" -o "$WORK/time" "$PYTHON" "$HERE/apicore_wait.py" "$addr" \
            "$WORK/names.jsonl" threads >"$WORK/client.out" 2>"$WORK/client.err" ;;
    esac || { echo "$client against $kind failed:" >&2; tail -5 "$WORK/client.err" >&2; exit 1; }
    kill -TERM "$server"; wait "$server" || true
    local get wait list
    read -r get wait list < <(sed -n 's/^served get=\([0-9]*\) wait=\([0-9]*\) list=\([0-9]*\)$/\1 \2 \3/p' "$WORK/server.err")
    read -r user sys <"$WORK/time"
    awk -v u="$user" -v s="$sys" -v g="$get" -v w="$wait" -v l="$list" -v n="$N" \
        'BEGIN { printf "%.2f %.2f\n", u + s, (g + w + l) / n }'
}

KINDS=(list byname wait)
CLIENTS=(floor lro apicore)
for round in $(seq "$ROUNDS"); do
    for kind in "${KINDS[@]}"; do
        for client in "${CLIENTS[@]}"; do
            result=$(run "$kind" "$client")
            echo "$kind $client $result" >>"$WORK/results"
            echo "round $round: $kind $client: $result (CPU s, RPCs per operation)" >&2
        done
    done
done

echo "$N operations under one collection, each done a random 0..$SPREAD s after it is first asked about; $ROUNDS interleaved rounds, medians"
echo
echo "| client | server without WaitOperation (lists) | without WaitOperation or ListOperations | with WaitOperation |"
echo "|---|---|---|---|"
for client in "${CLIENTS[@]}"; do
    row="| $client |"
    for kind in "${KINDS[@]}"; do
        cell=$(awk -v k="$kind" -v c="$client" '$1 == k && $2 == c { print $3, $4 }' "$WORK/results" | sort -n |
            awk '{ cpu[NR] = $1; rpc[NR] = $2 } END { m = int((NR + 1) / 2); printf "%.2f s, %.2f RPCs/op", cpu[m], rpc[m] }')
        floor=$(awk -v k="$kind" '$1 == k && $2 == "floor" { print $3 }' "$WORK/results" | sort -n |
            awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        ratio=$(awk -v c="${cell%% s,*}" -v f="$floor" 'BEGIN { if (f > 0) printf " (%.2f×)", c / f }')
        row="$row $cell$ratio |"
    done
    echo "$row"
done
