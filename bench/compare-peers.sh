#!/usr/bin/env bash
# Side-by-side on-sale storm: etcd, PostgreSQL (the peers in ../shared/peers) and boxoffice.
#
# Per round, interleaved so that machine noise spreads over every cell:
#   etcd C=64, etcd C=256, postgres C=64, postgres C=256, boxoffice C=64, boxoffice C=256.
# The peers' stores are set up once with their own scripts (which install etcd/postgres if
# missing) and stay up for the whole run, as in the peers' run-matrix.sh; each boxoffice
# cell starts and stops its own fresh 3-node cluster. At the end it prints the peers'
# per-cell summary for all cells and a table of boxoffice against each peer (medians over
# rounds; ratio = ours / theirs, so >1 means more confirmed/s or a higher p99).
#
# Bounded: every build and run has a `timeout`, no run starts after TOTAL_LIMIT seconds,
# and on exit (also on Ctrl-C) it stops exactly what it started: the peers' stores through
# their stop scripts, and any boxoffice node left behind, by the PID files the launcher
# writes. Nothing but 127.0.0.1 is contacted.
#
# Environment: ROUNDS (3), SEATS (20000), LIMIT (120 s per cell), TOTAL_LIMIT (7200 s),
# OUT (results dir), PEERS_DIR (../shared/peers from the repo root), PEERS_BASE (/tmp/peers),
# PEER_TARGET_DIR (where the peers' bench is built; target/peers-onsale-bench),
# BOXOFFICE_BIN (skip building boxoffice and use this binary).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=$(cd "${PEERS_DIR:-$ROOT/../shared/peers}" && pwd) || { echo "peers directory not found" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
SEATS=${SEATS:-20000}
LIMIT=${LIMIT:-120}
TOTAL_LIMIT=${TOTAL_LIMIT:-7200}
export PEERS_BASE=${PEERS_BASE:-/tmp/peers}
OUT=${OUT:-/tmp/boxoffice-compare/$(date -u +%Y%m%dT%H%M%SZ)}
CLUSTER_DIR="$OUT/boxoffice-cluster"
# The peers' bench is built into our own target directory, never inside shared/.
PEER_TARGET=${PEER_TARGET_DIR:-$ROOT/target/peers-onsale-bench}
PEER_BIN="$PEER_TARGET/release/onsale-bench"
mkdir -p "$OUT"
echo "results -> $OUT"

STARTED_ETCD=0
STARTED_PG=0
RUN_PID=   # the `timeout` wrapping the current run; it leads its own process group

# Kills boxoffice nodes a bench left behind (only if killed itself): the PIDs come from the
# launcher's files and are checked to still be boxoffice processes.
stop_leftover_nodes() {
  local pidfile pid
  for pidfile in "$CLUSTER_DIR"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = boxoffice ]; then
      echo "stopping leftover boxoffice node pid $pid"
      kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
  done
}

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$RUN_PID" ] && [ -d /proc/"$RUN_PID" ]; then
    # TERM to the run's whole group lets a bench stop its own cluster; wait up to 40 s.
    kill -TERM -- "-$RUN_PID" 2>/dev/null
    for _ in $(seq 1 200); do [ -d /proc/"$RUN_PID" ] || break; sleep 0.2; done
    kill -KILL -- "-$RUN_PID" 2>/dev/null
  fi
  stop_leftover_nodes
  if [ "$STARTED_ETCD" = 1 ]; then "$PEERS/stop-etcd.sh"; fi
  if [ "$STARTED_PG" = 1 ]; then "$PEERS/stop-postgres.sh"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# --- binaries -------------------------------------------------------------------------
if [ -n "${BOXOFFICE_BIN:-}" ]; then
  OURS_BIN=$BOXOFFICE_BIN
else
  echo "building boxoffice (release)"
  (cd "$ROOT" && timeout 3600 cargo build --release --bin boxoffice) || { echo "build failed" >&2; exit 1; }
  OURS_BIN="$ROOT/target/release/boxoffice"
fi
if [ ! -x "$PEER_BIN" ]; then
  if ! command -v protoc >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler
  fi
  echo "building the peers' onsale-bench (release)"
  (cd "$PEERS/onsale-bench" && CARGO_TARGET_DIR="$PEER_TARGET" timeout 3600 cargo build --release --locked) || { echo "peer build failed" >&2; exit 1; }
fi

# --- stores -----------------------------------------------------------------------------
timeout 900 "$PEERS/setup-etcd.sh" || { echo "etcd setup failed" >&2; exit 1; }
STARTED_ETCD=1
timeout 900 "$PEERS/setup-postgres.sh" || { echo "postgres setup failed" >&2; exit 1; }
STARTED_PG=1

# --- runs -------------------------------------------------------------------------------
run() { # label, command...
  local label=$1; shift
  local log="$OUT/run-$label.log"
  if [ "$SECONDS" -ge "$TOTAL_LIMIT" ]; then
    echo "== $label: skipped, TOTAL_LIMIT=${TOTAL_LIMIT}s reached" | tee "$log"
    return
  fi
  echo "== $label: $*" | tee "$log"
  # In the background so that an interrupt reaches the trap at once; see cleanup.
  timeout -k 30 $((LIMIT + 600)) "$@" >>"$log" 2>&1 &
  RUN_PID=$!
  wait "$RUN_PID"
  echo "rc=$?" >>"$log"
  RUN_PID=
  stop_leftover_nodes
  grep '^{' "$log" | tail -1 | tee -a "$OUT/results.jsonl"
  sleep 5
}

for r in $(seq 1 "$ROUNDS"); do
  for c in 64 256; do
    run "etcd-c$c-r$r" "$PEER_BIN" --target etcd --seats "$SEATS" --clients "$c" --duration-s "$LIMIT" --label "etcd-c$c-r$r"
  done
  for c in 64 256; do
    run "postgres-c$c-r$r" "$PEER_BIN" --target postgres --seats "$SEATS" --clients "$c" --duration-s "$LIMIT" --label "postgres-c$c-r$r"
  done
  for c in 64 256; do
    run "boxoffice-c$c-r$r" "$OURS_BIN" bench --seats "$SEATS" --clients "$c" --rounds 1 \
      --duration-s "$LIMIT" --base-dir "$CLUSTER_DIR" --label "boxoffice-c$c-r$r"
  done
done

# --- tables -----------------------------------------------------------------------------
[ -s "$OUT/results.jsonl" ] || { echo "no results" >&2; exit 1; }
python3 "$PEERS/summarize.py" "$OUT/results.jsonl" | tee "$OUT/summary.md"
echo
python3 - "$OUT/results.jsonl" <<'PY' | tee "$OUT/compare.md"
import json, statistics, sys
from collections import defaultdict

runs = defaultdict(list)  # (system, clients) -> results
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("bench") != "onsale":
        continue
    system = r["label"].split("-c")[0]
    runs[(system, r["clients"])].append(r)

def median(system, clients, pick):
    vals = [pick(r) for r in runs.get((system, clients), [])]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def p99(kind):
    return lambda r: (r.get(kind) or {}).get("p99_ms")

def fmt(x):
    return "-" if x is None else f"{x:g}"

def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}"

print("| C | metric | boxoffice | postgres | etcd | boxoffice / postgres | boxoffice / etcd |")
print("|---|---|---|---|---|---|---|")
for clients in sorted({c for (_, c) in runs}):
    for name, pick in [("confirmed/s", lambda r: r["confirms_per_s"]),
                       ("hold p99 ms", p99("hold")),
                       ("confirm p99 ms", p99("confirm"))]:
        ours, pg, etcd = (median(s, clients, pick) for s in ("boxoffice", "postgres", "etcd"))
        print(f"| {clients} | {name} | {fmt(ours)} | {fmt(pg)} | {fmt(etcd)} | {ratio(ours, pg)} | {ratio(ours, etcd)} |")
print()
n = {s: sum(len(v) for (t, _), v in runs.items() if t == s) for s in ("boxoffice", "postgres", "etcd")}
ok = all(r.get("verify", {}).get("ok", False) for v in runs.values() for r in v)
print(f"runs: boxoffice {n['boxoffice']}, postgres {n['postgres']}, etcd {n['etcd']}; medians over rounds; "
      f"every run verified: {ok}")
PY
