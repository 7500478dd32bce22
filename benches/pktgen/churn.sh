#!/usr/bin/env bash
# Route churn under traffic: vrouter-dp forwards pod -> remote VXLAN traffic with
# one worker on core 1 (net_pcap infinite_rx -> net_null, FLOWS distinct flows,
# policy on: every flow learned), while the agent API on the control thread
# (core 0) takes batches of new routes and their deletion in the same VRF
# (benches/examples/route_churn.rs, pinned to core 0 as an agent would share the
# control core). Reports the API's routes/s, the forwarding rate before and
# during the churn (medians of the per-second lines), and the packets dropped; a
# run with any drop or TX drop fails (exit 1). Medians over REPS runs; a line of
# JSON per run and the summary under target/pktgen/churn.json.
#
# usage: [FLOWS=100000] [BATCH=10000] [PRELOAD=0] [FORM=packed] benches/pktgen/churn.sh [REPS] [CHURN_SECONDS]
#   REPS 3, CHURN_SECONDS 10 (after WARM=3 s and BASE=5 s without churn)
#   PRELOAD  routes added before the churn and kept (e.g. 1000000: churn on a 1M-route VRF)
#   FORM     packed: each batch one packed route set (add_routes/del_routes);
#            text: one add_route/del_route change per route, text prefixes
# needs: scripts/setup-host.sh (dpdk, hugepages), root, 2 cores. Builds vrouter-dp
# and the client in release mode (CARGO_TARGET_DIR honoured; VROUTER_BIN and
# CHURN_BIN skip the builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}; CHURN=${2:-10}
WARM=3; BASE=5
FLOWS=${FLOWS:-100000}; BATCH=${BATCH:-10000}; PRELOAD=${PRELOAD:-0}; FORM=${FORM:-packed}
OUT=target/pktgen; mkdir -p "$OUT/logs" "$OUT/pcap"
T=${CARGO_TARGET_DIR:-target}
if [ -z "${VROUTER_BIN:-}" ]; then cargo build --release -q -p vrouter-dp; fi
if [ -z "${CHURN_BIN:-}" ]; then cargo build --release -q -p vrouter-benches --example route_churn; fi
BIN=${VROUTER_BIN:-$T/release/vrouter-dp}
CHURN_BIN=${CHURN_BIN:-$T/release/examples/route_churn}
[ "$(nproc)" -ge 2 ] || { echo "churn.sh needs 2 cores (worker on 1, control on 0)" >&2; exit 2; }
PCAP=$PWD/$(/usr/bin/python3 benches/pktgen/gen_pcaps.py "$OUT/pcap" pod "$FLOWS" 64)
PKTS=$(/usr/bin/python3 -c "import sys; from scapy.utils import PcapReader; print(sum(1 for _ in PcapReader(sys.argv[1])))" "$PCAP" 2>/dev/null || echo "$FLOWS")
NMBUF=$((PKTS + 32767)); [ $NMBUF -ge 131071 ] || NMBUF=131071
MEM=$(((NMBUF * 5 / 2 + 1023) / 1024 + 96)); MEM=$(((MEM + 1) / 2 * 2))
CAP=1048576; while [ "$CAP" -lt $((FLOWS * 5)) ]; do CAP=$((CAP * 2)); done
DIR=$(mktemp -d /tmp/vrdp-churn.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
SOCK=$DIR/dp.sock; CFG=$OUT/logs/churn.toml
cat > "$CFG" <<TOML
log_level = "warn"
[cores]
workers = [1]
control = 0
[memory]
socket_mem_mb = [$MEM]
mbufs_per_pool = $NMBUF
mbuf_cache = 512
[eal]
in_memory = true
[[ports]]
name = "gen"
vdev = "net_pcap0,rx_pcap=$PCAP,infinite_rx=1"
role = "pod"
[[ports]]
name = "sink"
vdev = "net_null0,no-rx=1"
role = "fabric"
[control]
enabled = true
socket = "$SOCK"
mode = "0600"
[telemetry]
stats_interval_secs = 1
[flows]
capacity = $CAP
[underlay]
interface = "sink"
ipv4 = "10.10.0.11/24"
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "sink"
mac = "02:aa:00:00:00:11"
mtu = 9000
[[interfaces]]
id = 1
kind = "virtual"
port = "gen"
mac = "02:00:00:00:00:01"
vrf = 1
policy = true
[[nexthops]]
id = 20
kind = "tunnel"
encap = "vxlan"
dst = "10.10.0.12"
dmac = "02:bb:00:00:00:12"
[[routes]]
vrf = 1
prefix = "10.245.0.0/16"
nexthop = 20
vni = 100
TOML

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "NA"} else if (NR%2) {print v[(NR+1)/2]} else {printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}}'; }
# forwarded Mpps of each periodic line "[ t s] | gen: rx A Mpps tx B Mpps ... | sink: ..."
rates() { awk '/^\[/ { s=0; for (i=1;i<NF;i++) if ($i=="tx" && $(i+2)=="Mpps") s+=$(i+1); print s }' "$1"; }

fail=0
: > "$OUT/churn-runs.jsonl"
declare -a R_BASE R_CHURN R_RPS R_MAXMS
for rep in $(seq 1 "$REPS"); do
    LOG=$OUT/logs/churn-$rep.log
    rm -f "$SOCK"
    "$BIN" --config "$CFG" --duration $((WARM + BASE + CHURN + 40)) > "$LOG" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do [ -S "$SOCK" ] && break; sleep 0.1; done
    [ -S "$SOCK" ] || { echo "vrouter-dp did not open $SOCK" >&2; cat "$LOG" >&2; kill $pid; exit 1; }
    if [ "$PRELOAD" -gt 0 ]; then
        taskset -c 0 "$CHURN_BIN" "$SOCK" 0 "$BATCH" 1 20 100 "$PRELOAD" > /dev/null
    fi
    sleep $((WARM + BASE))
    before=$(rates "$LOG" | wc -l)
    res=$(taskset -c 0 "$CHURN_BIN" "$SOCK" "$CHURN" "$BATCH" 1 20 100 0 "$FORM" | tail -1)
    during=$(rates "$LOG" | wc -l)
    kill -INT $pid; wait $pid || true
    # baseline: the last BASE-1 lines before the churn; churn: the lines it spans,
    # without the first and the last (partly outside it)
    b=$(rates "$LOG" | head -n "$before" | tail -n $((BASE - 1)) | median)
    c=$(rates "$LOG" | head -n $((during - 1)) | tail -n +$((before + 2)) | median)
    drops=$(awk '/^drop / { r=$2; sub(/:$/,"",r); d = d (d=="" ? "" : ",") r "=" $3 }
                 /^worker lcore/ && $9+0 > 0 { t += $9 }
                 END { if (t) d = d (d=="" ? "" : ",") "tx_dropped=" t; print (d=="" ? "-" : d) }' "$LOG")
    rps=$(echo "$res" | sed -n 's/.*"routes_per_s": \([0-9.]*\).*/\1/p')
    maxms=$(echo "$res" | sed -n 's/.*"max_call_ms": \([0-9.]*\).*/\1/p')
    R_BASE+=("$b"); R_CHURN+=("$c"); R_RPS+=("$rps"); R_MAXMS+=("$maxms")
    echo "{\"run\": $rep, \"flows\": $FLOWS, \"preload\": $PRELOAD, \"mpps_before\": $b, \"mpps_during\": $c, \"drops\": \"$drops\", \"client\": $res}" | tee -a "$OUT/churn-runs.jsonl"
    [ "$drops" = "-" ] || { echo "run $rep: packets dropped during the churn: $drops" >&2; fail=1; }
done
mb=$(printf '%s\n' "${R_BASE[@]}" | median); mc=$(printf '%s\n' "${R_CHURN[@]}" | median)
mr=$(printf '%s\n' "${R_RPS[@]}" | median); mx=$(printf '%s\n' "${R_MAXMS[@]}" | median)
printf '\nroute churn under traffic (%s runs, vxlan, %s flows, %s batches of %s, preload %s)\n' "$REPS" "$FLOWS" "$FORM" "$BATCH" "$PRELOAD"
printf '  API routes/s (median): %s\n  forwarding Mpps before / during churn (medians): %s / %s\n  slowest call (median of runs): %s ms\n' "$mr" "$mb" "$mc" "$mx"
printf '{"form": "%s", "flows": %s, "batch": %s, "preload": %s, "reps": %s, "routes_per_s": %s, "mpps_before": %s, "mpps_during": %s, "max_call_ms": %s, "failed": %s}\n' \
    "$FORM" "$FLOWS" "$BATCH" "$PRELOAD" "$REPS" "$mr" "$mb" "$mc" "$mx" "$fail" > "$OUT/churn.json"
exit $fail
