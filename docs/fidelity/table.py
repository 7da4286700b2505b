#!/usr/bin/env python3
"""Prints the fidelity table of docs/FIDELITY.md from `chai eval --json`
outputs (docs/fidelity/runs/*.json: one run per task with a CHAI config,
which reports plain attention and CHAI over the same batches)."""
import glob
import json
import os
import sys

ORDER = ["piqa", "arc-easy", "arc-challenge", "boolq", "hellaswag", "wikitext"]
NAMES = {"piqa": "PIQA", "arc-easy": "ARC-Easy", "arc-challenge": "ARC-Challenge",
         "boolq": "BoolQ", "hellaswag": "HellaSwag (first 2000)", "wikitext": "WikiText-2 (ppl)"}


def pm(v, e):
    return f"{v:.4f} +/- {e:.4f}"


def main(folder):
    runs = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        d = json.load(open(path))
        runs[d["task"]] = d
    print("| task | n | plain acc | CHAI acc | delta (points) | plain acc_norm | CHAI acc_norm "
          "| delta (points) | mean KL | top-1 agreement |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    deltas = []
    for task in ORDER:
        if task not in runs:
            print(f"| {NAMES[task]} | not run yet | | | | | | | | |")
            continue
        d = runs[task]
        kl = d["kl_vs_plain"]
        if task == "wikitext":
            p, c = d["chai"]["plain"], d
            print(f"| {NAMES[task]} | {d['n_tokens']} tokens | {pm(p['ppl'], p['ppl_stderr'])} | "
                  f"{pm(c['ppl'], c['ppl_stderr'])} | | | | | {kl['mean_kl']:.4f} | "
                  f"{kl['top1_agreement']:.4f} |")
            continue
        p, c = d["chai"]["plain"], d
        da, dn = 100 * (c["acc"] - p["acc"]), 100 * (c["acc_norm"] - p["acc_norm"])
        deltas.append(da)
        print(f"| {NAMES[task]} | {d['n']} | {pm(p['acc'], p['acc_stderr'])} | "
              f"{pm(c['acc'], c['acc_stderr'])} | {da:+.2f} | "
              f"{pm(p['acc_norm'], p['acc_norm_stderr'])} | "
              f"{pm(c['acc_norm'], c['acc_norm_stderr'])} | {dn:+.2f} | {kl['mean_kl']:.4f} | "
              f"{kl['top1_agreement']:.4f} |")
    if deltas:
        print(f"\nacc change over {len(deltas)} tasks: mean {sum(deltas) / len(deltas):+.2f} "
              f"points, worst {min(deltas):+.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "runs"))
