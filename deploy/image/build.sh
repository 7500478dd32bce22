#!/usr/bin/env bash
# Builds vrouter-dp and vrouterctl (release) and stages them as a root-filesystem tree,
# the same steps as the build stage of deploy/image/Dockerfile (which runs this script).
#
#   deploy/image/build.sh [--out DIR] [--skip-apt] [--skip-build]
#
# Steps:
#   1. installs the Debian packages of deploy/image/build-packages.txt that are missing
#      (apt-get; root or sudo), unless --skip-apt or SKIP_APT=1;
#   2. cargo build --release -p vrouter-dp --bins --locked, into CARGO_TARGET_DIR
#      (default: target/deploy-image, so that it never touches another build's
#      directory; set CARGO_TARGET_DIR to reuse one);
#   3. stages, under DIR (default: target/deploy-image/rootfs):
#        usr/local/bin/vrouter-dp, usr/local/bin/vrouterctl
#        etc/vrouter/vrouter.toml        (the embedded demo config, no NIC)
#        usr/local/share/vrouter-dp/runtime-libs.txt
#             every shared library the two binaries load (ldd), one per line:
#             "<soname> <resolved path> <Debian package>"
#        usr/local/share/vrouter-dp/pmd-plugins.txt
#             the DPDK PMD plugins installed on the build host, with their packages
#
# Exits non-zero, naming the step, when anything fails (a missing tool included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT=""
SKIP_BUILD=0
SKIP_APT="${SKIP_APT:-0}"

usage() {
    sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
        --out=*) OUT="${1#--out=}"; shift ;;
        --skip-apt) SKIP_APT=1; shift ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/deploy-image}"
OUT="${OUT:-$CARGO_TARGET_DIR/rootfs}"
say() { printf 'build.sh: %s\n' "$*"; }
die() { printf 'build.sh: FAIL: %s\n' "$*" >&2; exit 1; }

# 1. Build dependencies.
read_list() { grep -v '^[[:space:]]*\(#\|$\)' "$1"; }
if [ "$SKIP_APT" != "1" ]; then
    mapfile -t packages < <(read_list "$ROOT/deploy/image/build-packages.txt")
    missing=()
    for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "ok: build packages installed (${packages[*]})"
    else
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || die "missing packages ${missing[*]}: not root and no sudo"
            SUDO="sudo"
        fi
        say "installing: ${missing[*]}"
        $SUDO apt-get update -qq || die "apt-get update"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" || die "apt-get install ${missing[*]}"
    fi
fi
for tool in cargo pkg-config protoc ldd dpkg-query; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (install the build packages, and a Rust toolchain for cargo)"
done
pkg-config --exists libdpdk || die "pkg-config does not find libdpdk (libdpdk-dev)"

# 2. Release build.
BIN_DIR="$CARGO_TARGET_DIR/release"
if [ "$SKIP_BUILD" = "1" ]; then
    say "skipping the build (--skip-build): staging $BIN_DIR"
else
    say "cargo build --release -p vrouter-dp --bins (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release --locked -p vrouter-dp --bins) || die "cargo build"
fi
for b in vrouter-dp vrouterctl; do
    [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b was not built"
done

# 3. Stage the tree.
rm -rf "$OUT"
install -d -m 0755 "$OUT/usr/local/bin" "$OUT/etc/vrouter" "$OUT/usr/local/share/vrouter-dp"
install -m 0755 "$BIN_DIR/vrouter-dp" "$BIN_DIR/vrouterctl" "$OUT/usr/local/bin/"
install -m 0644 "$ROOT/pmd-config/configs/default.toml" "$OUT/etc/vrouter/vrouter.toml"

# Runtime libraries: what the dynamic loader resolves for each binary, with the
# Debian package that owns each (the run stage must install those).
owner() {
    local path="$1" real pkg
    pkg=$(dpkg-query -S "$path" 2>/dev/null | head -n1 | cut -d: -f1) || true
    if [ -z "$pkg" ]; then
        real=$(readlink -f "$path")
        pkg=$(dpkg-query -S "$real" 2>/dev/null | head -n1 | cut -d: -f1) || true
    fi
    # /lib is a link to /usr/lib on Debian 12 (merged /usr): try the other spelling.
    if [ -z "$pkg" ]; then
        case "$path" in
            /usr/lib/*) pkg=$(dpkg-query -S "${path#/usr}" 2>/dev/null | head -n1 | cut -d: -f1) || true ;;
            /lib/*) pkg=$(dpkg-query -S "/usr$path" 2>/dev/null | head -n1 | cut -d: -f1) || true ;;
        esac
    fi
    printf '%s' "${pkg:-?}"
}
libs="$OUT/usr/local/share/vrouter-dp/runtime-libs.txt"
{
    echo "# soname path package (ldd of usr/local/bin/vrouter-dp and usr/local/bin/vrouterctl)"
    for b in vrouter-dp vrouterctl; do
        ldd "$OUT/usr/local/bin/$b" || die "ldd $b"
    done | awk '
        /=> not found/ { print "MISSING " $1; next }
        /=>/ && $3 ~ /^\// { print $1 " " $3; next }
        $1 ~ /^\// { n = split($1, p, "/"); print p[n] " " $1 }
    ' | sort -u | while read -r soname path; do
        if [ "$soname" = "MISSING" ]; then
            echo "$path - MISSING"
        else
            echo "$soname $path $(owner "$path")"
        fi
    done
} >"$libs"
if grep -q ' MISSING$' "$libs"; then
    grep ' MISSING$' "$libs" >&2
    die "libraries not found by the dynamic loader (see $libs)"
fi
if grep -q ' ?$' "$libs"; then
    grep ' ?$' "$libs" >&2
    die "libraries not owned by any Debian package (see $libs)"
fi

# PMD plugins: EAL loads every driver in its plugin directory at start.
pmd_dir=$(pkg-config --variable=libdir libdpdk)/dpdk
plugins="$OUT/usr/local/share/vrouter-dp/pmd-plugins.txt"
{
    echo "# plugin package (installed on the build host under $pmd_dir)"
    find "$pmd_dir" -name 'librte_*.so.*' -type f 2>/dev/null | sort | while read -r f; do
        echo "$(basename "$f") $(owner "$f")"
    done
} >"$plugins"

say "ok: staged $(wc -l <"$libs" | tr -d ' ') runtime libraries and $(($(wc -l <"$plugins") - 1)) PMD plugins listed"
say "ok: $OUT/usr/local/bin/{vrouter-dp,vrouterctl}, $OUT/etc/vrouter/vrouter.toml"
