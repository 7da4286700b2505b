#!/usr/bin/env python3
"""Saving-versus-KL trade-off of CHAI configs on the default model.

Reads `chai eval --task wikitext --limit 6 --json` outputs from
docs/fidelity/runs/wiki6/NAME.json and the configs they ran (NAME resolved
to docs/fidelity/configs/NAME.json or docs/fidelity/SmolLM2-135M-Instruct.NAME.json;
l25-29-6-2 was the shipped config until session 5, klgate-0.1 is since), then
prints a markdown table sorted by K saving and writes
docs/fidelity/tradeoff.svg: K cache saved (x) against mean KL from plain
attention (y, log scale), the configs on the lower-right frontier joined.

    python3 docs/fidelity/tradeoff.py
"""
import glob
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def config_path(name):
    for p in (os.path.join(HERE, "configs", name + ".json"),
              os.path.join(HERE, "SmolLM2-135M-Instruct." + name + ".json")):
        if os.path.exists(p):
            return p
    raise FileNotFoundError(name)


def k_saved(config):
    m = config["model"]
    kept = sum(l["k_heads"] for l in config["layers"])
    return 1.0 - kept / (m["n_layers"] * m["n_kv_heads"])


def score_rows(config):
    m = config["model"]
    return sum(l["clusters"] for l in config["layers"]) / (m["n_layers"] * m["n_heads"])


def describe(config):
    """'25-29 6/2' style: runs of consecutive layers with the same reduced plan."""
    m = config["model"]
    runs, prev = [], None
    for l in config["layers"]:
        key = (l["clusters"], l["k_heads"])
        if key == (m["n_heads"], m["n_kv_heads"]):
            prev = None
            continue
        if prev == key and runs[-1][1] == l["layer"] - 1:
            runs[-1][1] = l["layer"]
        else:
            runs.append([l["layer"], l["layer"], key])
        prev = key
    return ", ".join(f"{a}-{b} {k[0]}/{k[1]}" if a != b else f"{a} {k[0]}/{k[1]}"
                     for a, b, k in runs) or "plain"


def load():
    rows = []
    for path in sorted(glob.glob(os.path.join(HERE, "runs", "wiki6", "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        d = json.load(open(path))
        c = json.load(open(config_path(name)))
        rows.append({"name": name, "plan": describe(c), "saved": k_saved(c),
                     "rows": score_rows(c), "ppl": d["ppl"], "ppl_se": d["ppl_stderr"],
                     "plain_ppl": d["chai"]["plain"]["ppl"],
                     "kl": d["kl_vs_plain"]["mean_kl"], "top1": d["kl_vs_plain"]["top1_agreement"]})
    return sorted(rows, key=lambda r: (r["saved"], r["kl"]))


def frontier(rows):
    """Configs no other config beats on both saving (higher) and KL (lower)."""
    return [r for r in rows
            if not any(o["saved"] >= r["saved"] and o["kl"] < r["kl"] and o is not r for o in rows)]


def svg(rows, best):
    w, h, l, r, t, b = 640, 420, 70, 20, 20, 50
    kmin = min(x["kl"] for x in rows) / 1.5
    kmax = max(x["kl"] for x in rows) * 1.5
    smax = max(0.05, max(x["saved"] for x in rows) * 1.1)

    def px(s):
        return l + (w - l - r) * s / smax

    def py(kl):
        return t + (h - t - b) * (math.log(kmax) - math.log(kl)) / (math.log(kmax) - math.log(kmin))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
           f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="black"/>']
    step = 0.05 if smax <= 0.4 else 0.1
    s = 0.0
    while s <= smax + 1e-9:
        out.append(f'<text x="{px(s):.1f}" y="{h - b + 15}" text-anchor="middle">{100 * s:.0f}%</text>')
        s += step
    e = math.floor(math.log10(kmin))
    while 10 ** e <= kmax:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if kmin <= v <= kmax:
                out.append(f'<line x1="{l - 4}" y1="{py(v):.1f}" x2="{l}" y2="{py(v):.1f}" stroke="black"/>')
                out.append(f'<text x="{l - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        e += 1
    out.append(f'<text x="{(l + w - r) / 2}" y="{h - 12}" text-anchor="middle">'
               'K cache saved (fraction of the plain K cache)</text>')
    out.append(f'<text x="16" y="{(t + h - b) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(t + h - b) / 2})">mean KL from plain (nats), log scale</text>')
    pts = " ".join(f"{px(x['saved']):.1f},{py(x['kl']):.1f}" for x in best)
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    for x in rows:
        color = "#1f77b4" if x in best else "#999999"
        out.append(f'<circle cx="{px(x["saved"]):.1f}" cy="{py(x["kl"]):.1f}" r="3.5" fill="{color}"/>')
        out.append(f'<text x="{px(x["saved"]) + 6:.1f}" y="{py(x["kl"]) - 4:.1f}" '
                   f'fill="{color}">{x["name"]}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    rows = load()
    best = sorted(frontier(rows), key=lambda r: r["saved"])
    print("| config | plan (layers clusters/key heads) | K saved | score rows | ppl (CHAI) | mean KL "
          "| top-1 agreement | on the frontier |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for x in rows:
        print(f"| {x['name']} | {x['plan']} | {100 * x['saved']:.1f}% | {100 * x['rows']:.0f}% | "
              f"{x['ppl']:.2f} +/- {x['ppl_se']:.2f} | {x['kl']:.3f} | {x['top1']:.3f} | "
              f"{'yes' if x in best else ''} |")
    plain = {round(x["plain_ppl"], 6) for x in rows}
    print(f"\nplain attention ppl on these windows: {', '.join(f'{p:.4f}' for p in sorted(plain))}")
    with open(os.path.join(HERE, "tradeoff.svg"), "w") as f:
        f.write(svg(rows, best))


if __name__ == "__main__":
    main()
