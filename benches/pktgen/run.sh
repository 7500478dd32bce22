#!/usr/bin/env bash
# pktgen-style whole-data-plane run: one pinned worker (lcore 1) reads a pcap of N
# flows from net_pcap (infinite_rx) and transmits into net_null (no-rx); the same
# input, vdevs and core through `dpdk-testpmd --forward-mode=io` (the framework
# ceiling). Medians of REPS runs each; a table on stdout and JSON under target/.
#
# usage: [SCENARIOS="io vxlan"] benches/pktgen/run.sh [REPS] [SECONDS] [FLOWS...]
#   defaults: scenarios io (L2 cross-connect) and vxlan (pod -> remote pod: flow
#   lookup/learn, route, VXLAN encap), 3 runs, 8 s measured (after 3 s warm-up),
#   flows 1 1000 100000. testpmd io on the same input is the ceiling for each.
# needs: scripts/setup-host.sh (dpdk, scapy, hugepages); a release build is made.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}; SECS=${2:-8}; shift 2 || true
FLOWS=("$@"); [ ${#FLOWS[@]} -gt 0 ] || FLOWS=(1 1000 100000)
WARM=3
SCENARIOS=${SCENARIOS:-io vxlan}
OUT=target/pktgen; mkdir -p "$OUT"
/usr/bin/python3 benches/pktgen/gen_pcaps.py "$OUT" "${FLOWS[@]}" >/dev/null
cargo build --release -q -p vrouter-dp
BIN=target/release/vrouter-dp
NMBUF=131071

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "NA"} else if (NR%2) {print v[(NR+1)/2]} else {printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}}'; }

# Scenario state appended to the config: none for io (cross-connect), a pod and a
# fabric interface, a VXLAN tunnel next-hop and a route for vxlan (pod -> remote pod,
# encapsulated; every flow learned in the flow table).
scenario_state() {
    case "$1" in
    io) ;;
    vxlan) cat <<TOML
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
vrf = 0
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
    ;;
    esac
}

run_vrouter() { # SCENARIO FLOWS -> prints "Mpps cycles/pkt"
    local sc=$1; shift
    local n=$1 cfg=$OUT/$sc-$1.toml log=$OUT/vrouter-$sc-$1.log
    cat > "$cfg" <<TOML
log_level = "warn"
[cores]
workers = [1]
control = 0
[memory]
socket_mem_mb = [1024]
mbufs_per_pool = $NMBUF
mbuf_cache = 512
[eal]
in_memory = true
[[ports]]
name = "gen"
vdev = "net_pcap0,rx_pcap=$PWD/$OUT/flows-$n.pcap,infinite_rx=1"
role = "pod"
[[ports]]
name = "sink"
vdev = "net_null0,no-rx=1"
role = "fabric"
[telemetry]
stats_interval_secs = 1
TOML
    scenario_state "$sc" >> "$cfg"
    "$BIN" --config "$cfg" --duration $((WARM + SECS)) > "$log" 2>&1
    # periodic lines: "[ t s] | gen: rx A Mpps tx B Mpps ... | sink: rx C Mpps tx D Mpps ..."
    # (D, the sink's TX rate, is the 5th field after "sink:")
    local mpps cpp
    mpps=$(awk -v warm=$WARM '/^\[/ { t=$2; sub(/s\]/,"",t); if (t+0 > warm) { for (i=1;i<=NF;i++) if ($i=="sink:") print $(i+5) } }' "$log" | median)
    cpp=$(awk '/^worker lcore/ { print $NF }' "$log")
    echo "$mpps $cpp"
}

run_testpmd() { # FLOWS -> prints "Mpps cycles/pkt"
    local n=$1 log=$OUT/testpmd-$1.log
    timeout -k 10 -s INT $((WARM + SECS + 1)) \
        dpdk-testpmd --in-memory -l 0-1 --main-lcore 0 --no-pci --log-level=lib.eal:error \
        --vdev "net_pcap0,rx_pcap=$PWD/$OUT/flows-$n.pcap,infinite_rx=1" \
        --vdev "net_null0,no-rx=1" \
        -- --nb-cores=1 --forward-mode=io --stats-period=1 \
        --total-num-mbufs=$NMBUF --record-core-cycles > "$log" 2>&1 || true
    local mpps cpp
    mpps=$(awk '/NIC statistics for port/ { p=$(NF-1)+0 } p==1 && $1=="Tx-pps:" { k++; if (k>2) print $2/1e6 }' "$log" | median)
    cpp=$(awk '/CPU cycles\/packet=/ { match($0, /CPU cycles\/packet=[0-9.]+/); print substr($0, RSTART+18, RLENGTH-18) }' "$log" | tail -1)
    echo "$mpps ${cpp:-NA}"
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
json=$OUT/pktgen-$stamp.json
printf '%-22s %8s %12s %12s %10s %12s %12s\n' scenario flows vrouter_Mpps testpmd_Mpps ratio vr_cyc/pkt tp_cyc/pkt
echo "[" > "$json"; first=1
for sc in $SCENARIOS; do
for n in "${FLOWS[@]}"; do
    vr=(); tp=(); vc=(); tc=()
    for r in $(seq "$REPS"); do
        read -r m c < <(run_vrouter "$sc" "$n"); vr+=("$m"); vc+=("$c")
        read -r m c < <(run_testpmd "$n"); tp+=("$m"); tc+=("$c")
    done
    vm=$(printf '%s\n' "${vr[@]}" | median); tm=$(printf '%s\n' "${tp[@]}" | median)
    vcm=$(printf '%s\n' "${vc[@]}" | median); tcm=$(printf '%s\n' "${tc[@]}" | median)
    ratio=$(awk -v a="$vm" -v b="$tm" 'BEGIN { if (b+0>0) printf "%.2f", a/b; else print "NA" }')
    printf '%-22s %8s %12s %12s %10s %12s %12s\n' "$sc" "$n" "$vm" "$tm" "$ratio" "$vcm" "$tcm"
    [ $first -eq 1 ] || echo "," >> "$json"; first=0
    printf '{"scenario":"%s","flows":%s,"runs":%s,"vrouter_mpps":[%s],"testpmd_mpps":[%s],"vrouter_median":%s,"testpmd_median":%s,"ratio":"%s"}' \
        "$sc" "$n" "$REPS" "$(IFS=,; echo "${vr[*]}")" "$(IFS=,; echo "${tp[*]}")" "$vm" "$tm" "$ratio" >> "$json"
done
done
echo "]" >> "$json"
echo "json: $json"
