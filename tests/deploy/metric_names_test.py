#!/usr/bin/env python3
"""Every metric the dashboard, the alert rules and the HPA use is one that
`chai serve` really exports.

Starts `chai serve` (default model, ephemeral loopback ports), scrapes
/metrics once, and checks every PromQL expression of
deploy/grafana/chai-serve-dashboard.json, deploy/prometheus/chai-alerts.yml,
deploy/k8s/prometheus-adapter-config.yaml and the metric deploy/k8s/hpa.yaml
asks for: each metric name is exported (a histogram's _bucket/_sum/_count
count for it; `up` is made by Prometheus itself), and each label they match
or group by is on one of the metrics they use (or is a target label).
Also: the dashboard is well-formed and covers what issue 6 asks for, and
every dashboard query parses (`promtool check rules` on a rule file made of
them, Grafana variables substituted).

Exits 77 (skip) when PyYAML or promtool is missing, unless CI=true.
"""
import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import promql  # noqa: E402

# Labels Prometheus attaches to every target, or histogram buckets carry.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "le"}
# Series Prometheus makes itself for each target.
PROMETHEUS_MADE = {"up"}
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$job": "chai-serve",
                "$instance": ".*", "${datasource}": "prometheus"}



def scrape_chai(chai, model):
    proc = subprocess.Popen(
        [chai, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0",
         "--metrics-port", "0", "--threads", "1", "--max-model-len", "256",
         "--kv-cache-bytes", "80000000", "--drain-grace", "0s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        buf = b""
        deadline = time.time() + 90
        fd = proc.stdout.fileno()
        while time.time() < deadline and b"serving on " not in buf:
            if select.select([fd], [], [], 0.5)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        metrics = None
        for line in buf.decode().splitlines():
            if line.startswith("metrics on "):
                metrics = line[len("metrics on "):].strip()
        if metrics is None or b"serving on " not in buf:
            raise RuntimeError("chai serve did not start: " + proc.stderr.read1().decode())
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as r:
            return r.read().decode()
    finally:
        proc.kill()
        proc.wait()


def exported_names(samples, types):
    names = set(samples)
    for family, kind in types.items():
        names.add(family)
        if kind == "histogram":
            names.update({family + "_bucket", family + "_sum", family + "_count"})
    return names


def check_exprs(where_exprs, names, samples):
    """Problems with [(where, expr)]: unknown metrics or labels."""
    problems = []
    for where, expr in where_exprs:
        used = promql.metric_names(expr)
        if not used:
            problems.append(f"{where}: no metric found in {expr!r}")
        for name in sorted(used - names - PROMETHEUS_MADE):
            problems.append(f"{where}: metric {name} is not exported by chai serve")
        have = set(TARGET_LABELS)
        for name in used:
            have |= samples.get(name, set())
        for label in sorted(promql.label_names(expr) - have):
            problems.append(f"{where}: label {label} is on none of {sorted(used)}")
    return problems


def substitute(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chai", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--pytools", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.pytools)
    try:
        import yaml
    except ImportError:
        testlib.skip_or_fail(f"PyYAML not found (deploy/setup.sh installs it into {args.pytools})")
    promtool = shutil.which("promtool")
    if not promtool:
        testlib.skip_or_fail("promtool not found (Debian package prometheus)")
    src = args.source_dir
    model = os.path.join(src, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        print(f"FAIL: default model missing at {model}: run deploy/setup.sh")
        return 1

    checks = testlib.Checks()
    check, failures = checks.check, checks.failures

    # The extractor itself, on known answers (it must not pass by finding
    # nothing).
    e = ('histogram_quantile(0.99, sum by (job, le) (rate(foo_seconds_bucket{job="x",'
         'reason=~"a|b"}[5m]))) > 1e-3 and on (instance) bar_total offset 5m')
    check("promql helper finds metric names",
          promql.metric_names(e) == {"foo_seconds_bucket", "bar_total"}, promql.metric_names(e))
    check("promql helper finds label names",
          promql.label_names(e) == {"job", "le", "reason", "instance"}, promql.label_names(e))

    samples, types = promql.parse_exposition(scrape_chai(args.chai, model))
    names = exported_names(samples, types)
    check("chai serve exports chai_ metrics", len([n for n in names if n.startswith("chai_")]) > 20,
          sorted(names))
    # A name the daemon does not export must be reported (the check can fail).
    check("an unknown metric is reported",
          check_exprs([("probe", "rate(chai_not_a_metric_total[5m])")], names, samples) != [])

    # Dashboard.
    with open(os.path.join(src, "deploy/grafana/chai-serve-dashboard.json")) as f:
        dash = json.load(f)
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    check("dashboard: panel ids are unique", len(ids) == len(set(ids)), ids)
    layout_ok = all(0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
                    and p["gridPos"]["h"] > 0 for p in dash["panels"])
    check("dashboard: every panel fits the 24-column grid", layout_ok)
    variables = {v["name"] for v in dash["templating"]["list"]}
    check("dashboard: variables datasource, job, instance are defined",
          {"datasource", "job", "instance"} <= variables, variables)
    dash_exprs = []
    for p in panels:
        targets = p.get("targets", [])
        refs = [t["refId"] for t in targets]
        if not targets or len(refs) != len(set(refs)):
            failures.append(f"panel {p['title']!r}: no targets or duplicate refIds")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            failures.append(f"panel {p['title']!r}: not on the ${{datasource}} variable")
        for t in targets:
            dash_exprs.append((f"dashboard panel {p['title']!r} {t['refId']}", t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            inner = v["definition"].replace("label_values(", "", 1).rsplit(",", 1)[0]
            dash_exprs.append((f"dashboard variable {v['name']}", inner))
    problems = check_exprs(dash_exprs, names, samples)
    check(f"dashboard: all {len(dash_exprs)} queries use exported metrics and labels",
          not problems, "\n  " + "\n  ".join(problems))
    used = set()
    for _, expr in dash_exprs:
        used |= promql.metric_names(expr)
    required = {
        "chai_time_to_first_token_seconds_bucket", "chai_inter_token_latency_seconds_bucket",
        "chai_e2e_request_latency_seconds_bucket", "chai_generation_tokens_total",
        "chai_num_requests_waiting", "chai_num_requests_running", "chai_kv_cache_usage_ratio",
        "chai_kv_cache_saved_ratio", "chai_kv_cache_bytes_saved", "chai_num_preemptions_total",
        "chai_request_failure_total",
    }
    check("dashboard: covers TTFT, ITL, e2e, tokens/s, queue, running, KV usage, CHAI "
          "savings, preemptions, errors", required <= used, sorted(required - used))
    for hist in ("chai_time_to_first_token_seconds", "chai_inter_token_latency_seconds",
                 "chai_e2e_request_latency_seconds"):
        qs = {expr.split(",")[0].replace("histogram_quantile(", "").strip()
              for _, expr in dash_exprs if f"{hist}_bucket" in expr}
        check(f"dashboard: {hist} p50 and p99", {"0.5", "0.99"} <= qs, qs)

    # Every dashboard query parses: promtool reads them as recording rules.
    with tempfile.TemporaryDirectory() as tmp:
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query{i}", "expr": substitute(expr)}
            for i, (_, expr) in enumerate(dash_exprs)]}]}
        path = os.path.join(tmp, "dashboard-rules.yml")
        with open(path, "w") as f:
            yaml.safe_dump(rules, f)
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        check("dashboard: every query is valid PromQL (promtool check rules)", r.returncode == 0,
              r.stdout + r.stderr)

    # Alert rules.
    with open(os.path.join(src, "deploy/prometheus/chai-alerts.yml")) as f:
        alerts = yaml.safe_load(f)
    alert_exprs = [(f"alert {r['alert']}", r["expr"]) for g in alerts["groups"]
                   for r in g["rules"]]
    problems = check_exprs(alert_exprs, names, samples)
    check(f"alerts: all {len(alert_exprs)} rules use exported metrics and labels", not problems,
          "\n  " + "\n  ".join(problems))

    # HPA through prometheus-adapter.
    with open(os.path.join(src, "deploy/k8s/hpa.yaml")) as f:
        hpa = yaml.safe_load(f)
    with open(os.path.join(src, "deploy/k8s/prometheus-adapter-config.yaml")) as f:
        adapter_cm = yaml.safe_load(f)
    adapter = yaml.safe_load(adapter_cm["data"]["config.yaml"])
    served = {}
    for rule in adapter["rules"]:
        series = promql.metric_names(rule["seriesQuery"])
        problems = check_exprs([("adapter seriesQuery", rule["seriesQuery"])], names, samples)
        check(f"adapter rule {rule['name']['as']}: its series is exported", not problems, problems)
        check(f"adapter rule {rule['name']['as']}: metricsQuery reads the series",
              "<<.Series>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"],
              rule["metricsQuery"])
        served[rule["name"]["as"]] = series
    for m in hpa["spec"]["metrics"]:
        want = m["pods"]["metric"]["name"]
        check(f"HPA metric {want}: served by a prometheus-adapter rule", want in served,
              sorted(served))
        check(f"HPA metric {want}: is the waiting-requests gauge chai serve exports",
              served.get(want) == {"chai_num_requests_waiting"}
              and types.get("chai_num_requests_waiting") == "gauge", served.get(want))

    return checks.report()


if __name__ == "__main__":
    sys.exit(main())
