#!/usr/bin/env bash
# pktgen-style whole-data-plane run. Per scenario, frame size and flow count the
# same input pcap goes, on the same core 1, through
#   * vrouter-dp: net_pcap (infinite_rx) -> forwarding -> net_null (no-rx), with the
#     config forwarding state that makes every flow valid (flows learned: policy on);
#   * dpdk-testpmd --forward-mode=io on the same vdevs (the framework's ceiling);
#   * OVS-DPDK 3.1 (userspace datapath, one PMD on core 1) with the equivalent
#     OpenFlow rules, in each variant of OVS_VARIANTS (benches/pktgen/ovs.sh); the
#     table shows the best variant's median. MPLSoUDP/MPLSoGRE: OVS has no
#     equivalent ("n/a").
# Medians of REPS runs each; a table on stdout, JSON and a markdown table under
# target/pktgen/. Columns: Mpps of each; vrouter-dp's Gbit/s (its output frames
# with FCS, no preamble or gap) and Mpps per worker; the ratios vrouter-dp/testpmd
# and vrouter-dp/OVS; vrouter-dp's cycles per packet (worker summary, whole run)
# and its drops by reason. A row where vrouter-dp dropped 0.1% or more of what it
# received is marked FAIL and the script exits 1 at the end.
#
# usage: [SCENARIOS=...] [SIZES=...] [WORKERS=...] benches/pktgen/run.sh [REPS] [SECONDS] [FLOWS...]
#   REPS 3, SECONDS 8 (measured, after WARM=3 s), FLOWS 1 1000 100000 1000000
#   SCENARIOS  io vxlan mplsudp mplsgre vxlan-decap mplsudp-decap mplsgre-decap local (all)
#       io             L2 cross-connect (no forwarding state)
#       vxlan          pod -> remote pod: flow learn, route, VXLAN encap (VNI 100)
#       mplsudp        pod -> remote pod over MPLSoUDP (label 100)
#       mplsgre        pod -> remote pod over MPLSoGRE (label 100)
#       vxlan-decap    fabric -> pod: VXLAN to this node, VNI -> VRF, route, flow
#       mplsudp-decap  fabric -> pod: MPLSoUDP to this node, label -> pod next-hop, flow
#       mplsgre-decap  fabric -> pod: MPLSoGRE to this node, label -> pod next-hop, flow
#       local          pod -> pod on the same node: route, flow, MAC rewrite
#   SIZES      "64 imix" (64: 64-byte inner frames; imix: 64/570/1518 in 7:4:1)
#   WORKERS    "1" (e.g. "1 2": the vrouter-dp side also with 2 workers on cores
#              1-2, the pcap split into one RX queue per worker; without a core to
#              spare for the control thread, the last worker runs on core 0 with it
#              (cores.shared_control, rows marked "shared"); skipped beyond nproc)
#   OVS        1 (0: no OVS runs); OVS_VARIANTS "default emc-off" (see ovs.sh)
#   TESTPMD    1 (0: no testpmd runs)
#   VERIFY=1   instead of measuring, one pass over each input into a pcap sink and
#              a check of every output frame (benches/pktgen/verify.py, scapy)
#   STAGES=1   instead, vrouter-dp --stage for each stage of the pipeline (where the
#              cycles go; benches/pktgen/stages.sh): SCENARIOS default vxlan, FLOWS
#              default 1000 100000, size 64, WARM (default 3) s before measuring
# The vhost-user path (testpmd pods over virtio-user) is benches/pktgen/vhost.sh.
# needs: scripts/setup-host.sh (dpdk, hugepages), root, and for OVS Debian's
# openvswitch-switch-dpdk. Builds vrouter-dp in release mode (CARGO_TARGET_DIR
# honoured; VROUTER_BIN=path skips the build).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}; SECS=${2:-8}; shift $(($# < 2 ? $# : 2))
FLOWS=("$@"); [ ${#FLOWS[@]} -gt 0 ] || FLOWS=(1 1000 100000 1000000)
WARM=${WARM:-3}
if [ "${STAGES:-0}" = 1 ]; then
    [ $# -gt 0 ] || FLOWS=(1000 100000)
    SCENARIOS=${SCENARIOS:-vxlan}; OVS=0
fi
SCENARIOS=${SCENARIOS:-io vxlan mplsudp mplsgre vxlan-decap mplsudp-decap mplsgre-decap local}
SIZES=${SIZES:-64 imix}
WORKERS=${WORKERS:-1}
OVS=${OVS:-1}; OVS_VARIANTS=${OVS_VARIANTS:-default emc-off}
TESTPMD=${TESTPMD:-1}
OUT=target/pktgen; PCAPS=$OUT/pcap; mkdir -p "$OUT/logs" "$PCAPS"
GEN=/usr/bin/python3; [ -x $GEN ] || GEN=python3
if [ -n "${VROUTER_BIN:-}" ]; then
    BIN=$VROUTER_BIN
else
    cargo build --release -q -p vrouter-dp
    BIN=${CARGO_TARGET_DIR:-target}/release/vrouter-dp
fi
NCPU=$(nproc)
# OVS-DPDK: Debian's DPDK build of ovs-vswitchd, installed when missing
if [ "$OVS" = 1 ] && ! { /usr/sbin/ovs-vswitchd --version 2>/dev/null | grep -q DPDK ||
    [ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ]; }; then
    echo "installing openvswitch-switch-dpdk (apt-get) for the OVS-DPDK runs" >&2
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q openvswitch-switch-dpdk >&2; then
        update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk >&2
    else
        echo "warning: no OVS-DPDK; its column stays NA (OVS=0 to skip it)" >&2
        OVS=0
    fi
fi
fail_rows=0

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "NA"} else if (NR%2) {print v[(NR+1)/2]} else {printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0>0 && b+0>0) printf "%.2f", a/b; else print "NA" }'; }

input_kind() { # the input pcap a scenario reads
    case $1 in
    io | vxlan | mplsudp | mplsgre | local) echo pod ;;
    vxlan-decap) echo vxlan ;;
    mplsudp-decap) echo mplsudp ;;
    mplsgre-decap) echo mplsgre ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
    esac
}
packets_in_pcap() { # FLOWS SIZE [SHARDS] -> packets per pcap (generator's rule)
    local n=$1 k=${3:-1}
    [ "$n" -ge "$k" ] && n=$(((n + k - 1) / k))
    if [ "$2" = imix ]; then n=$(((n > 12 ? n : 12) + 11)); n=$((n / 12 * 12)); fi
    echo "$n"
}
# average output frame (bytes, without FCS) per input frame of inner size L
out_frame() { # SCENARIO SIZE
    local add
    case $1 in io | local | *-decap) add=0 ;; vxlan) add=50 ;; mplsudp) add=32 ;; mplsgre) add=28 ;; esac
    if [ "$2" = imix ]; then awk -v a=$add 'BEGIN { printf "%.2f", (7*60 + 4*566 + 1514)/12 + a }'; else echo $((60 + add)); fi
}

# Scenario state appended to the config. Addresses: pods 10.244.0.0/16 here,
# 10.245.0.0/16 remote; underlay 10.10.0.11 (this node, MAC 02:aa:..:11) and
# 10.10.0.12 (the remote node, MAC 02:bb:..:12); the fabric MTU is 9000 so that
# tunnelled 1518-byte frames fit. Pod interfaces have policy on (TF's default):
# every flow and its reverse is learned in the flow table. The decap scenarios
# repeat the node address on the physical interface: tunnels are terminated on
# the addresses of the fabric and host interfaces, not on [underlay] ipv4.
scenario_state() { # SCENARIO
    local sc=$1
    case $sc in
    io) return ;;
    vxlan | mplsudp | mplsgre)
        local encap=$sc key="label = 100"
        [ "$sc" = mplsudp ] && encap=mplsoudp
        [ "$sc" = mplsgre ] && encap=mplsogre
        [ "$sc" = vxlan ] && key="vni = 100"
        cat <<TOML
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
encap = "$encap"
dst = "10.10.0.12"
dmac = "02:bb:00:00:00:12"
[[routes]]
vrf = 1
prefix = "10.245.0.0/16"
nexthop = 20
$key
TOML
        ;;
    *-decap)
        cat <<TOML
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
port = "sink"
mac = "02:00:00:00:00:02"
vrf = 1
policy = true
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
TOML
        if [ "$sc" = vxlan-decap ]; then
            printf '[[vnis]]\nvni = 100\nnexthop = 30\n'
        else
            printf '[[labels]]\nlabel = 100\nnexthop = 10\n'
        fi
        ;;
    local)
        cat <<TOML
[[vrfs]]
id = 1
[[interfaces]]
id = 1
kind = "virtual"
port = "gen"
mac = "02:00:00:00:00:01"
vrf = 1
policy = true
[[interfaces]]
id = 2
kind = "virtual"
port = "sink"
mac = "02:00:00:00:00:02"
vrf = 1
policy = true
[[nexthops]]
id = 10
kind = "encap"
interface = 2
dmac = "02:00:00:00:00:02"
vrf = 1
[[routes]]
vrf = 1
prefix = "10.245.0.10/32"
nexthop = 10
TOML
        ;;
    esac
}

# Memory per row: the pcap PMD keeps every packet of the file in an mbuf and copies
# each into a fresh one on RX, so the pool holds the pcap plus the rings. Hugepages
# when enough are free, else plain memory for vrouter-dp and testpmd alike (the row
# is marked no-huge): EAL then runs with a file prefix instead of --in-memory
# (which --no-huge refuses), and a 4 KiB page holds one mbuf, hence 4 KiB each.
# 1M flows need ~2.6 GiB of hugepages (vm.nr_hugepages=1536 of 2 MiB, all free)
# or ~4.3 GiB of plain memory; a row that fits neither is skipped.
memory_for() { # PACKETS -> "NMBUF MEM_MB HUGE(1|0|none)"
    local nmbuf=$(($1 + 32767)) mem free avail
    [ $nmbuf -ge 131071 ] || nmbuf=131071
    mem=$(((nmbuf * 5 / 2 + 1023) / 1024 + 96)); mem=$(((mem + 1) / 2 * 2))
    free=$(awk '/^HugePages_Free/ {f=$2} /^Hugepagesize/ {s=$2} END {print int(f*s/1024)}' /proc/meminfo)
    avail=$(awk '/^MemAvailable/ {print int($2/1024)}' /proc/meminfo)
    if [ "$mem" -le "$((free - 64))" ]; then echo "$nmbuf $mem 1"; return; fi
    mem=$((nmbuf * 4 / 1024 + 128))
    if [ "$mem" -le "$((avail - 2048))" ]; then echo "$nmbuf $mem 0"; else echo "$nmbuf $mem none"; fi
}

# Worker cores: 1..k, or with no core to spare for the control thread, 1..k-1 and
# the control core 0 (cores.shared_control; the row is marked "shared").
worker_list() { # WORKERS
    if [ $(($1 + 1)) -gt "$NCPU" ]; then
        { seq 1 $(($1 - 1)); echo 0; } | paste -sd,
    else
        seq -s, 1 "$1"
    fi
}

write_config() { # SCENARIO WORKERS NMBUF MEM_MB HUGE GEN_VDEV SINK_VDEV FLOWS -> config on stdout
    local sc=$1 k=$2 nmbuf=$3 mem=$4 huge=$5 role=pod sinkrole=fabric cap=1048576
    # Room for every flow and its reverse at most 40% full.
    while [ "$cap" -lt $((${8:-1} * 5)) ]; do cap=$((cap * 2)); done
    case $sc in *-decap) role=fabric; sinkrole=pod ;; local) sinkrole=pod ;; esac
    cat <<TOML
log_level = "warn"
[cores]
workers = [$(worker_list "$k")]
control = 0
shared_control = $([ $((k + 1)) -gt "$NCPU" ] && echo true || echo false)
[memory]
socket_mem_mb = [$mem]
hugepages = $([ "$huge" = 1 ] && echo true || echo false)
mbufs_per_pool = $nmbuf
mbuf_cache = 512
[eal]
$([ "$huge" = 1 ] && echo "in_memory = true" || echo "file_prefix = \"pktgen-vrouter\"")
[[ports]]
name = "gen"
vdev = "$6"
rx_queues = $k
role = "$role"
[[ports]]
name = "sink"
vdev = "$7"
role = "$sinkrole"
[control]
enabled = false
[telemetry]
stats_interval_secs = 1
[flows]
capacity = $cap
TOML
    scenario_state "$sc"
}

run_vrouter() { # SCENARIO SIZE FLOWS WORKERS NMBUF MEM_MB HUGE -> "Mpps cyc/pkt drops status"
    local sc=$1 size=$2 n=$3 k=$4 nmbuf=$5 mem=$6 huge=$7
    local kind tag cfg log pcaps="" s p
    kind=$(input_kind "$sc")
    tag=$sc-$size-$n-w$k; cfg=$OUT/logs/vrouter-$tag.toml; log=$OUT/logs/vrouter-$tag.log
    # one pcap (shard of the flows) per RX queue, one RX queue per worker
    for s in $(seq 0 $((k - 1))); do
        if [ "$k" -gt 1 ]; then p=$($GEN benches/pktgen/gen_pcaps.py "$PCAPS" "$kind" "$n" "$size" "$s/$k")
        else p=$($GEN benches/pktgen/gen_pcaps.py "$PCAPS" "$kind" "$n" "$size"); fi
        pcaps+="rx_pcap=$PWD/$p,"
    done
    write_config "$sc" "$k" "$nmbuf" "$mem" "$huge" "net_pcap0,${pcaps}infinite_rx=1" "net_null0,no-rx=1" "$n" > "$cfg"
    local rc=0
    "$BIN" --config "$cfg" --duration $((WARM + SECS)) > "$log" 2>&1 || rc=$?
    # periodic lines "[ t s] | gen: rx A Mpps tx B Mpps tx_drop .. | sink: rx C Mpps tx D Mpps ..":
    # the forwarded rate is the sum of every port's TX rate
    local mpps cpp drops st
    mpps=$(awk -v warm=$WARM '/^\[/ { t=$2; sub(/s\]/,"",t); if (t+0 > warm) { s=0; for (i=1;i<NF;i++) if ($i=="tx" && $(i+2)=="Mpps") s+=$(i+1); print s } }' "$log" | median)
    cpp=$(awk '/^worker lcore/ { s+=$NF; n++ } END { if (n) printf "%.1f", s/n; else print "NA" }' "$log")
    # summary: "worker lcore L: rx R tx T tx_dropped D ...", "drop REASON: N", port rx_missed
    drops=$(awk '/^drop / { r=$2; sub(/:$/,"",r); d = d (d=="" ? "" : ",") r "=" $3 }
                 /^worker lcore/ && $9+0 > 0 { t += $9 }
                 END { if (t) d = d (d=="" ? "" : ",") "tx_dropped=" t; print (d=="" ? "-" : d) }' "$log")
    # a run is valid when it exited cleanly and (nearly) every received packet left:
    # drops and TX drops under 0.1% of RX
    st=$(awk -v rc=$rc '/^worker lcore/ { rx += $5; tx += $7; td += $9 } /^drop / { dr += $3 }
        END { if (rc != 0 || rx == 0) print "FAIL(exit " rc ", rx " rx+0 ")";
              else if (dr + td > rx / 1000) printf "FAIL(%.1f%% dropped)\n", 100 * (dr + td) / rx;
              else print "ok" }' "$log")
    echo "$mpps $cpp $drops $st"
}

run_testpmd() { # KIND SIZE FLOWS MEMSPEC -> "Mpps cyc/pkt"
    local kind=$1 size=$2 n=$3 nmbuf=$4 mem=$5 huge=$6 p log
    p=$($GEN benches/pktgen/gen_pcaps.py "$PCAPS" "$kind" "$n" "$size")
    log=$OUT/logs/testpmd-$kind-$size-$n.log
    # --no-huge implies legacy memory, which --in-memory refuses: a file prefix instead
    local memargs=(--in-memory)
    [ "$huge" = 1 ] || memargs=(--no-huge -m "$mem" --file-prefix pktgen-testpmd)
    # loading the pcap into mbufs takes up to 2 s per 100k packets before forwarding
    timeout -k 10 -s INT $((WARM + SECS + 2 + $(packets_in_pcap "$n" "$size") / 50000)) \
        dpdk-testpmd "${memargs[@]}" -l 0-1 --main-lcore 0 --no-pci --log-level=lib.eal:error \
        --vdev "net_pcap0,rx_pcap=$PWD/$p,infinite_rx=1" \
        --vdev "net_null0,no-rx=1" \
        -- --nb-cores=1 --forward-mode=io --stats-period=1 \
        --total-num-mbufs="$nmbuf" --record-core-cycles > "$log" 2>&1 || true
    local mpps cpp
    mpps=$(awk '/NIC statistics for port/ { p=$(NF-1)+0 } p==1 && $1=="Tx-pps:" && $2 > 0 { k++; if (k>2) printf "%.2f\n", $2/1e6 }' "$log" | median)
    cpp=$(awk '/CPU cycles\/packet=/ { match($0, /CPU cycles\/packet=[0-9.]+/); print substr($0, RSTART+18, RLENGTH-18) }' "$log" | tail -1)
    echo "$mpps ${cpp:-NA}"
}

# VERIFY=1: one pass over each input (no infinite_rx) into a net_pcap sink, then
# benches/pktgen/verify.py checks every output frame (count, encapsulation,
# addresses, TTL, checksums, inner 5-tuples); no measurement.
run_verify() { # SCENARIO SIZE FLOWS -> "ok: N frames" or "FAIL: ..."
    local sc=$1 size=$2 n=$3 p cfg log outp nmbuf mem huge
    p=$($GEN benches/pktgen/gen_pcaps.py "$PCAPS" "$(input_kind "$sc")" "$n" "$size")
    read -r nmbuf mem huge < <(memory_for "$(packets_in_pcap "$n" "$size")")
    [ "$huge" != none ] || { echo "FAIL: not enough memory for $nmbuf mbufs"; return; }
    cfg=$OUT/logs/verify-$sc-$size-$n.toml; log=$OUT/logs/verify-$sc-$size-$n.log
    outp=$OUT/logs/verify-$sc-$size-$n.out.pcap
    rm -f "$outp"
    write_config "$sc" 1 "$nmbuf" "$mem" "$huge" "net_pcap0,rx_pcap=$PWD/$p" "net_pcap1,tx_pcap=$PWD/$outp" "$n" > "$cfg"
    if ! "$BIN" --config "$cfg" --until-idle 1 --duration 60 > "$log" 2>&1; then
        echo "FAIL: vrouter-dp exited with an error (see $log)"; return
    fi
    $GEN benches/pktgen/verify.py "$sc" "$p" "$outp" 2>&1 | tail -1
}
if [ "${VERIFY:-0}" = 1 ]; then
    bad=0
    for sc in $SCENARIOS; do for size in $SIZES; do for n in "${FLOWS[@]}"; do
        r=$(run_verify "$sc" "$size" "$n")
        printf '%-14s %-5s %8s  %s\n' "$sc" "$size" "$n" "$r"
        case $r in ok*) ;; *) bad=$((bad + 1)) ;; esac
    done; done; done
    [ $bad -eq 0 ] || { echo "FAILED: $bad check(s)" >&2; exit 1; }
    exit 0
fi

if [ "${STAGES:-0}" = 1 ]; then
    . benches/pktgen/stages.sh
    run_stages
    exit $?
fi

ovs_applies() { case $1 in io | local | vxlan | vxlan-decap) return 0 ;; *) return 1 ;; esac; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
json=$OUT/pktgen-$stamp.json; md=$OUT/pktgen-$stamp.md
hdr=$(printf '%-14s %-5s %8s %2s %9s %7s %9s %9s %-8s %7s %7s %8s %7s  %s' \
    scenario size flows w vr_Mpps vr_Gbps per_core tp_Mpps ovs_Mpps ovs_cfg vr/tp vr/ovs vr_cyc/p drops)
echo "$hdr"; echo "$hdr" > "$OUT/pktgen-$stamp.txt"
{
    echo "| scenario | size | flows | workers | vrouter-dp Mpps | Gbit/s | Mpps/core | testpmd io Mpps | OVS Mpps (best cfg) | vrouter-dp/testpmd | vrouter-dp/OVS | vrouter-dp cycles/pkt | vrouter-dp drops |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
} > "$md"
echo "[" > "$json"; first=1
declare -A TP_CACHE
for sc in $SCENARIOS; do
    kind=$(input_kind "$sc")
    for size in $SIZES; do
        for n in "${FLOWS[@]}"; do
            p=$($GEN benches/pktgen/gen_pcaps.py "$PCAPS" "$kind" "$n" "$size")
            read -r nmbuf mem huge < <(memory_for "$(packets_in_pcap "$n" "$size")")
            if [ "$huge" = none ]; then
                echo "skip: $sc $size $n: $nmbuf mbufs fit neither the free hugepages nor the available memory ($mem MiB)" >&2
                fail_rows=$((fail_rows + 1))
                continue
            fi
            # testpmd: once per input (scenarios with the same input share it)
            key=$kind-$size-$n
            if [ "$TESTPMD" = 1 ] && [ -z "${TP_CACHE[$key]:-}" ]; then
                tp=(); for _ in $(seq "$REPS"); do read -r m _ < <(run_testpmd "$kind" "$size" "$n" "$nmbuf" "$mem" "$huge"); tp+=("$m"); done
                TP_CACHE[$key]="$(printf '%s\n' "${tp[@]}" | median) $(IFS=,; echo "${tp[*]}")"
            fi
            read -r tpm tpall <<< "${TP_CACHE[$key]:-NA NA}"
            # OVS: every variant REPS times; the best median counts
            ovsm=NA ovscfg=- ovsall=""
            if [ "$OVS" = 1 ] && ! ovs_applies "$sc"; then
                ovsm=n/a
            elif [ "$OVS" = 1 ] && [ "$(packets_in_pcap "$n" "$size")" -gt 131072 ]; then
                ovsm=n/a ovscfg=pool # OVS's shared mempool is 262144 mbufs at most
            elif [ "$OVS" = 1 ]; then
                for v in $OVS_VARIANTS; do
                    ov=()
                    for r in $(seq "$REPS"); do
                        read -r m c loss < <(benches/pktgen/ovs.sh "$sc" "$PWD/$p" "$WARM" "$SECS" "$v" "$OUT/ovs")
                        cp "$OUT/ovs/stats.txt" "$OUT/logs/ovs-$sc-$size-$n-$v-$r.txt" 2>/dev/null || true
                        if awk -v l="$loss" 'BEGIN { exit !(l != "NA" && l+0 > 1) }'; then
                            echo "warning: OVS $sc $size $n $v lost $loss% of the packets it received" >&2
                            m=NA
                        fi
                        ov+=("$m")
                    done
                    vm=$(printf '%s\n' "${ov[@]}" | median)
                    ovsall+="${ovsall:+,}\"$v\":[$(IFS=,; echo "${ov[*]}" | sed 's/NA/null/g')]"
                    if awk -v a="$vm" -v b="$ovsm" 'BEGIN { exit !(a != "NA" && (b == "NA" || a+0 > b+0)) }'; then
                        ovsm=$vm ovscfg=$v
                    fi
                done
            fi
            for k in $WORKERS; do
                if [ "$k" -gt "$NCPU" ]; then
                    echo "skip: $sc $size $n with $k workers needs $k cores (one per worker, the control thread sharing core 0), this machine has $NCPU" >&2
                    continue
                fi
                vr=(); vc=(); vd=""; vs=ok
                for _ in $(seq "$REPS"); do
                    read -r m c d s < <(run_vrouter "$sc" "$size" "$n" "$k" "$nmbuf" "$mem" "$huge")
                    vr+=("$m"); vc+=("$c"); vd=$d
                    [ "$s" = ok ] || vs=$s
                done
                vm=$(printf '%s\n' "${vr[@]}" | median); vcm=$(printf '%s\n' "${vc[@]}" | median)
                ofr=$(out_frame "$sc" "$size")
                gbps=$(awk -v m="$vm" -v f="$ofr" 'BEGIN { if (m+0>0) printf "%.2f", m * (f + 4) * 8 / 1000; else print "NA" }')
                pc=$(div "$vm" "$k")
                r_tp=$(div "$vm" "$tpm"); r_ovs=$(div "$vm" "$ovsm")
                memnote=""; [ "$huge" = 1 ] || memnote=" (no-huge)"
                [ $((k + 1)) -le "$NCPU" ] || memnote+=" (shared)"
                dnote=$vd; [ "$vs" = ok ] || { dnote="$vs $vd"; fail_rows=$((fail_rows + 1)); }
                row=$(printf '%-14s %-5s %8s %2s %9s %7s %9s %9s %-8s %7s %7s %8s %7s  %s' \
                    "$sc" "$size" "$n" "$k" "$vm" "$gbps" "$pc" "$tpm" "$ovsm" "$ovscfg" "$r_tp" "$r_ovs" "$vcm" "$dnote$memnote")
                echo "$row"; echo "$row" >> "$OUT/pktgen-$stamp.txt"
                cfgnote=""; [ "$ovscfg" = - ] || cfgnote=" ($ovscfg)"
                echo "| $sc | $size | $n | $k | $vm | $gbps | $pc | $tpm | $ovsm$cfgnote | $r_tp | $r_ovs | $vcm | $dnote$memnote |" >> "$md"
                [ $first -eq 1 ] || echo "," >> "$json"; first=0
                printf '{"scenario":"%s","size":"%s","flows":%s,"workers":%s,"runs":%s,"secs":%s,"hugepages":%s,"vrouter_mpps":[%s],"vrouter_median":"%s","vrouter_gbps":"%s","vrouter_mpps_per_core":"%s","vrouter_cycles_per_packet":"%s","vrouter_drops":"%s","vrouter_status":"%s","testpmd_mpps":[%s],"testpmd_median":"%s","ovs_mpps":{%s},"ovs_best":"%s","ovs_best_config":"%s","ratio_testpmd":"%s","ratio_ovs":"%s"}' \
                    "$sc" "$size" "$n" "$k" "$REPS" "$SECS" "$([ "$huge" = 1 ] && echo true || echo false)" \
                    "$(IFS=,; echo "${vr[*]}" | sed 's/NA/null/g')" "$vm" "$gbps" "$pc" "$vcm" "$vd" "$vs" \
                    "$(echo "${tpall:-}" | sed 's/NA/null/g')" "$tpm" "$ovsall" "$ovsm" "$ovscfg" "$r_tp" "$r_ovs" >> "$json"
            done
        done
    done
done
echo "]" >> "$json"
echo "json: $json  markdown: $md  logs: $OUT/logs/"
if [ $fail_rows -gt 0 ]; then
    echo "FAILED: $fail_rows row(s) skipped for memory or where vrouter-dp did not forward what it received (see the drops column and $OUT/logs/)" >&2
    exit 1
fi
