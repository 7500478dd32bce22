#!/usr/bin/env bash
# Prepares a Debian 12 host for building, running and testing vrouter-dp.
# Idempotent: installs only missing packages, reserves 2 MiB hugepages only when
# fewer are reserved, mounts hugetlbfs only when it is not mounted.
#
#   scripts/setup-host.sh            # packages + hugepages (default 1024 x 2 MiB)
#   HUGEPAGES=512 scripts/setup-host.sh
#   SKIP_APT=1 scripts/setup-host.sh # hugepages only
#
# Exits non-zero, naming what failed, when a step that the tests need did not work.
set -u

HUGEPAGES="${HUGEPAGES:-1024}"
HUGE_MNT="${HUGE_MNT:-/dev/hugepages}"
PACKAGES=(
    dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev build-essential
    tshark python3-scapy iperf3 iproute2 iputils-ping ethtool util-linux libpcap-dev
    protobuf-compiler python3-grpcio python3-grpc-tools libbpf-dev
)

failed=()
say() { printf 'setup-host: %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
        say "not root: using sudo"
    else
        say "FAIL: not root and no sudo: run this script as root"
        exit 1
    fi
fi

# 1. Packages.
if [ "${SKIP_APT:-0}" != "1" ]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "ok: packages already installed (${PACKAGES[*]})"
    else
        say "installing: ${missing[*]}"
        # tshark asks whether non-root users may capture: answer no, quietly.
        echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
        if $SUDO apt-get update -qq && \
           DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/setup-host-apt.log 2>&1; then
            say "ok: installed ${missing[*]}"
        else
            say "FAIL: apt-get install failed (log: /tmp/setup-host-apt.log)"
            failed+=("packages")
        fi
    fi
fi

# 2. Rust toolchain (cargo) must exist; it is not installed here.
if command -v cargo >/dev/null 2>&1; then
    say "ok: $(cargo --version)"
else
    say "FAIL: cargo not found: install a Rust toolchain (rustup) first"
    failed+=("cargo")
fi

# 3. Hugepages (2 MiB).
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$nr" ] || [ -n "$SUDO" ]; then
    cur=$(cat "$nr" 2>/dev/null || echo 0)
    if [ "$cur" -ge "$HUGEPAGES" ]; then
        say "ok: $cur x 2 MiB hugepages reserved (wanted $HUGEPAGES)"
    else
        echo "$HUGEPAGES" | $SUDO tee "$nr" >/dev/null 2>&1
        now=$(cat "$nr" 2>/dev/null || echo 0)
        if [ "$now" -ge "$HUGEPAGES" ]; then
            say "ok: reserved $now x 2 MiB hugepages (was $cur)"
        else
            say "FAIL: asked for $HUGEPAGES x 2 MiB hugepages, the kernel gave $now (memory fragmented? try at boot: hugepages=$HUGEPAGES)"
            failed+=("hugepages")
        fi
    fi
else
    say "FAIL: $nr not writable (not root, or no hugepage support in this kernel)"
    failed+=("hugepages")
fi

# 4. hugetlbfs mount.
if grep -qs " $HUGE_MNT hugetlbfs " /proc/mounts; then
    say "ok: hugetlbfs mounted on $HUGE_MNT"
else
    $SUDO mkdir -p "$HUGE_MNT"
    if $SUDO mount -t hugetlbfs nodev "$HUGE_MNT"; then
        say "ok: mounted hugetlbfs on $HUGE_MNT"
    else
        say "FAIL: could not mount hugetlbfs on $HUGE_MNT"
        failed+=("hugetlbfs")
    fi
fi

# 5. DPDK visible to the build.
if pkg-config --exists libdpdk 2>/dev/null; then
    say "ok: libdpdk $(pkg-config --modversion libdpdk)"
else
    say "FAIL: pkg-config does not find libdpdk"
    failed+=("libdpdk")
fi

if [ "${#failed[@]}" -ne 0 ]; then
    say "FAILED steps: ${failed[*]}"
    exit 1
fi
say "host ready"
