#!/usr/bin/env bash
# The vhost-user path: a DPDK pod (dpdk-testpmd over net_virtio_user) and
# vrouter-dp (the pod's vhost-user port, one worker), separate processes with
# their own --file-prefix, in both directions:
#
#   pod-to-fabric   testpmd --forward-mode=txonly (one UDP flow 198.18.0.1 ->
#                   198.18.0.2, frames of 60 bytes + FCS to the gateway MAC)
#                   -> vhost-user -> vrouter-dp: route, flow, VXLAN encap (VNI
#                   100) -> net_null. Mpps: vrouter-dp's TX to the fabric.
#   fabric-to-pod   vrouter-dp reads a VXLAN fabric pcap (infinite_rx; VNI 100 to
#                   the pod 10.244.0.10, FLOWS inner flows, 64-byte inner frames):
#                   decap, route, flow -> vhost-user -> testpmd
#                   --forward-mode=rxonly. Mpps: testpmd's RX rate, and vrouter-dp's
#                   TX into the vhost port (what the guest ring accepted).
#
# vrouter-dp runs with --stage full (the normal pipeline; the stage line adds the
# worker's cycles per packet) on lcore 1 (control thread on 0); testpmd forwards on
# lcore 0 (its main lcore, 1, only prints). On a 2-core machine each side has one
# core. vrouter-dp listens on the socket (server), testpmd connects (client).
# Medians of REPS runs; per run the median of the per-second lines with traffic,
# the first WARM of them and the last one left out.
#
# usage: [FLOWS=1] [WARM=2] [VR_STAGE=full] benches/pktgen/vhost.sh [REPS] [SECONDS]   (3, 5)
#   VR_STAGE=io: vrouter-dp only moves the packets (vhost-user <-> fabric port
#   unchanged), the ceiling of the vhost path on the machine.
# needs: root, hugepages (~0.5 GiB free), dpdk-testpmd; VROUTER_BIN as run.sh.
# Writes target/pktgen/vhost-STAMP.txt and logs under target/pktgen/logs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}; SECS=${2:-5}; WARM=${WARM:-2}; FLOWS=${FLOWS:-1}
OUT=target/pktgen; PCAPS=$OUT/pcap; mkdir -p "$OUT/logs" "$PCAPS"
GEN=/usr/bin/python3; [ -x $GEN ] || GEN=python3
if [ -n "${VROUTER_BIN:-}" ]; then
    BIN=$VROUTER_BIN
else
    cargo build --release -q -p vrouter-dp
    BIN=${CARGO_TARGET_DIR:-target}/release/vrouter-dp
fi
command -v dpdk-testpmd > /dev/null || { echo "dpdk-testpmd is missing (scripts/setup-host.sh)" >&2; exit 2; }
RUNDIR=$(mktemp -d /tmp/vr-vhost.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -INT "$p" 2> /dev/null || true; done
    rm -rf "$RUNDIR"
}
trap cleanup EXIT

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "NA"} else if (NR%2) {print v[(NR+1)/2]} else {printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}}'; }

common_config() { # SOCKET GEN_VDEV GEN_ROLE
    cat <<TOML
log_level = "warn"
[cores]
workers = [1]
control = 0
[memory]
socket_mem_mb = [256]
hugepages = true
mbufs_per_pool = 32767
mbuf_cache = 256
[eal]
in_memory = true
[[ports]]
name = "gen"
vdev = "$2"
role = "$3"
[[vhost_user]]
name = "pod0"
path = "$1"
mode = "server"
[control]
enabled = false
[telemetry]
stats_interval_secs = 1
[underlay]
interface = "gen"
ipv4 = "10.10.0.11/24"
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "gen"
mac = "02:aa:00:00:00:11"
ipv4 = "10.10.0.11"
mtu = 9000
[[interfaces]]
id = 1
kind = "virtual"
port = "pod0"
mac = "02:00:00:00:00:02"
vrf = 1
policy = true
TOML
}

config_tx() { # SOCKET: pod -> fabric (the fabric port is a net_null sink)
    common_config "$1" "net_null0,no-rx=1" fabric
    cat <<TOML
[[nexthops]]
id = 20
kind = "tunnel"
encap = "vxlan"
dst = "10.10.0.12"
dmac = "02:bb:00:00:00:12"
[[routes]]
vrf = 1
prefix = "198.18.0.0/15"
nexthop = 20
vni = 100
TOML
}

config_rx() { # SOCKET PCAP: fabric pcap -> pod
    common_config "$1" "net_pcap0,rx_pcap=$PWD/$2,infinite_rx=1" fabric
    cat <<TOML
[[nexthops]]
id = 10
kind = "encap"
interface = 1
dmac = "02:00:00:00:00:02"
vrf = 1
[[nexthops]]
id = 30
kind = "vrf-translate"
vrf = 1
[[routes]]
vrf = 1
prefix = "10.244.0.10/32"
nexthop = 10
[[vnis]]
vni = 100
nexthop = 30
TOML
}

# Rates of one port (by the name in vrouter-dp's stage line) or the cycles/packet,
# one value per line with traffic, the first WARM and the last left out.
vr_series() { # LOG PORT rx|tx|cycles
    awk -v port="$2" -v what="$3" '/^\[/ && / stage / {
        busy = 0; v = ""
        for (i = 1; i < NF; i++) {
            if ($i == port) { p = 1 } else if ($i == "|") { p = 0 }
            if ($i == "rx" && $(i+2) == "Mpps" && $(i+1) > 0) busy = 1
            if (p && $i == what && $(i+2) == "Mpps") v = $(i+1)
            if (what == "cycles" && $i == "cycles/packet") v = $(i+1)
        }
        if (busy && v != "") print v
    }' "$1" | awk -v w="$WARM" '{ a[NR] = $1 } END { for (i = w + 1; i < NR; i++) print a[i] }'
}

tp_series() { # LOG Rx|Tx: testpmd's per-second pps of port 0 in Mpps, same trimming
    awk -v k="$2-pps:" '$1 == k && $2 > 0 { printf "%.3f\n", $2 / 1e6 }' "$1" |
        awk -v w="$WARM" '{ a[NR] = $1 } END { for (i = w + 1; i < NR; i++) print a[i] }'
}

wait_socket() { # PATH
    local i
    for i in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.1; done
    echo "no vhost-user socket $1 after 20 s" >&2; return 1
}

one_run() { # tx|rx RUN -> "vr_Mpps tp_Mpps cyc/pkt vr_tx_drop"
    local dir=$1 r=$2 sock=$RUNDIR/pod-$1-$2.sock cfg log tlog pcap="" mode
    cfg=$OUT/logs/vhost-$dir-$r.toml; log=$OUT/logs/vhost-$dir-$r.log; tlog=$OUT/logs/vhost-$dir-$r.testpmd.log
    if [ "$dir" = tx ]; then
        config_tx "$sock" > "$cfg"; mode=txonly
    else
        pcap=$($GEN benches/pktgen/gen_pcaps.py "$PCAPS" vxlan "$FLOWS" 64)
        config_rx "$sock" "$pcap" > "$cfg"; mode=rxonly
    fi
    # vrouter-dp first (it owns the socket), then the pod for WARM + SECS s of
    # traffic plus 8 s for its start (EAL, hugepages, the vhost-user handshake):
    # with less, an idle machine left too few per-second lines with traffic
    "$BIN" --config "$cfg" --stage "${VR_STAGE:-full}" --duration $((WARM + SECS + 18)) > "$log" 2>&1 &
    local vr=$!; PIDS+=("$vr")
    wait_socket "$sock"
    timeout -k 5 -s INT $((WARM + SECS + 8)) \
        dpdk-testpmd -l 0,1 --main-lcore 1 --no-pci --single-file-segments \
        --socket-mem 256 --file-prefix "vhost-pod-$$-$dir-$r" --log-level=lib.eal:error \
        --vdev "net_virtio_user0,path=$sock,queues=1,server=0" \
        -- --nb-cores=1 --forward-mode=$mode --txpkts=60 --eth-peer=0,00:00:5e:00:01:00 \
        --stats-period=1 --no-mlockall > "$tlog" 2>&1 || true
    kill -INT "$vr" 2> /dev/null || true
    wait "$vr" || true
    local vm tm cm drop
    if [ "$dir" = tx ]; then
        vm=$(vr_series "$log" gen tx | median); tm=$(tp_series "$tlog" Tx | median)
    else
        vm=$(vr_series "$log" pod0 tx | median); tm=$(tp_series "$tlog" Rx | median)
    fi
    cm=$(vr_series "$log" x cycles | median)
    drop=$(awk '/^worker lcore/ { print $9 }' "$log")
    echo "$vm $tm $cm ${drop:-NA}"
}

stamp=$(date -u +%Y%m%dT%H%M%SZ); txt=$OUT/vhost-$stamp.txt
hdr=$(printf '%-15s %9s %11s %12s %9s  %s' direction vr_Mpps testpmd_Mpps vr_cyc/pkt runs "vr_tx_dropped(last run)")
echo "$hdr" | tee "$txt"
for dir in tx rx; do
    vms=(); tms=(); cms=(); dr=NA
    for r in $(seq "$REPS"); do
        read -r vm tm cm dr < <(one_run "$dir" "$r")
        vms+=("$vm"); tms+=("$tm"); cms+=("$cm")
    done
    name=$([ "$dir" = tx ] && echo pod-to-fabric || echo fabric-to-pod)
    printf '%-15s %9s %11s %12s %9s  %s\n' "$name" "$(printf '%s\n' "${vms[@]}" | median)" \
        "$(printf '%s\n' "${tms[@]}" | median)" "$(printf '%s\n' "${cms[@]}" | median)" \
        "$(IFS=/; echo "${vms[*]}")" "$dr" | tee -a "$txt"
done
echo "table: $txt  logs: $OUT/logs/vhost-*"
