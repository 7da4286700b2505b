#!/usr/bin/env python3
"""Smoke test of chai_engine_bench: runs every measurement once on the tiny
test model (tests/golden/tiny_llama) and checks that the JSON report holds
each one, finite and in range. Speed itself is never asserted here (it is
measured in docs/PERFORMANCE.md); what breaks this test is a flag that stops
working, a crash, or a report missing or mangling a field.
"""
import argparse
import json
import math
import subprocess
import sys


def positive(d, *path):
    v = d
    for k in path:
        if k not in v:
            raise AssertionError(f"missing {'.'.join(path)}")
        v = v[k]
    if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise AssertionError(f"{'.'.join(path)} = {v!r}, want a positive number")
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    cmd = [a.bench, "--model", a.model, "--threads", "2", "--batches", "1,2",
           "--prompt-len", "8", "--op-times", "--weights-only", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(r.stdout, r.stderr, sep="\n")
        raise AssertionError(f"exit {r.returncode}")
    d = json.loads(r.stdout)
    for k in ("bandwidth_gbps", "decode_weight_bytes", "prefill_512_tokens_per_s",
              "decode_batch1_roofline_tokens_per_s", "decode_batch1_share_of_roofline"):
        positive(d, k)
    for b in ("1", "2"):
        positive(d, "decode", b, "tokens_per_s")
        positive(d, "op_times_ms_per_step", b, "MatMul")
        positive(d, "op_times_ms_per_step", b, "step")
    assert d["decode"]["1"]["ratio_to_batch1"] == 1.0, d["decode"]["1"]
    step_ms = positive(d, "weights_only_batch1", "step_ms")
    share = positive(d, "weights_only_batch1", "share_of_roofline")
    # The share is the roofline's step time over the measured one: the two
    # fields must agree with each other and with the roofline reported.
    roofline_ms = 1e3 / d["decode_batch1_roofline_tokens_per_s"]
    assert abs(share - roofline_ms / step_ms) <= 1e-6 * share, (share, roofline_ms, step_ms)
    # A bad flag is an error, not a silent default.
    bad = subprocess.run([a.bench, "--weights-only-typo"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr, bad
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
