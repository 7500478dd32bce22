#!/usr/bin/env python3
"""Checks a rendered vrouter-dp deployment (the output of `kubectl kustomize`).

Beyond the schema (kubernetes-validate does that), checks what the data plane needs:
the DaemonSet's scheduling, QoS and update settings, that the hugepage resources
match the config's memory section, that the probes use the config's control socket,
that every ConfigMap the pod mounts is in the render, and (with --vrouter-dp) that
the real binary accepts every config in it.

    check_manifests.py RENDERED.yaml [--vrouter-dp BIN] [--empty-root DIR]

Prints one line per problem and exits 1 when there is any.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

NODE_LABEL = "vrouter.dp/enabled"
PAGE_RESOURCE = {"2M": "hugepages-2Mi", "1G": "hugepages-1Gi"}


def quantity_mib(q):
    """Kubernetes binary quantity (Mi, Gi) in MiB."""
    m = re.fullmatch(r"(\d+)(Mi|Gi)", str(q))
    if not m:
        raise ValueError(f"quantity {q!r} is not in Mi or Gi")
    n = int(m.group(1))
    return n * 1024 if m.group(2) == "Gi" else n


def check_resources(name, res, problems, whole_cpu):
    req = res.get("requests", {})
    lim = res.get("limits", {})
    for key in ("cpu", "memory"):
        if key not in req or key not in lim:
            problems.append(f"{name}: no {key} request and limit (the pod would not be Guaranteed)")
        elif str(req[key]) != str(lim[key]):
            problems.append(f"{name}: {key} request {req[key]} != limit {lim[key]}")
    if whole_cpu and not re.fullmatch(r"\d+", str(req.get("cpu", ""))):
        problems.append(f"{name}: cpu {req.get('cpu')!r} is not a whole number of CPUs")
    for key in set(req) | set(lim):
        if key.startswith("hugepages-") and str(req.get(key)) != str(lim.get(key)):
            problems.append(f"{name}: {key} request != limit")


def validate_config(binary, text, label, empty_root, problems):
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
        f.write(text)
        f.flush()
        # check-host against an empty root fails its host checks but prints its JSON
        # report only when the config loaded; a config error is a message on stderr.
        r = subprocess.run(
            [binary, "check-host", "--config", f.name, "--json", "--sysfs-root", empty_root],
            capture_output=True,
            text=True,
            timeout=60,
        )
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        problems.append(f"{label}: vrouter-dp refuses the config: {r.stderr.strip() or r.stdout.strip()}")
        return
    verdicts = [c.get("verdict") for c in report.get("checks", []) if c.get("name") == "config"]
    if verdicts not in (["ok"], ["warn"]):
        problems.append(f"{label}: vrouter-dp's config check says {verdicts}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--vrouter-dp", dest="binary")
    ap.add_argument("--empty-root")
    args = ap.parse_args()

    docs = [d for d in yaml.safe_load_all(Path(args.rendered).read_text()) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    problems = []

    ds_list = by_kind.get("DaemonSet", [])
    if len(ds_list) != 1:
        print(f"expected one DaemonSet, found {len(ds_list)}")
        return 1
    ds = ds_list[0]
    ns = ds["metadata"].get("namespace")
    spec = ds["spec"]
    pod = spec["template"]["spec"]
    containers = {c["name"]: c for c in pod.get("containers", [])}
    inits = {c["name"]: c for c in pod.get("initContainers", [])}
    dp = containers.get("vrouter-dp")
    if dp is None:
        print("no vrouter-dp container")
        return 1

    # Scheduling and update strategy.
    if pod.get("nodeSelector", {}).get(NODE_LABEL) != "true":
        problems.append(f"nodeSelector lacks {NODE_LABEL}: \"true\"")
    if pod.get("hostNetwork") is not True:
        problems.append("hostNetwork is not true")
    if pod.get("hostPID", False):
        problems.append("hostPID is set")
    if pod.get("priorityClassName") != "system-node-critical":
        problems.append("priorityClassName is not system-node-critical")
    us = spec.get("updateStrategy", {})
    if us.get("type") != "RollingUpdate" or us.get("rollingUpdate", {}).get("maxUnavailable") != 1:
        problems.append("updateStrategy is not RollingUpdate with maxUnavailable 1")
    pdbs = [p for p in by_kind.get("PodDisruptionBudget", []) if p["metadata"].get("namespace") == ns]
    sel = spec["selector"]["matchLabels"]
    if not any(p["spec"].get("selector", {}).get("matchLabels") == sel for p in pdbs):
        problems.append("no PodDisruptionBudget selects the DaemonSet's pods")
    if any(k in by_kind for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")):
        problems.append("RBAC objects present, but the data plane needs no API access")

    # QoS: every container and init container Guaranteed-shaped; whole CPUs for the
    # data plane.
    for name, c in list(containers.items()) + [(f"init {n}", c) for n, c in inits.items()]:
        check_resources(name, c.get("resources", {}), problems, whole_cpu=(name == "vrouter-dp"))

    # The check-host init container prepares the host for the same config.
    ch = inits.get("check-host")
    if ch is None:
        problems.append("no check-host init container")
    else:
        a = ch.get("args", [])
        if a[:1] != ["check-host"] or "--apply" not in a or "--config" not in a:
            problems.append(f"check-host init container args {a}")
        elif a[a.index("--config") + 1] != dp["args"][dp["args"].index("--config") + 1]:
            problems.append("check-host and the data plane read different configs")

    # Volumes: every mount has a volume, the host paths the data plane needs are there.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    for cname, c in list(containers.items()) + list(inits.items()):
        for m in c.get("volumeMounts", []):
            if m["name"] not in vols:
                problems.append(f"{cname}: mount {m['mountPath']} has no volume {m['name']}")
    mounts = {m["mountPath"]: m for m in dp.get("volumeMounts", [])}
    for path in ("/dev/hugepages", "/etc/vrouter", "/var/run/vrouter", "/var/run/netns", "/sys/bus/pci", "/sys/devices"):
        if path not in mounts:
            problems.append(f"vrouter-dp container does not mount {path}")
    if mounts.get("/var/run/netns", {}).get("mountPropagation") not in ("HostToContainer", "Bidirectional"):
        problems.append("/var/run/netns is mounted without HostToContainer propagation")
    hp = vols.get(mounts.get("/dev/hugepages", {}).get("name"), {})
    if not (hp.get("emptyDir", {}).get("medium", "").startswith("HugePages") or "hostPath" in hp):
        problems.append("/dev/hugepages is neither a HugePages emptyDir nor the host's mount")

    # ConfigMaps: every one the pod uses is rendered; the config it reads is one of them.
    cms = {(c["metadata"]["name"], c["metadata"].get("namespace")): c for c in by_kind.get("ConfigMap", [])}
    configs = {}
    for v in vols.values():
        if "configMap" in v:
            key = (v["configMap"]["name"], ns)
            if key not in cms:
                problems.append(f"volume {v['name']}: ConfigMap {key[0]} is not in the render")
                continue
            mount = next(
                (m["mountPath"] for m in dp.get("volumeMounts", []) if m["name"] == v["name"]), None
            )
            for fname, text in cms[key].get("data", {}).items():
                if mount:
                    configs[f"{mount}/{fname}"] = text
    cfg_arg = dp["args"][dp["args"].index("--config") + 1]
    # A per-node path ($(NODE_NAME)) matches every file of that directory.
    pattern = re.escape(cfg_arg).replace(re.escape("$(NODE_NAME)"), "[^/]+")
    used = {p: t for p, t in configs.items() if re.fullmatch(pattern, p)}
    if not used:
        problems.append(f"the data plane reads {cfg_arg}, which no rendered ConfigMap provides")
    if "$(NODE_NAME)" in cfg_arg and not any(
        e.get("name") == "NODE_NAME" for e in dp.get("env", [])
    ):
        problems.append("the config path uses $(NODE_NAME) but the container has no NODE_NAME")

    res = dp.get("resources", {}).get("limits", {})
    for path, text in sorted(used.items()):
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            problems.append(f"{path}: not TOML: {e}")
            continue
        mem = cfg.get("memory", {})
        size = mem.get("hugepage_size", "2M")
        want = PAGE_RESOURCE[size]
        others = [k for k in res if k.startswith("hugepages-") and k != want]
        if mem.get("hugepages", True):
            if want not in res:
                problems.append(f"{path}: hugepage_size {size} but the container has no {want} limit")
            elif quantity_mib(res[want]) < sum(mem.get("socket_mem_mb", [1024])):
                problems.append(
                    f"{path}: {want} limit {res[want]} < socket_mem_mb {mem.get('socket_mem_mb')}"
                )
            if others:
                problems.append(f"{path}: {size} pages but the container also asks for {others}")
        eal = cfg.get("eal", {})
        if eal.get("huge_dir") and eal["huge_dir"] not in mounts:
            problems.append(f"{path}: eal.huge_dir {eal['huge_dir']} is not mounted")
        cores = cfg.get("cores", {})
        lcores = len(cores.get("workers", [])) + 1
        cpu = dp.get("resources", {}).get("requests", {}).get("cpu", "0")
        if str(cpu).isdigit() and int(cpu) < lcores:
            problems.append(f"{path}: {lcores} lcores but only {cpu} CPUs")
        flow_mib = cfg.get("flows", {}).get("capacity", 1 << 20) * 120 / (1 << 20)
        mem = dp.get("resources", {}).get("limits", {}).get("memory")
        if mem and quantity_mib(mem) <= flow_mib:
            problems.append(f"{path}: memory limit {mem} cannot hold the flow table ({flow_mib:.0f} MiB)")
        sock = cfg.get("control", {}).get("socket", "/var/run/vrouter/dp.sock")
        if not cfg.get("control", {}).get("enabled", True):
            problems.append(f"{path}: control API disabled, the probes cannot work")
        if not cfg.get("interfaces"):
            # Without interfaces the daemon cross-connects its ports and serves no API.
            problems.append(f"{path}: no [[interfaces]]: no control API, the probes cannot work")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            cmd = dp.get(probe, {}).get("exec", {}).get("command", [])
            if cmd[:1] != ["vrouterctl"] or "info" not in cmd:
                problems.append(f"{probe} is not `vrouterctl ... info`: {cmd}")
            elif "--socket" not in cmd or cmd[cmd.index("--socket") + 1] != sock:
                problems.append(f"{probe} does not use the config's socket {sock}: {cmd}")
        if not str(Path(sock).parent).startswith("/var/run/vrouter"):
            problems.append(f"{path}: control socket {sock} is outside the mounted /var/run/vrouter")
        if args.binary:
            validate_config(args.binary, text, path, args.empty_root or "/nonexistent", problems)

    for p in problems:
        print(p)
    print(f"{args.rendered}: {len(used)} config(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
