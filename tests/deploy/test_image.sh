# Tests of deploy/image (sourced by scripts/test-deploy.sh, which sets ROOT,
# DEPLOY_TEST_LOGS, DEPLOY_TMP and STAGE).
#
# build.sh runs end to end (the build stage of the Dockerfile), the staged binaries
# run, the staged config is the embedded demo config, the run stage's package list
# covers every library the binaries load, and the Dockerfile runs the same script.
# shellcheck shell=bash

IMAGE_DIR="$ROOT/deploy/image"

image_build() {
    "$IMAGE_DIR/build.sh" --out "$STAGE"
}

image_tree() {
    local f
    for f in usr/local/bin/vrouter-dp usr/local/bin/vrouterctl; do
        [ -x "$STAGE/$f" ] || { echo "$f missing or not executable"; return 1; }
    done
    for f in etc/vrouter/vrouter.toml usr/local/share/vrouter-dp/runtime-libs.txt \
        usr/local/share/vrouter-dp/pmd-plugins.txt; do
        [ -s "$STAGE/$f" ] || { echo "$f missing or empty"; return 1; }
    done
    # The staged config is the one compiled into the binary as its default.
    cmp "$STAGE/etc/vrouter/vrouter.toml" "$ROOT/pmd-config/configs/default.toml"
}

image_cli() {
    "$STAGE/usr/local/bin/vrouterctl" --help | grep -q -- '--socket' ||
        { echo "vrouterctl --help does not offer --socket (the probes use it)"; return 1; }
    "$STAGE/usr/local/bin/vrouterctl" info --help >/dev/null || return 1
    "$STAGE/usr/local/bin/vrouter-dp" --help | grep -q -- '--config' || return 1
    "$STAGE/usr/local/bin/vrouter-dp" check-host --help | grep -q -- '--apply' ||
        { echo "vrouter-dp check-host has no --apply (the init container uses it)"; return 1; }
    # The embedded demo config's EAL vector, as docs/config.md shows it.
    "$STAGE/usr/local/bin/vrouter-dp" --print-eal-args | grep -q -- '--vdev net_null0 --vdev net_null1' ||
        { echo "the embedded default config's EAL arguments changed"; return 1; }
}

# The probe command fails (exit 5) when nothing serves the socket.
image_probe_fails_without_daemon() {
    local rc=0
    "$STAGE/usr/local/bin/vrouterctl" --socket "$DEPLOY_TMP/no-such.sock" info || rc=$?
    [ "$rc" -eq 5 ] || { echo "vrouterctl info on a missing socket exited $rc, expected 5"; return 1; }
}

free_2m_hugepages() {
    cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0
}

# The staged daemon runs the embedded demo config (its socket moved into the test's
# directory so that it cannot disturb a data plane already on this host) with one
# interface added: without interfaces the daemon cross-connects its ports and serves
# no control API, with one it runs the forwarding pipeline and the API. The probes'
# command must answer while it runs.
image_runs() {
    local free cfg sock log pid rc=0 tries=0
    free=$(free_2m_hugepages)
    if [ "$free" -lt 128 ]; then
        echo "only $free free 2 MiB hugepages, the demo config needs 128: run scripts/setup-host.sh"
        return 1
    fi
    cfg="$DEPLOY_TMP/demo.toml"
    sock="$DEPLOY_TMP/run/dp.sock"
    log="$DEPLOY_TMP/demo.log"
    sed "s|^socket = .*|socket = \"$sock\"|" "$STAGE/etc/vrouter/vrouter.toml" >"$cfg"
    grep -q "^socket = \"$sock\"" "$cfg" || { echo "could not move the control socket"; return 1; }
    printf '\n[[interfaces]]\nid = 0\nkind = "physical"\nport = "null0"\nvrf = 0\n' >>"$cfg"
    "$STAGE/usr/local/bin/vrouter-dp" --config "$cfg" --duration 6 >"$log" 2>&1 &
    pid=$!
    until "$STAGE/usr/local/bin/vrouterctl" --socket "$sock" info >"$DEPLOY_TMP/info.txt" 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 50 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "vrouterctl info never answered; daemon log:"
            cat "$log"
            wait "$pid" 2>/dev/null
            return 1
        fi
        sleep 0.1
    done
    wait "$pid" || rc=$?
    cat "$log"
    echo "--- vrouterctl info:"
    cat "$DEPLOY_TMP/info.txt"
    [ "$rc" -eq 0 ] || { echo "vrouter-dp exited $rc"; return 1; }
    grep -q '^worker cores' "$DEPLOY_TMP/info.txt" || { echo "vrouterctl info printed no worker cores"; return 1; }
}

# `vrouter-dp demo --null --duration 2`: the embedded default config itself (two
# net_null ports; no interfaces, so no control socket that could disturb another data
# plane on this host). It must forward on both ports.
image_runs_embedded_default() {
    local free out
    free=$(free_2m_hugepages)
    if [ "$free" -lt 128 ]; then
        echo "only $free free 2 MiB hugepages, the demo config needs 128: run scripts/setup-host.sh"
        return 1
    fi
    out=$(cd "$DEPLOY_TMP" && "$STAGE/usr/local/bin/vrouter-dp" demo --null --duration 2 -q) || {
        echo "$out"; echo "vrouter-dp demo --null --duration 2 failed"; return 1; }
    echo "$out"
    grep -Eq '^null0 +net_null0 +[1-9][0-9]* +[1-9]' <<<"$out" ||
        { echo "the demo forwarded nothing on null0"; return 1; }
}

# Every library the binaries load belongs to a package the run stage installs, or to
# one of their dependencies.
image_runtime_packages() {
    local list="$IMAGE_DIR/runtime-packages.txt" closure pkgs missing=0 p
    mapfile -t pkgs < <(grep -v '^[[:space:]]*\(#\|$\)' "$list")
    for p in "${pkgs[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 || { echo "runtime package $p is unknown to apt"; missing=1; }
    done
    closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${pkgs[@]}" 2>/dev/null |
        grep -v '^ ' | sed 's/:.*//' | sort -u)
    while read -r soname path pkg; do
        case "$soname" in \#*) continue ;; esac
        pkg="${pkg%%:*}"
        if ! grep -qx "$pkg" <<<"$closure"; then
            echo "$soname ($path) is in $pkg, which the run stage does not install"
            missing=1
        fi
    done <"$STAGE/usr/local/share/vrouter-dp/runtime-libs.txt"
    # The PMDs of the shipped configs' devices are installed.
    for p in librte_net_ixgbe librte_net_ice librte_net_iavf librte_net_af_xdp librte_net_null \
        librte_net_tap librte_net_bond librte_net_vhost librte_mempool_ring; do
        pkg=$(awk -v p="$p" 'index($1, p ".so") == 1 { print $2; exit }' \
            "$STAGE/usr/local/share/vrouter-dp/pmd-plugins.txt")
        pkg="${pkg%%:*}"
        if [ -z "$pkg" ]; then
            echo "PMD $p is not installed on the build host"
            missing=1
        elif ! grep -qx "$pkg" <<<"$closure"; then
            echo "PMD $p ($pkg) is not installed by the run stage"
            missing=1
        fi
    done
    return "$missing"
}

build_packages_known() {
    local p rc=0
    while read -r p; do
        apt-cache show "$p" >/dev/null 2>&1 || { echo "build package $p is unknown to apt"; rc=1; }
    done < <(grep -v '^[[:space:]]*\(#\|$\)' "$IMAGE_DIR/build-packages.txt")
    return "$rc"
}

# The Dockerfile and build.sh stay in step: the build stage runs build.sh into the
# directory the run stage copies, the run stage installs runtime-packages.txt, and
# the entry point is the daemon with the config the manifests mount.
image_dockerfile_in_step() {
    local df="$IMAGE_DIR/Dockerfile" rc=0
    grep -Eq '^RUN .*deploy/image/build\.sh --out /staging' "$df" || { echo "build stage does not run build.sh --out /staging"; rc=1; }
    grep -Eq '^COPY --from=build /staging/ /' "$df" || { echo "run stage does not copy /staging"; rc=1; }
    grep -q 'runtime-packages.txt' "$df" || { echo "run stage does not install runtime-packages.txt"; rc=1; }
    grep -q 'build-packages.txt' "$df" || { echo "build stage does not install build-packages.txt"; rc=1; }
    grep -Eq '^FROM .*debian:12-slim|^ARG RUNTIME_IMAGE=debian:12-slim' "$df" || { echo "run stage is not debian:12-slim"; rc=1; }
    grep -qx 'ENTRYPOINT \["/usr/local/bin/vrouter-dp"\]' "$df" || { echo "ENTRYPOINT is not vrouter-dp"; rc=1; }
    grep -qx 'CMD \["--config", "/etc/vrouter/vrouter.toml"\]' "$df" || { echo "CMD is not --config /etc/vrouter/vrouter.toml"; rc=1; }
    grep -Eq '^USER [1-9]' "$df" || { echo "the image's default user is root"; rc=1; }
    return "$rc"
}

image_hadolint() {
    hadolint "$IMAGE_DIR/Dockerfile"
}

deploy_shellcheck() {
    shellcheck -x "$IMAGE_DIR/build.sh" "$ROOT/scripts/test-deploy.sh" "$ROOT"/tests/deploy/*.sh
}

run_image_tests() {
    need cargo pkg-config ldd apt-cache dpkg-query || { check "image tools present" false; return; }
    check "image: build.sh builds and stages (release)" image_build
    check "image: staged tree" image_tree
    check "image: CLI flags the manifests use" image_cli
    check "image: probe command fails without a data plane" image_probe_fails_without_daemon
    check "image: staged vrouter-dp runs the demo config, vrouterctl info answers" image_runs
    check "image: staged vrouter-dp demo --null --duration 2 (embedded default config)" image_runs_embedded_default
    check "image: run stage packages cover every loaded library and PMD" image_runtime_packages
    check "image: build packages exist" build_packages_known
    check "image: Dockerfile runs build.sh and matches the manifests" image_dockerfile_in_step
    if need hadolint shellcheck; then
        check "image: hadolint Dockerfile" image_hadolint
        check "image: shellcheck of the deployment scripts" deploy_shellcheck
    else
        check "linters present (hadolint, shellcheck)" false
    fi
}
