# Tests of deploy/ansible (sourced by scripts/test-deploy.sh, which sets ROOT,
# DEPLOY_TEST_LOGS, DEPLOY_TMP, STAGE and puts the tool venv first on PATH).
#
# The role runs against this machine (connection local) with two fake nodes whose
# host paths live under fake trees (vrouter_dp_host_root): in check mode for each data
# path, for real with an idempotence run, and with bad inputs that must fail.
# shellcheck shell=bash

ANSIBLE_DIR="$ROOT/deploy/ansible"
export ANSIBLE_CONFIG="$ANSIBLE_DIR/ansible.cfg"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCAL_TEMP="$DEPLOY_TMP/ansible-local"
export ANSIBLE_REMOTE_TEMP="$DEPLOY_TMP/ansible-remote"

# A node's host paths as the role sees them: a kernel command line without the
# data-plane arguments, an 82599 at 0000:3b:00.0 on ixgbe, an E810 PF at
# 0000:af:00.0 with VF 0 (0000:af:01.0) on iavf.
make_fake_root() {
    local r="$1"
    rm -rf "$r"
    mkdir -p "$r/proc" "$r/etc/sysctl.d" "$r/etc/modules-load.d" "$r/etc/default" \
        "$r/sys/module" "$r/sys/bus/pci/drivers/ixgbe" "$r/sys/bus/pci/drivers/iavf" \
        "$r/sys/bus/pci/drivers/vfio-pci" "$r/sys/bus/pci/devices/0000:3b:00.0/net/ens1f0" \
        "$r/sys/bus/pci/devices/0000:af:00.0/net/ens2f0" "$r/sys/bus/pci/devices/0000:af:01.0"
    echo "BOOT_IMAGE=/vmlinuz-6.1.0 root=/dev/sda1 ro quiet" >"$r/proc/cmdline"
    : >"$r/sys/bus/pci/drivers_probe"
    : >"$r/sys/bus/pci/drivers/ixgbe/unbind"
    : >"$r/sys/bus/pci/drivers/iavf/unbind"
    ln -s ../../drivers/ixgbe "$r/sys/bus/pci/devices/0000:3b:00.0/driver"
    ln -s ../../drivers/iavf "$r/sys/bus/pci/devices/0000:af:01.0/driver"
    ln -s ../0000:af:01.0 "$r/sys/bus/pci/devices/0000:af:00.0/virtfn0"
    echo 8 >"$r/sys/bus/pci/devices/0000:af:00.0/sriov_totalvfs"
    echo 4 >"$r/sys/bus/pci/devices/0000:af:00.0/sriov_numvfs"
}

# write_inventory DIR MODE CONTROL PAGE [extra YAML lines for node-b]
write_inventory() {
    local dir="$1" mode="$2" control="$3" page="$4" extra_b="${5:-}"
    local py
    py="$(command -v python3)"
    mkdir -p "$dir/host_vars"
    cat >"$dir/hosts.yml" <<EOF
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: $py
    ansible_become: false
    vrouter_dp_datapath_mode: $mode
    vrouter_dp_control_plane: $control
    vrouter_dp_hugepage_size: "$page"
    vrouter_dp_socket_mem_mb: [$([ "$page" = 1G ] && echo 2048 || echo 1024)]
    vrouter_dp_worker_cores: [2, 3]
    vrouter_dp_control_core: 1
    vrouter_dp_af_xdp_iface: ens2f1
    vrouter_dp_flow_capacity: 262144
    vrouter_dp_work_dir: $dir/work
    vrouter_dp_manifest_path: $dir/work/applied.yaml
    vrouter_dp_apply: false
    vrouter_dp_binary: $STAGE/usr/local/bin/vrouter-dp
    vrouter_dp_image: registry.example.com/vrouter/vrouter-dp
    vrouter_dp_image_tag: 0.1.0
  children:
    vrouter_dp_bootstrap:
      hosts:
        bootstrap:
    vrouter_dp_nodes:
      hosts:
        node-a:
          vrouter_dp_host_root: $dir/root-a
$([ "$control" = static ] && echo '          vrouter_dp_underlay: {ipv4: "10.20.0.11/24", gateway4: "10.20.0.1"}')
        node-b:
          vrouter_dp_host_root: $dir/root-b
$([ "$control" = static ] && echo '          vrouter_dp_underlay: {ipv4: "10.20.0.12/24", gateway4: "10.20.0.1"}')
$extra_b
EOF
    make_fake_root "$dir/root-a"
    make_fake_root "$dir/root-b"
}

# Static forwarding state of node-a/node-b (control plane "static").
static_tables() {
    cat <<'EOF'
          vrouter_dp_static_tables: |
            [[vrfs]]
            id = 1
            name = "pod-network"

            [[nexthops]]
            id = 20
            kind = "tunnel"
            encap = "vxlan"
            dst = "10.20.0.11"
            interface = 0

            [[routes]]
            vrf = 1
            prefix = "10.1.1.0/24"
            nexthop = 20
            vni = 100
EOF
}

playbook() { # INVENTORY_DIR LOG [ansible-playbook args...]
    local inv="$1" log="$2"; shift 2
    (cd "$ANSIBLE_DIR" && ansible-playbook -i "$inv/hosts.yml" site.yml "$@") >"$log" 2>&1
}

# The PLAY RECAP says changed=0 for every host.
recap_unchanged() {
    local log="$1"
    grep -q '^PLAY RECAP' "$log" || { echo "no PLAY RECAP in $log"; return 1; }
    if sed -n '/^PLAY RECAP/,$p' "$log" | grep -E 'changed=[1-9]'; then
        echo "a host changed something on the second run (see $log)"
        return 1
    fi
}

rendered_ok() { # WORK_DIR
    local rendered="$1/rendered.yaml"
    [ -s "$rendered" ] || { echo "no $rendered"; return 1; }
    kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$rendered" &&
        python3 "$ROOT/tests/deploy/check_manifests.py" "$rendered" \
            --vrouter-dp "$STAGE/usr/local/bin/vrouter-dp" --empty-root "$DEPLOY_TMP/empty-root"
}

ansible_syntax() {
    cd "$ANSIBLE_DIR" && ansible-playbook --syntax-check -i inventory/example site.yml
}

ansible_lint() {
    cd "$ANSIBLE_DIR" && ansible-lint --offline --profile production
}

# Check mode: nothing on the (fake) hosts changes, the manifests are rendered.
ansible_check_mode() { # NAME MODE CONTROL PAGE [extra]
    local inv="$DEPLOY_TMP/ansible-$1"
    write_inventory "$inv" "$2" "$3" "$4" "${5:-}"
    local before after
    before=$(cd "$inv" && find root-a root-b -printf '%p %s %l\n' | sort | md5sum)
    playbook "$inv" "$inv/check.log" --check --diff || { cat "$inv/check.log"; return 1; }
    after=$(cd "$inv" && find root-a root-b -printf '%p %s %l\n' | sort | md5sum)
    [ "$before" = "$after" ] || { echo "check mode changed the fake hosts"; return 1; }
    rendered_ok "$inv/work"
}

ansible_check_dpdk() { ansible_check_mode dpdk dpdk agent 2M; }
ansible_check_sriov_1g() { ansible_check_mode sriov-1g sriov relay 1G; }
ansible_check_af_xdp_static() {
    ansible_check_mode af-xdp-static af_xdp static 2M "$(static_tables)" || return 1
    local r="$DEPLOY_TMP/ansible-af-xdp-static/work/rendered.yaml"
    if ! grep -q 'node-a.toml' "$r" || ! grep -q 'node-b.toml' "$r"; then
        echo "per-node configs missing from $r"; return 1
    fi
    grep -q 'ipv4 = \\"10.20.0.12/24\\"\|ipv4 = "10.20.0.12/24"' "$r" || {
        echo "node-b's underlay address missing from $r"; return 1; }
}

# A real run on the fake hosts, then (after the "kernel" bound the device) a second
# run that must change nothing, then (after a "reboot") the reboot flag goes.
ansible_real_run() {
    local inv="$DEPLOY_TMP/ansible-real" r
    write_inventory "$inv" dpdk local 2M
    playbook "$inv" "$inv/run1.log" || { cat "$inv/run1.log"; return 1; }
    for n in a b; do
        r="$inv/root-$n"
        grep -qx 'vm.nr_hugepages = 512' "$r/etc/sysctl.d/80-vrouter-dp-hugepages.conf" ||
            { echo "root-$n: hugepage sysctl wrong"; return 1; }
        grep -q 'isolcpus=2,3 nohz_full=2,3 rcu_nocbs=2,3 intel_iommu=on iommu=pt"' \
            "$r/etc/default/grub.d/80-vrouter-dp.cfg" || { echo "root-$n: kernel args wrong"; return 1; }
        grep -qx 'vfio-pci' "$r/etc/modules-load.d/vrouter-dp.conf" || { echo "root-$n: no vfio-pci"; return 1; }
        grep -q 'isolcpus=2,3' "$r/var/lib/vrouter-dp/reboot-required" || { echo "root-$n: no reboot flag"; return 1; }
        if ! grep -qx 'vfio-pci' "$r/sys/bus/pci/devices/0000:3b:00.0/driver_override" ||
            ! grep -qx '0000:3b:00.0' "$r/sys/bus/pci/drivers/ixgbe/unbind" ||
            ! grep -qx '0000:3b:00.0' "$r/sys/bus/pci/drivers_probe"; then
            echo "root-$n: not bound"; return 1
        fi
        # What the kernel does on drivers_probe.
        ln -sfn ../../drivers/vfio-pci "$r/sys/bus/pci/devices/0000:3b:00.0/driver"
    done
    rendered_ok "$inv/work" || return 1
    playbook "$inv" "$inv/run2.log" || { cat "$inv/run2.log"; return 1; }
    recap_unchanged "$inv/run2.log" || return 1
    # After a reboot into the new arguments the flag goes.
    for n in a b; do
        echo "BOOT_IMAGE=/vmlinuz-6.1.0 root=/dev/sda1 ro quiet isolcpus=2,3 nohz_full=2,3 rcu_nocbs=2,3 intel_iommu=on iommu=pt" \
            >"$inv/root-$n/proc/cmdline"
    done
    playbook "$inv" "$inv/run3.log" || { cat "$inv/run3.log"; return 1; }
    for n in a b; do
        [ ! -e "$inv/root-$n/var/lib/vrouter-dp/reboot-required" ] || { echo "root-$n: reboot flag stayed"; return 1; }
    done
}

# Negative controls: bad inputs stop the play with the role's message.
ansible_rejects_bad_mode() {
    local inv="$DEPLOY_TMP/ansible-bad-mode"
    write_inventory "$inv" dpdk-fast local 2M
    if playbook "$inv" "$inv/run.log" --check; then echo "an unknown data path was accepted"; return 1; fi
    grep -q 'vrouter_dp_datapath_mode must be dpdk, sriov or af_xdp' "$inv/run.log" ||
        { echo "no clear message:"; tail -20 "$inv/run.log"; return 1; }
}

ansible_rejects_mixed_nodes() {
    local inv="$DEPLOY_TMP/ansible-mixed"
    write_inventory "$inv" dpdk agent 2M "          vrouter_dp_worker_cores: [2, 3, 4]"
    if playbook "$inv" "$inv/run.log" --check; then echo "nodes with different cores were accepted"; return 1; fi
    grep -q "the nodes' settings differ" "$inv/run.log" ||
        { echo "no clear message:"; tail -20 "$inv/run.log"; return 1; }
}

# A control core among the worker cores: refused unless the control thread may
# share it; allowed, the node's config says so and validates.
ansible_shared_control() {
    local inv="$DEPLOY_TMP/ansible-shared-control"
    write_inventory "$inv" dpdk agent 2M
    if playbook "$inv" "$inv/run.log" --check -e '{"vrouter_dp_worker_cores": [2, 1]}'; then
        echo "a worker on the control core was accepted"; return 1
    fi
    grep -q 'unless vrouter_dp_shared_control is true' "$inv/run.log" ||
        { echo "no clear message:"; tail -20 "$inv/run.log"; return 1; }
    playbook "$inv" "$inv/check.log" --check \
        -e '{"vrouter_dp_worker_cores": [2, 1], "vrouter_dp_shared_control": true}' ||
        { tail -40 "$inv/check.log"; return 1; }
    grep -q 'shared_control = true' "$inv/work/rendered.yaml" ||
        { echo "shared_control missing from the rendered config"; return 1; }
    rendered_ok "$inv/work"
}

ansible_rejects_host_uplink_vf_count() {
    local inv="$DEPLOY_TMP/ansible-vf-count"
    write_inventory "$inv" sriov local 2M "          vrouter_dp_sriov_vf_index: 5
          vrouter_dp_sriov_numvfs: 6"
    if playbook "$inv" "$inv/run.log" --check; then echo "a VF beyond sriov_numvfs was accepted"; return 1; fi
    grep -q 'Changing a non-zero count destroys the VFs' "$inv/run.log" ||
        { echo "no clear message:"; tail -20 "$inv/run.log"; return 1; }
}

run_ansible_tests() {
    need ansible-playbook ansible-lint kubernetes-validate kubectl || {
        check "ansible tools present" false
        return
    }
    mkdir -p "$ANSIBLE_LOCAL_TEMP" "$ANSIBLE_REMOTE_TEMP"
    check "ansible: syntax check" ansible_syntax
    check "ansible: ansible-lint (production profile)" ansible_lint
    check "ansible: check mode, dpdk + agent" ansible_check_dpdk
    check "ansible: check mode, sriov + relay + 1G pages" ansible_check_sriov_1g
    check "ansible: check mode, af_xdp + static per-node configs" ansible_check_af_xdp_static
    check "ansible: real run on fake hosts, idempotent second run, reboot flag" ansible_real_run
    check "ansible: unknown data path rejected" ansible_rejects_bad_mode
    check "ansible: nodes that cannot share a DaemonSet rejected" ansible_rejects_mixed_nodes
    check "ansible: VF beyond the PF's VF count rejected" ansible_rejects_host_uplink_vf_count
    check "ansible: control core shared with a worker only when asked" ansible_shared_control
}
