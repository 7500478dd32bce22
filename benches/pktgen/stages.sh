#!/usr/bin/env bash
# Where the cycles go: vrouter-dp --stage STAGE, one stage of the pipeline at a time,
# on the same input pcap (net_pcap infinite_rx -> net_null, one worker on core 1)
# and the same config as run.sh's scenario. Per scenario and flow count, a table
# stage -> Mpps (sum of the ports' TX rates), the worker's cycles per packet (busy
# TSC cycles around RX + stage work + TX, per received packet) and the cycles it
# adds over the stage it builds on (named in the column). Medians of REPS runs,
# each the median of its per-second lines after WARM s.
#
#   vxlan (pod -> remote pod):   io parse flow route encap full
#   *-decap (fabric -> pod):     io parse decap full
#   (STAGE_LIST="..." overrides.) Bases: parse over io; flow and route over parse
#   (each is parse + its lookup); encap over route (route + tunnel headers, no
#   flow lookup); decap over io; full (the whole pipeline, flow learning
#   included) over encap, or decap, whichever ran.
#
# usage: benches/pktgen/stages.sh [REPS] [SECONDS] [FLOWS...]
#        (= STAGES=1 benches/pktgen/run.sh ...; SCENARIOS default vxlan, FLOWS
#        default 1000 100000, WARM default 3, VROUTER_BIN as in run.sh)
# Sourced by run.sh (its config writer, pcap generator and memory sizing); run
# directly, it runs run.sh with STAGES=1. Writes target/pktgen/stages-STAMP.{txt,md}.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    STAGES=1 exec "$(dirname "$0")/run.sh" "$@"
fi

stage_list() { # SCENARIO -> the stages run for it, cheapest first
    case $1 in
    *-decap) echo "${STAGE_LIST:-io parse decap full}" ;;
    *) echo "${STAGE_LIST:-io parse flow route encap full}" ;;
    esac
}

run_stage_once() { # SCENARIO STAGE FLOWS NMBUF MEM_MB HUGE PCAP -> "Mpps cyc/pkt status"
    local sc=$1 st=$2 n=$3 nmbuf=$4 mem=$5 huge=$6 p=$7 cfg log rc=0
    cfg=$OUT/logs/stage-$sc-$st-$n.toml; log=$OUT/logs/stage-$sc-$st-$n.log
    write_config "$sc" 1 "$nmbuf" "$mem" "$huge" "net_pcap0,rx_pcap=$PWD/$p,infinite_rx=1" \
        "net_null0,no-rx=1" "$n" > "$cfg"
    "$BIN" --config "$cfg" --stage "$st" --duration $((WARM + SECS)) > "$log" 2>&1 || rc=$?
    # "[    4.0s] stage S | gen: rx A Mpps tx B Mpps | sink: rx C Mpps tx D Mpps | cycles/packet E | ..."
    local mpps cpp st_ok
    mpps=$(awk -v warm="$WARM" '/^\[/ && / stage / { t=$2; sub(/s\]/,"",t); if (t+0 > warm) {
            s=0; for (i=1;i<NF;i++) if ($i=="tx" && $(i+2)=="Mpps") s+=$(i+1); print s } }' "$log" | median)
    cpp=$(awk -v warm="$WARM" '/^\[/ && / stage / { t=$2; sub(/s\]/,"",t); if (t+0 > warm)
            for (i=1;i<NF;i++) if ($i=="cycles/packet") print $(i+1) }' "$log" | median)
    # summary: "stage S: rx R tx T cycles/packet C [packets P ok O failed F ...]", "drop R: N",
    # "worker lcore L: rx R tx T tx_dropped D ..."; valid when under 0.1% was lost
    st_ok=$(awk -v rc=$rc -v st="$st" '$1=="stage" && $2==st":" { rx=$4; for (i=1;i<NF;i++) if ($i=="failed") f=$(i+1) }
        /^drop / { f += $3 } /^worker lcore/ { f += $9 }
        END { if (rc != 0 || rx+0 == 0) print "FAIL(exit " rc ", rx " rx+0 ")";
              else if (f > rx / 1000) printf "FAIL(%.1f%% failed)\n", 100 * f / rx; else print "ok" }' "$log")
    echo "${mpps:-NA} ${cpp:-NA} $st_ok"
}

run_stages() {
    local stamp txt md hdr bad=0 sc n st p nmbuf mem huge
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    txt=$OUT/stages-$stamp.txt; md=$OUT/stages-$stamp.md
    hdr=$(printf '%-12s %7s %-6s %8s %9s %16s  %s' scenario flows stage Mpps cyc/pkt "+cyc/pkt(over)" status)
    echo "$hdr" | tee "$txt"
    {
        echo "| scenario | flows | stage | Mpps | cycles/pkt | + cycles/pkt (over stage) | status |"
        echo "|---|---:|---|---:|---:|---:|---|"
    } > "$md"
    for sc in $SCENARIOS; do
        for n in "${FLOWS[@]}"; do
            p=$($GEN benches/pktgen/gen_pcaps.py "$PCAPS" "$(input_kind "$sc")" "$n" 64)
            read -r nmbuf mem huge < <(memory_for "$(packets_in_pcap "$n" 64)")
            if [ "$huge" = none ]; then
                echo "skip: $sc $n: $nmbuf mbufs fit neither the free hugepages nor the available memory" >&2
                bad=$((bad + 1)); continue
            fi
            local -A CPP=()
            for st in $(stage_list "$sc"); do
                local ms=() cs=() status=ok m c s
                for _ in $(seq "$REPS"); do
                    read -r m c s < <(run_stage_once "$sc" "$st" "$n" "$nmbuf" "$mem" "$huge" "$p")
                    ms+=("$m"); cs+=("$c"); [ "$s" = ok ] || status=$s
                done
                m=$(printf '%s\n' "${ms[@]}" | median); c=$(printf '%s\n' "${cs[@]}" | median)
                local base="" inc
                case $st in
                parse | decap) base=io ;; flow | route) base=parse ;; encap) base=route ;;
                full) base=encap; [ -n "${CPP[encap]:-}" ] || base=decap ;;
                esac
                inc=$(awk -v a="$c" -v b="${base:+${CPP[$base]:-}}" -v n="$base" 'BEGIN {
                    if (b == "" || a == "NA" || b == "NA") print "-"; else printf "%+.1f(%s)", a - b, n }')
                CPP[$st]=$c
                [ "$status" = ok ] || bad=$((bad + 1))
                printf '%-12s %7s %-6s %8s %9s %16s  %s\n' "$sc" "$n" "$st" "$m" "$c" "$inc" \
                    "$status$([ "$huge" = 1 ] || echo " (no-huge)")" | tee -a "$txt"
                echo "| $sc | $n | $st | $m | $c | $inc | $status |" >> "$md"
            done
        done
    done
    echo "table: $txt  markdown: $md  logs: $OUT/logs/stage-*"
    [ $bad -eq 0 ] || { echo "FAILED: $bad stage row(s) lost packets or did not run (see the logs)" >&2; return 1; }
}
