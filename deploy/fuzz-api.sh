#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis
# (PyPI), against a local demo cluster (three regions), once with a
# customer's token and once with the operator's. Fails on any 5xx answer and
# on any answer that does not fit its documented schema.
#
#   deploy/fuzz-api.sh            after `cargo build --workspace` (./dev test runs it)
#   FUZZ_EXAMPLES=50 FUZZ_SEED=7 deploy/fuzz-api.sh
#
# Left out, and why:
# - /readyz: its 503 is its answer (a node not ready yet), not a fault;
# - /v1/events/{event_id}/live: an event stream that never ends;
# - membership and placement (/v1/admin/nodes, /groups, /events/.../placement,
#   transfer-leader): generated node ids and addresses join, remove and move
#   real members of a three-node cluster, whose waits for catch-up run past
#   any per-request timeout. The cluster tests (membership, placement) cover them.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
examples="${FUZZ_EXAMPLES:-10}"
seed="${FUZZ_SEED:-1}"
bin=target/debug/boxoffice
[ -x "$bin" ] || { echo "build first: cargo build --workspace" >&2; exit 1; }

venv=target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

dir=$(mktemp -d)
"$bin" demo --base-dir "$dir/cluster" >"$dir/demo.out" 2>&1 &
demo=$!
stop() {
    kill "$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
    rm -rf "$dir"
}
trap stop EXIT
for _ in $(seq 1 180); do
    grep -q "Press Ctrl-C" "$dir/demo.out" && break
    kill -0 "$demo" 2>/dev/null || { cat "$dir/demo.out" >&2; exit 1; }
    sleep 1
done
grep -q "Press Ctrl-C" "$dir/demo.out" || { echo "the demo did not come up in 180 s" >&2; exit 1; }

url=http://127.0.0.1:8081
customer=$(curl -sf -X POST "$url/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"alice@demo.boxoffice.dev","password":"demo-password"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
operator=$(sed -n 's/.*Bearer \(boxoffice-[a-z-]*-token\).*/\1/p' "$dir/demo.out" | head -1)
[ -n "$customer" ] && [ -n "$operator" ] || { echo "no tokens from the demo" >&2; exit 1; }

fuzz() {
    local who=$1 token=$2
    echo "schemathesis as the $who: $examples examples per operation, seed $seed"
    "$venv/bin/schemathesis" --no-color run "$url/openapi.json" \
        -H "Authorization: Bearer $token" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "$examples" --seed "$seed" --request-timeout 10 \
        --exclude-path-regex '^/readyz$|/live$|^/v1/admin/(nodes|groups|events)'
}
fuzz customer "$customer"
fuzz operator "$operator"
