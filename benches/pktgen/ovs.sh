#!/usr/bin/env bash
# OVS-DPDK (userspace datapath) on the same input, vdevs and core as the vrouter-dp
# run: one private ovsdb-server + ovs-vswitchd, one PMD thread on core 1, the pcap
# source net_pcap0 (infinite_rx) and the sink net_null0 (no-rx). Used by run.sh.
#
# usage: ovs.sh SCENARIO PCAP WARM SECS VARIANT STATE_DIR
#   SCENARIO  io           br0: ip,in_port=pcap0,nw_dst=10.245.0.0/16 -> null0
#             local        br0: ip,nw_dst=10.245.0.10/32 -> set MACs, dec_ttl, null0
#             vxlan        br-int: ip,nw_dst=10.245.0.0/16 -> set MACs, dec_ttl,
#                          vxlan0 (VNI 100, 10.10.0.11 -> 10.10.0.12, native
#                          tunnelling: tnl_push, out through br-phy to null0)
#             vxlan-decap  br-phy: pcap0 -> LOCAL (tnl_pop on 10.10.0.11:4789);
#                          br-int: in_port=vxlan0,ip,nw_dst=10.244.0.10/32 -> set
#                          MACs, dec_ttl, null0
#   VARIANT   default | emc-off (other_config:emc-insert-inv-prob=0, which also
#             stops EMC lookups) | smc (smc-enable=true, EMC off)
#   STATE_DIR private OVS state (db, sockets, logs); recreated on every run
# prints one line "MPPS CYCLES_PER_PACKET LOSS_PERCENT" (NA when it failed) and
# leaves the PMD statistics and datapath flows in STATE_DIR/stats.txt. Everything
# it starts is stopped on exit (trap), whatever happens.
#
# needs: Debian's openvswitch-switch-dpdk (ovs-vswitchd linked with DPDK; as in
# `update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk`)
# and root (the LOCAL port of a netdev bridge is a kernel tap that gets the
# tunnel endpoint address 10.10.0.11/24 in the tunnel scenarios).
set -u
SC=$1 PCAP=$2 WARM=$3 SECS=$4 VARIANT=$5
mkdir -p "$6" && B=$(cd "$6" && pwd) || exit 2
NODE_IP=10.10.0.11 PEER_IP=10.10.0.12 NODE_MAC=02:aa:00:00:00:11 PEER_MAC=02:bb:00:00:00:12
GW_MAC=00:00:5e:00:01:00 POD_MAC=02:00:00:00:00:02

VSWITCHD=/usr/sbin/ovs-vswitchd
$VSWITCHD --version 2>/dev/null | grep -q DPDK || VSWITCHD=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
[ -x "$VSWITCHD" ] || { echo "NA NA NA"; echo "ovs.sh: no DPDK ovs-vswitchd (apt-get install openvswitch-switch-dpdk)" >&2; exit 2; }

export OVS_RUNDIR=$B/run OVS_LOGDIR=$B/log OVS_DBDIR=$B/db OVS_SYSCONFDIR=$B/etc
VSCTL="timeout 30 ovs-vsctl --db=unix:$OVS_RUNDIR/db.sock --timeout=25"
APPCTL="timeout 20 ovs-appctl --timeout=15 -t $OVS_RUNDIR/ovs-vswitchd.ctl"
OFCTL="timeout 20 ovs-ofctl"
DBPID="" VSPID="" TAP=""

alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null); [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
cleanup() {
    [ -n "$VSPID" ] && timeout 20 ovs-appctl --timeout=15 -t "$OVS_RUNDIR/ovs-vswitchd.ctl" exit --cleanup >/dev/null 2>&1
    [ -n "$DBPID" ] && timeout 10 ovs-appctl --timeout=5 -t "$OVS_RUNDIR/ovsdb-server.ctl" exit >/dev/null 2>&1
    for p in $VSPID $DBPID; do
        for _ in $(seq 20); do alive "$p" || break; sleep 0.5; done
        alive "$p" && { kill -TERM "$p"; sleep 2; }
        alive "$p" && kill -KILL "$p"
    done
    # the LOCAL tap goes with the bridge; remove it should a crash have left it
    [ -n "$TAP" ] && ip link show "$TAP" >/dev/null 2>&1 && ip link del "$TAP" 2>/dev/null
    VSPID="" DBPID="" TAP=""
}
fail() { echo "ovs.sh: $*" >&2; tail -5 "$OVS_LOGDIR/ovs-vswitchd.log" >&2 2>/dev/null; echo "NA NA NA"; exit 1; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for f in "$OVS_RUNDIR/ovs-vswitchd.pid" "$OVS_RUNDIR/ovsdb-server.pid"; do
    if [ -f "$f" ] && alive "$(cat "$f")"; then
        fail "an earlier instance is still running (pid $(cat "$f"), $f)"
    fi
done
rm -rf "$B"; mkdir -p "$OVS_RUNDIR" "$OVS_LOGDIR" "$OVS_DBDIR" "$OVS_SYSCONFDIR"

ovsdb-tool create "$OVS_DBDIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema || fail "ovsdb-tool create"
timeout 20 ovsdb-server "$OVS_DBDIR/conf.db" \
    --remote=punix:"$OVS_RUNDIR/db.sock" \
    --pidfile="$OVS_RUNDIR/ovsdb-server.pid" --unixctl="$OVS_RUNDIR/ovsdb-server.ctl" \
    --log-file="$OVS_LOGDIR/ovsdb-server.log" -vconsole:off --no-chdir --detach \
    2>>"$OVS_LOGDIR/ovsdb-server.stderr" || fail "ovsdb-server did not start"
DBPID=$(cat "$OVS_RUNDIR/ovsdb-server.pid")
$VSCTL --no-wait init

# DPDK main lcore and the non-PMD threads on core 0, one PMD on core 1. The shared
# mempool model gives the pcap port 131072 mbufs at most (OVS halves 262144 when it
# does not fit), so a pcap of more packets than that cannot be loaded.
$VSCTL --no-wait set Open_vSwitch . \
    other_config:dpdk-init=true other_config:dpdk-lcore-mask=0x1 \
    other_config:pmd-cpu-mask=0x2 \
    other_config:dpdk-socket-mem="${OVS_SOCKET_MEM:-1024}" \
    other_config:dpdk-socket-limit="${OVS_SOCKET_MEM:-1024}" \
    'other_config:dpdk-extra="--no-pci --in-memory"'
case $VARIANT in
default) ;;
emc-off) $VSCTL --no-wait set Open_vSwitch . other_config:emc-insert-inv-prob=0 ;;
smc) $VSCTL --no-wait set Open_vSwitch . other_config:emc-insert-inv-prob=0 other_config:smc-enable=true ;;
*) fail "unknown variant $VARIANT" ;;
esac

timeout 60 "$VSWITCHD" unix:"$OVS_RUNDIR/db.sock" \
    --pidfile="$OVS_RUNDIR/ovs-vswitchd.pid" --unixctl="$OVS_RUNDIR/ovs-vswitchd.ctl" \
    --log-file="$OVS_LOGDIR/ovs-vswitchd.log" -vconsole:off --no-chdir --detach \
    2>>"$OVS_LOGDIR/ovs-vswitchd.stderr" || fail "ovs-vswitchd did not start"
VSPID=$(cat "$OVS_RUNDIR/ovs-vswitchd.pid")
for _ in $(seq 60); do
    [ "$($VSCTL get Open_vSwitch . dpdk_initialized 2>/dev/null)" = true ] && break
    sleep 0.5
done
[ "$($VSCTL get Open_vSwitch . dpdk_initialized 2>/dev/null)" = true ] || fail "DPDK not initialised"

dpdk_port() { # BRIDGE NAME DEVARGS OFPORT
    $VSCTL add-port "$1" "$2" -- set Interface "$2" type=dpdk \
        "options:dpdk-devargs=\"$3\"" ofport_request="$4" || fail "add-port $2"
}
tunnel_underlay() { # br-phy with the sink or the source, its LOCAL tap holding the node address
    $VSCTL add-br br-phy -- set bridge br-phy datapath_type=netdev other_config:hwaddr=$NODE_MAC \
        || fail "add-br br-phy"
    TAP=br-phy
    sysctl -qw net.ipv6.conf.br-phy.disable_ipv6=1 2>/dev/null
    ip addr add $NODE_IP/24 dev br-phy && ip link set br-phy up || fail "address on br-phy"
    $APPCTL ovs/route/add $PEER_IP/32 br-phy >/dev/null || fail "ovs/route/add"
    $APPCTL tnl/arp/set br-phy $PEER_IP $PEER_MAC >/dev/null || fail "tnl/arp/set"
    $VSCTL add-br br-int -- set bridge br-int datapath_type=netdev \
        -- add-port br-int vxlan0 -- set Interface vxlan0 type=vxlan ofport_request=2 \
        options:remote_ip=$PEER_IP options:local_ip=$NODE_IP options:key=100 || fail "vxlan0"
    $OFCTL del-flows br-int
    $OFCTL del-flows br-phy
}
SRC="net_pcap0,rx_pcap=$PCAP,infinite_rx=1"
SINK="net_null0,no-rx=1"
L3="mod_dl_src:$GW_MAC,mod_dl_dst:$POD_MAC,dec_ttl"
# The source port is added last, once every flow is in place, so that no packet
# meets the default NORMAL flow (whose un-wildcarded megaflow would outlive it).
case $SC in
io | local)
    SRCBR=br0
    $VSCTL add-br br0 -- set bridge br0 datapath_type=netdev || fail "add-br br0"
    dpdk_port br0 null0 "$SINK" 2
    $OFCTL del-flows br0
    if [ "$SC" = io ]; then
        $OFCTL add-flow br0 "ip,in_port=1,nw_dst=10.245.0.0/16,actions=output:2"
    else
        $OFCTL add-flow br0 "ip,in_port=1,nw_dst=10.245.0.10/32,actions=$L3,output:2"
    fi
    ;;
vxlan)
    SRCBR=br-int
    tunnel_underlay
    dpdk_port br-phy null0 "$SINK" 1
    # a jumbo fabric MTU, as vrouter-dp's, so that tunnelled 1518-byte frames leave
    $VSCTL set Interface null0 mtu_request=9000 || fail "mtu_request"
    $OFCTL add-flow br-phy "in_port=LOCAL,actions=output:1"
    $OFCTL add-flow br-int "ip,in_port=1,nw_dst=10.245.0.0/16,actions=mod_dl_src:$GW_MAC,mod_dl_dst:$GW_MAC,dec_ttl,output:2"
    ;;
vxlan-decap)
    SRCBR=br-phy
    tunnel_underlay
    dpdk_port br-int null0 "$SINK" 3
    # to LOCAL: the packet is for the tunnel endpoint address, so the translation
    # pops the VXLAN header and recirculates the inner frame into br-int (vxlan0)
    $OFCTL add-flow br-phy "in_port=1,actions=LOCAL"
    $OFCTL add-flow br-int "ip,in_port=2,nw_dst=10.244.0.10/32,actions=$L3,output:3"
    ;;
*) fail "no OVS equivalent for $SC" ;;
esac
dpdk_port $SRCBR pcap0 "$SRC" 1
err=$($VSCTL get Interface pcap0 error 2>/dev/null)
[ -z "$err" ] || [ "$err" = '[]' ] || fail "pcap0: $err"

# "RX_OF_PCAP0 TX_OF_NULL0", read in one datapath dump (both ports are in it,
# whatever their bridge), so that both counters are taken at about the same time
counters() {
    $APPCTL dpctl/show -s | awk '
        /^  port [0-9]+:/ { port = $3 }
        port == "pcap0" && $1 == "RX" && $2 ~ /^packets:/ { split($2, a, ":"); rx = a[2] }
        port == "null0" && $1 == "TX" && $2 ~ /^packets:/ { split($2, a, ":"); tx = a[2] }
        END { if (rx != "" && tx != "") print rx, tx }'
}
sleep "$WARM"
$APPCTL dpif-netdev/pmd-stats-clear >/dev/null
read -r r0 c0 < <(counters); t0=$(date +%s.%N)
sleep "$SECS"
read -r r1 c1 < <(counters); t1=$(date +%s.%N)
{
    echo "### $SC variant=$VARIANT pcap=$PCAP window=${SECS}s"
    echo "### pmd-stats-show"; $APPCTL dpif-netdev/pmd-stats-show
    echo "### pmd-perf-show"; $APPCTL dpif-netdev/pmd-perf-show
    echo "### dpctl/dump-flows"; $APPCTL dpctl/dump-flows -m | head -20
    echo "### dpctl/show -s"; $APPCTL dpctl/show -s
    echo "### interfaces"; $VSCTL --columns=name,ofport,error,statistics list Interface
} > "$B/stats.txt" 2>&1
cpp=$(sed -n 's/.*avg processing cycles per packet: \([0-9.]*\).*/\1/p' "$B/stats.txt" | head -1)
cleanup
cp "$OVS_LOGDIR/ovs-vswitchd.log" "$B/vswitchd.log" 2>/dev/null
awk -v r0="$r0" -v r1="$r1" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v cpp="${cpp:-NA}" 'BEGIN {
    if (c0 == "" || c1 == "" || r0 == "" || r1 == "" || t1 <= t0) { print "NA NA NA"; exit 1 }
    rx = r1 - r0; tx = c1 - c0; loss = 100
    if (rx > 0) loss = 100 * (rx - tx) / rx
    printf "%.2f %s %.2f\n", tx / (t1 - t0) / 1e6, cpp, loss
}'
