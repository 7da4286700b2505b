#!/usr/bin/env python3
"""deploy/k8s/: schema validation offline, and the manifests agree with each
other and with the `chai serve` binary.

- Core kinds (Deployment, Service, PodDisruptionBudget,
  HorizontalPodAutoscaler, ConfigMap) against the Kubernetes OpenAPI schemas
  bundled in PyPI kubernetes-validate, strict (unknown fields fail), for
  Kubernetes 1.30 (gRPC probes GA since 1.27) and the newest it ships.
- The ServiceMonitor (a CRD, not in those schemas) against
  tests/deploy/schemas/servicemonitor-v1.schema.json, closed objects.
- Both validators reject a broken manifest (negative controls).
- Ports, probes and flags against `chai serve --help`; the drain timeline
  (preStop + --drain-grace + --drain-timeout fits in
  terminationGracePeriodSeconds; liveness cannot fire during it); selectors
  of the Services, PDB, HPA and ServiceMonitor select the pods; the GPU
  variant asks for nvidia.com/gpu; the plain scrape job passes
  `promtool check config`.

Exits 77 (skip) when kubernetes-validate (deploy/setup.sh puts it in
.cache/pytools) or promtool is missing, unless CI=true.
"""
import argparse
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import chai_flags  # noqa: E402

K8S_VERSIONS = ["1.30.0"]  # plus the newest the package bundles, added in main()
MARGIN_S = 5  # engine shutdown and exit after the drain



def mem_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G)?", str(q))
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3,
            "M": 10**6, "G": 10**9}
    return int(m.group(1)) * mult[m.group(2)]


def cpu_cores(q):
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chai", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--pytools", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.pytools)
    try:
        import jsonschema
        import kubernetes_validate
        import yaml
    except ImportError as e:
        testlib.skip_or_fail(f"{e.name} not found: deploy/setup.sh installs the pinned Python tools "
                     f"(deploy/requirements-tools.txt) into {args.pytools}")
    promtool = shutil.which("promtool")
    if not promtool:
        testlib.skip_or_fail("promtool not found (Debian package prometheus)")
    src = args.source_dir
    versions = K8S_VERSIONS + [kubernetes_validate.latest_version()]

    checks = testlib.Checks()
    check, failures = checks.check, checks.failures

    files = sorted(glob.glob(os.path.join(src, "deploy/k8s/**/*.yaml"), recursive=True))
    docs = []
    for path in files:
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d:
                    docs.append((os.path.relpath(path, src), d))
    kinds = sorted({d["kind"] for _, d in docs})
    print(f"{len(docs)} objects in {len(files)} files: {', '.join(kinds)}")

    def k8s_errors(doc, version):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            return None
        except kubernetes_validate.ValidationError as e:
            return str(e.message)

    with open(os.path.join(src, "tests/deploy/schemas/servicemonitor-v1.schema.json")) as f:
        sm_schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(sm_schema)
    sm_validator = jsonschema.Draft202012Validator(sm_schema)

    by_kind = {}
    for path, d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        name = f"{path}: {d['kind']}/{d['metadata']['name']}"
        if d["apiVersion"].startswith("monitoring.coreos.com/"):
            errs = [e.message for e in sm_validator.iter_errors(d)]
            check(f"{name} matches the ServiceMonitor schema", not errs, errs)
            continue
        for v in versions:
            err = k8s_errors(d, v)
            check(f"{name} valid for Kubernetes {v} (strict)", err is None, err)

    # Negative controls: the validators do reject mistakes.
    dep = by_kind["Deployment"][0]
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {"port": 1}
    check("strict validation rejects an unknown field", k8s_errors(bad, versions[0]) is not None)
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    check("validation rejects a named port in a gRPC probe (must be a number)",
          k8s_errors(bad, versions[0]) is not None)
    sm = by_kind["ServiceMonitor"][0]
    bad = copy.deepcopy(sm)
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    check("ServiceMonitor schema rejects a misspelt field", not sm_validator.is_valid(bad))
    bad = copy.deepcopy(sm)
    bad["spec"]["endpoints"][0]["interval"] = "15 seconds"
    check("ServiceMonitor schema rejects a bad duration", not sm_validator.is_valid(bad))

    # The manifests against the binary and each other.
    flags = chai_flags.serve_flags(args.chai)
    with open(os.path.join(src, "proto/chai/v1/chai.proto")) as f:
        proto = f.read()
    package = re.search(r"^package\s+([\w.]+);", proto, re.M).group(1)
    service = re.search(r"^service\s+(\w+)", proto, re.M).group(1)
    service_name = f"{package}.{service}"
    services = by_kind["Service"]
    for d in by_kind["Deployment"]:
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]
        labels = pod["metadata"]["labels"]
        check(f"{name}: selector matches its pod labels",
              d["spec"]["selector"]["matchLabels"].items() <= labels.items())
        c = pod["spec"]["containers"][0]
        argv = chai_flags.args_to_flags(c["args"])
        unknown = sorted(set(argv) - set(flags))
        check(f"{name}: every arg is a `chai serve` flag", not unknown, unknown)
        value = {k: argv.get(k, flags[k]) for k in flags}
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        check(f"{name}: container port grpc is --port ({value['port']})",
              ports.get("grpc") == int(value["port"]), ports)
        check(f"{name}: container port metrics is --metrics-port ({value['metrics-port']})",
              ports.get("metrics") == int(value["metrics-port"]), ports)
        check(f"{name}: serves on all interfaces", value["host"] in ("0.0.0.0", "::"), value["host"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe, {})
            check(f"{name}: {probe} is a native gRPC probe on the grpc port",
                  p.get("grpc", {}).get("port") == ports.get("grpc"), p)
        check(f"{name}: readiness asks for {service_name}, the name chai serve sets NOT_SERVING "
              f"on drain", c["readinessProbe"]["grpc"].get("service") == service_name,
              c["readinessProbe"])
        # Drain timeline.
        pre = c["lifecycle"]["preStop"]["exec"]["command"]
        check(f"{name}: preStop is `sleep N`", pre[0] == "sleep" and pre[1].isdigit(), pre)
        pre_s = float(pre[1])
        grace = chai_flags.parse_duration_s(value["drain-grace"])
        drain = chai_flags.parse_duration_s(value["drain-timeout"])
        tgps = pod["spec"]["terminationGracePeriodSeconds"]
        need = pre_s + grace + drain + MARGIN_S
        print(f"{name}: preStop {pre_s:g}s + drain-grace {grace:g}s + drain-timeout {drain:g}s "
              f"+ {MARGIN_S}s = {need:g}s <= terminationGracePeriodSeconds {tgps}")
        check(f"{name}: terminationGracePeriodSeconds covers preStop + drain", tgps >= need,
              (tgps, need))
        check(f"{name}: the preStop delay is shorter than the readiness-driven removal needs "
              f"nothing else (preStop > 0)", pre_s > 0)
        lv = c["livenessProbe"]
        check(f"{name}: liveness cannot kill a draining pod "
              f"(failureThreshold x period > drain-grace + drain-timeout)",
              lv["failureThreshold"] * lv["periodSeconds"] > grace + drain, lv)
        st = c["startupProbe"]
        check(f"{name}: the startup probe allows at least 60 s for the model load",
              st["failureThreshold"] * st["periodSeconds"] >= 60, st)
        # Resources.
        res = c["resources"]
        threads = int(value["threads"])
        check(f"{name}: --threads is set and within the CPU request",
              0 < threads <= cpu_cores(res["requests"]["cpu"]), (threads, res))
        if value.get("kv-cache-bytes"):
            kv = int(value["kv-cache-bytes"])
            limit = mem_bytes(res["limits"]["memory"])
            gpu = "nvidia.com/gpu" in res["limits"]
            # On the CPU backend the KV cache is host memory: it and ~256 MiB
            # for weights and buffers must fit the limit.
            check(f"{name}: memory limit holds the KV cache (CPU) or the host side (GPU)",
                  gpu or limit >= kv + (256 << 20), (limit, kv))
        gpu = res.get("limits", {}).get("nvidia.com/gpu")
        if "gpu" in name:
            check(f"{name}: requests nvidia.com/gpu", gpu is not None and int(gpu) >= 1, res)
            check(f"{name}: runs the CUDA backend and image",
                  value["backend"] == "cuda" and "cuda" in c["image"], (value["backend"],
                                                                        c["image"]))
        else:
            check(f"{name}: CPU variant requests no GPU", gpu is None, res)
        # Every Service, the PDB and the ServiceMonitor's Service select it.
        for s in services:
            sel = s["spec"]["selector"]
            check(f"{name}: Service {s['metadata']['name']} selects its pods",
                  sel.items() <= labels.items(), sel)
            for p in s["spec"]["ports"]:
                check(f"Service {s['metadata']['name']} port {p['name']} targets a named "
                      f"container port", p["targetPort"] in ports, p)
        for pdb in by_kind["PodDisruptionBudget"]:
            check(f"{name}: PDB selects its pods",
                  pdb["spec"]["selector"]["matchLabels"].items() <= labels.items())
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    check("a headless Service exists for client-side balancing", len(headless) == 1)
    for hpa in by_kind["HorizontalPodAutoscaler"]:
        ref = hpa["spec"]["scaleTargetRef"]
        check("HPA targets the CPU Deployment",
              ref["kind"] == "Deployment"
              and ref["name"] in {d["metadata"]["name"] for d in by_kind["Deployment"]}, ref)
        check("HPA keeps at least 2 replicas (the PDB allows one down)",
              hpa["spec"]["minReplicas"] >= 2)
    sm_spec = sm["spec"]
    sm_services = [s for s in services
                   if sm_spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    check("ServiceMonitor selects exactly one Service (no double scrape)", len(sm_services) == 1,
          [s["metadata"]["name"] for s in sm_services])
    for ep in sm_spec["endpoints"]:
        names = {p["name"] for s in sm_services for p in s["spec"]["ports"]}
        check(f"ServiceMonitor endpoint port {ep['port']} is a port of that Service",
              ep["port"] in names, names)
    check("ServiceMonitor's job label gives job=chai-serve (the alerts select on it)",
          sm_services and sm_services[0]["metadata"]["labels"].get(sm_spec["jobLabel"])
          == "chai-serve")

    # The plain scrape job: promtool, with Kubernetes discovery swapped for a
    # static target (Debian's promtool is built without it).
    cms = {d["metadata"]["name"]: d for d in by_kind["ConfigMap"]}
    jobs = yaml.safe_load(cms["chai-serve-scrape-config"]["data"]["chai-serve-scrape.yaml"])
    check("scrape job is named chai-serve", [j["job_name"] for j in jobs] == ["chai-serve"])
    check("scrape job keeps the container port named metrics",
          any(r.get("regex") == "metrics" and r.get("action") == "keep"
              for r in jobs[0]["relabel_configs"]))
    for j in jobs:
        check("scrape job discovers pods", j.pop("kubernetes_sd_configs") == [{"role": "pod"}])
        j["static_configs"] = [{"targets": ["127.0.0.1:9090"]}]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump({"scrape_configs": jobs}, f)
        r = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True)
        check("scrape job passes promtool check config", r.returncode == 0, r.stdout + r.stderr)

    return checks.report()


if __name__ == "__main__":
    sys.exit(main())
