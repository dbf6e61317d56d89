#!/usr/bin/env bash
# Side-by-side anchor run, ONE batch: Kannel (no store, DLR mask 11 = two callbacks per message)
# then this gateway (custom/run.sh, Twilio API, two callbacks per message: sent + delivered),
# same Node SMSC simulator, sink and load generator (../shared/anchors), then a summary table
# and the ratio ours/Kannel. Compare ratios within one batch only (shared, noisy machine).
#
# usage: bench/run_anchors.sh            env: N (20000; N=5000 for a quick run) C (64)
#        ANCHORS (/work/shared/anchors)  RUNS_DIR (bench/results/anchors-<timestamp>)
#        SKIP_KANNEL=1 (ours only)      REPEAT (1: how many Kannel+ours pairs in the batch)
# Everything listens on 127.0.0.1; each run is bounded (loadgen 300 s, waits 600 s) and stops
# what it started by PID (the anchors harness does that). Needs root only for the first setup.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ANCHORS="${ANCHORS:-/work/shared/anchors}"
N=${N:-20000}; C=${C:-64}; REPEAT=${REPEAT:-1}
RUNS_DIR="${RUNS_DIR:-$HERE/results/anchors-$(date +%Y%m%dT%H%M%S)}"
mkdir -p "$RUNS_DIR"
export RUNS_DIR N C

# -- one-time setup: Debian kannel + the harness' Node packages -------------------------
if ! command -v bearerbox >/dev/null || [ ! -d "$ANCHORS/common/node_modules/smpp" ]; then
  if ! "$ANCHORS/setup.sh"; then
    # setup.sh also asks apt for nodejs+npm, which conflicts with a NodeSource node (npm
    # bundled): install only what is missing, then the Node packages.
    command -v bearerbox >/dev/null || { apt-get update -qq;
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kannel curl >/dev/null; }
    (cd "$ANCHORS/common" && { npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent; })
  fi
fi
[ -x "$ROOT/.venv/bin/python" ] || { echo "no $ROOT/.venv (run make test or make bench first)"; exit 1; }

# -- our gateway: config generated from the harness' ports at start time -----------------
GW_PASS=${GW_PASS:-anchor-token}
GW_USER=AC0123456789abcdef0123456789abcdef
CFG_DIR="$(mktemp -d /tmp/gw-anchor.XXXXXX)"
trap 'rm -rf "$CFG_DIR"' EXIT
# The harness' ports are fixed before it starts (harness.sh keeps SMSC_PORT from the env), so
# the config is generated here, one per run (fresh SQLite store), and GW_CMD is just
# `.venv/bin/python -m gateway run -c <config>` (no quotes in it: the harness puts GW_CMD
# verbatim into its meta.json).
export SMSC_PORT=${SMSC_PORT:-22775} GW_PORT=${GW_PORT:-28080}
case "$ROOT$CFG_DIR" in *[[:space:]]*|*\'*|*\"*) echo "paths with spaces or quotes are not supported"; exit 1;; esac
gw_cmd() {   # gw_cmd RUN_NO -> GW_CMD for a fresh config + store
  local d="$CFG_DIR/run$1"; mkdir -p "$d"
  "$ROOT/.venv/bin/python" "$ROOT/bench/e2e_config.py" --out "$d/gateway.toml" --api-port "$GW_PORT" \
    --smsc-port "$SMSC_PORT" --token "$GW_PASS" --from 20100 --from-count 100 --window 128 \
    --log-level warning
  cp "$d/gateway.toml" "$RUNS_DIR/gateway-run$1.toml"
  echo "cd $ROOT && exec .venv/bin/python -m gateway run -c $d/gateway.toml"
}
READY_CMD='curl -sf "http://127.0.0.1:${GW_PORT:-28080}/healthz" | grep -q "\"smpp\":\"bound\""'

for i in $(seq 1 "$REPEAT"); do
  if [ -z "${SKIP_KANNEL:-}" ]; then
    echo "== [$i/$REPEAT] Kannel, no store, dlr-mask 11, N=$N C=$C"
    (cd "$ANCHORS" && DLR_MASK=11 ./kannel/run.sh none) || echo "kannel run failed"
  fi
  echo "== [$i/$REPEAT] gateway (ours), two callbacks per message, N=$N C=$C"
  GW_CMD=$(gw_cmd "$i")
  echo "GW_CMD: $GW_CMD"
  (cd "$ANCHORS" && GW_CMD="$GW_CMD" READY_CMD="$READY_CMD" GW_USER="$GW_USER" GW_PASS="$GW_PASS" \
     CB_PER_MSG=2 LABEL=gateway FROM=20100 FROM_COUNT=100 ./custom/run.sh) || echo "gateway run failed"
done

echo
echo "== summary ($RUNS_DIR)"
shopt -s nullglob
results=("$RUNS_DIR"/*/results.json)
[ ${#results[@]} -gt 0 ] || { echo "no results"; exit 1; }
python3 "$ANCHORS/common/bench.py" summarize "${results[@]}" | tee "$RUNS_DIR/summary.md"
python3 - "${results[@]}" <<'EOF' | tee -a "$RUNS_DIR/summary.md"
import json, statistics, sys
rs = [json.load(open(p)) for p in sys.argv[1:]]
def med(prefix, key):
    v = [r[key] for r in rs if r.get("completed") and (r.get("label") or "").startswith(prefix)
         and r.get(key) is not None]
    return statistics.median(v) if v else None
k, g = med("kannel", "end_to_end_msgs_per_s"), med("gateway", "end_to_end_msgs_per_s")
kc, gc = med("kannel", "gateway_cpu_ms_per_msg"), med("gateway", "gateway_cpu_ms_per_msg")
print()
print(f"kannel : {k} msg/s end to end, {kc} ms CPU/msg")
print(f"ours   : {g} msg/s end to end, {gc} ms CPU/msg")
if k and g:
    print(f"ratio ours/kannel: throughput {g / k:.2f}x" + (f", CPU per msg {gc / kc:.2f}x" if kc and gc else ""))
EOF
