#!/usr/bin/env python3
"""Prints chai_cuda_bench against the PyTorch baseline from the same GPU run.

  python3 tests/gpu/compare_baseline.py OUT/bench.json OUT/torch.json

For each (batch, context) both measured: our decode tokens/s (CUDA graph
replay, as ModelRunner decodes) with CHAI off and on, ours issued op by op
(CHAI off), PyTorch's eager and CUDA-graph tokens/s, and the ratio of ours
(CHAI off) to PyTorch's faster mode; then the TTFT of each. Ratios > 1: ours
is faster.
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    ours = json.load(open(sys.argv[1]))
    torch = json.load(open(sys.argv[2]))
    if ours.get("shape") != {k: torch["shape"][k] for k in ours.get("shape", {})}:
        print("compare_baseline: the two runs used different shapes; no ratios", file=sys.stderr)
        return 1
    mine, issued = {}, {}
    for r in ours["decode"]:
        if "tokens_per_s" in r:
            mine[(r["batch"], r["context"], r["chai"])] = r["tokens_per_s"]
            if "eager_step_ms" in r:
                issued[(r["batch"], r["context"])] = r["batch"] / r["eager_step_ms"] * 1e3
    base = {}
    for r in torch["decode"]:
        if "tokens_per_s" in r:
            base[(r["batch"], r["context"], r["mode"])] = r["tokens_per_s"]
    print(f"{'batch':<6} {'ctx':<6} {'ours':>9} {'ours+CHAI':>10} {'ours issued':>12} "
          f"{'torch':>9} {'torch+graph':>12} {'ours/best torch':>16}")
    for (b, c, chai), tps in sorted(mine.items()):
        if chai:
            continue
        eager, graph = base.get((b, c, "eager")), base.get((b, c, "graph"))
        best = max(x for x in (eager, graph, 0.0) if x is not None)
        on = mine.get((b, c, True))
        fmt = lambda x: f"{x:.1f}" if x else "-"
        ratio = f"{tps / best:.2f}x" if best else "-"
        print(f"{b:<6} {c:<6} {fmt(tps):>9} {fmt(on):>10} {fmt(issued.get((b, c))):>12} "
              f"{fmt(eager):>9} {fmt(graph):>12} {ratio:>16}")
    tkey = [k for k in ours if k.startswith("ttft_")]
    bkey = [k for k in torch if k.startswith("ttft_")]
    if tkey and bkey and tkey[0] == bkey[0] and torch[bkey[0]]:
        t = torch[bkey[0]]["ms"]
        plain = ours[tkey[0]].get("plain", {}).get("ms")
        chai = ours[tkey[0]].get("chai", {}).get("ms")
        line = f"{tkey[0]}: torch {t:.1f} ms"
        if plain:
            line += f", ours {plain:.1f} ms ({t / plain:.2f}x)"
        if chai:
            line += f", ours+CHAI {chai:.1f} ms ({t / chai:.2f}x)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
