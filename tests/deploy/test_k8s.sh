# Tests of deploy/k8s (sourced by scripts/test-deploy.sh, which sets ROOT,
# DEPLOY_TEST_LOGS, DEPLOY_TMP, STAGE and K8S_VERSION, and puts the tool venv first
# on PATH).
#
# Every overlay and example is rendered with kustomize (kubectl's), validated against
# the Kubernetes OpenAPI schemas of K8S_VERSION offline (kubernetes-validate,
# strict: unknown fields are errors), and checked by check_manifests.py, which also
# has the staged vrouter-dp load every config the render carries.
# shellcheck shell=bash

K8S_DIR="$ROOT/deploy/k8s"
RENDER_DIR="$DEPLOY_TMP/k8s"

render() { # VARIANT_DIR -> $RENDER_DIR/<name>.yaml
    local dir="$1" out
    out="$RENDER_DIR/$(basename "$(dirname "$dir")")-$(basename "$dir").yaml"
    kubectl kustomize "$dir" >"$out"
}

k8s_variant() { # VARIANT_DIR
    local dir="$1" out
    out="$RENDER_DIR/$(basename "$(dirname "$dir")")-$(basename "$dir").yaml"
    render "$dir" || return 1
    kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$out" || return 1
    python3 "$ROOT/tests/deploy/check_manifests.py" "$out" \
        --vrouter-dp "$STAGE/usr/local/bin/vrouter-dp" --empty-root "$DEPLOY_TMP/empty-root"
}

k8s_base_schema() {
    local out="$RENDER_DIR/base.yaml"
    kubectl kustomize "$K8S_DIR/base" >"$out" && kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$out"
}

# Negative controls: the checks do fail on broken input.
k8s_schema_rejects() {
    local bad="$RENDER_DIR/bad-schema.yaml"
    sed 's/hostNetwork: true/hostNetwork: "yes"/' "$RENDER_DIR/overlays-dpdk.yaml" >"$bad"
    ! kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$bad"
}

k8s_check_rejects_hugepages() {
    local bad="$RENDER_DIR/bad-hugepages.yaml"
    sed 's/hugepages-2Mi: 1Gi/hugepages-2Mi: 256Mi/' "$RENDER_DIR/overlays-dpdk.yaml" >"$bad"
    ! python3 "$ROOT/tests/deploy/check_manifests.py" "$bad"
}

k8s_check_rejects_bad_config() {
    local bad="$RENDER_DIR/bad-config.yaml"
    # A worker on the control core: the binary must refuse it.
    sed 's/workers = \[2, 3\]/workers = [1, 3]/' "$RENDER_DIR/overlays-dpdk.yaml" >"$bad"
    grep -q 'workers = \[1, 3\]' "$bad" || { echo "mutation did not apply"; return 1; }
    local out
    out=$(python3 "$ROOT/tests/deploy/check_manifests.py" "$bad" \
        --vrouter-dp "$STAGE/usr/local/bin/vrouter-dp" --empty-root "$DEPLOY_TMP/empty-root") && {
        echo "a config with a worker on the control core passed"; return 1; }
    echo "$out"
    grep -q 'refuses the config' <<<"$out"
}

run_k8s_tests() {
    need kubectl kubernetes-validate python3 || { check "kubernetes tools present" false; return; }
    kubectl kustomize --help >/dev/null 2>&1 || { check "kubectl has kustomize" false; return; }
    mkdir -p "$RENDER_DIR" "$DEPLOY_TMP/empty-root"
    check "k8s: base renders and validates" k8s_base_schema
    local d
    for d in "$K8S_DIR"/overlays/*/ "$K8S_DIR"/examples/*/; do
        d="${d%/}"
        check "k8s: $(basename "$(dirname "$d")")/$(basename "$d")" k8s_variant "$d"
    done
    check "k8s: schema validation rejects a wrong type" k8s_schema_rejects
    check "k8s: hugepages below socket_mem rejected" k8s_check_rejects_hugepages
    check "k8s: a config vrouter-dp refuses is caught" k8s_check_rejects_bad_config
}
