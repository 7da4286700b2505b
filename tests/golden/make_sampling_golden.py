#!/usr/bin/env python3
"""Golden distributions for engine/sampling (chai_sampling_golden_test).

An independent, deliberately plain numpy implementation of the sampling
pipeline: penalties -> temperature -> top-k -> top-p -> min-p, each step on the
full vocabulary in float64 with a full stable sort, following Hugging Face's
logits warpers and vLLM's apply_penalties:

  repetition (prompt + output tokens): l = l / r if l > 0 else l * r
  frequency / presence (output tokens): l -= f * count + p * (count > 0)
  top-k: keep the k best by (logit desc, id asc)
  top-p: keep token j iff the mass ranked strictly above it is < top_p
  min-p: keep tokens whose probability >= min_p * max probability
  temperature 0: all mass on the argmax (lowest id on ties)

Logits are stored as short decimals (4 places); both sides use the float32
nearest to each decimal's double, so both see identical inputs. The script refuses
cases where a top-p or min-p decision lies within 1e-5 of its threshold, so
float32-vs-float64 rounding in the C++ code cannot flip a token in or out.

Run:  python3 tests/golden/make_sampling_golden.py
Writes tests/golden/sampling/sampling_golden.json.
"""

import json
import os

import numpy as np

MARGIN = 1e-5


def penalize(logits, prompt, output, rep, presence, frequency):
    l = logits.astype(np.float64).copy()
    seen = set(prompt) | set(output)
    counts = {}
    for t in output:
        counts[t] = counts.get(t, 0) + 1
    for t in seen:
        if rep != 1.0:
            l[t] = l[t] / rep if l[t] > 0 else l[t] * rep
    for t, c in counts.items():
        l[t] -= frequency * c + presence
    return l


def rank(l):
    # Descending logit, ascending id on ties: stable sort of -l over ids 0..V-1.
    return np.argsort(-l, kind="stable")


def distribution(l, temperature, top_k, top_p, min_p):
    v = len(l)
    if temperature == 0.0:
        best = int(rank(l)[0])
        return {best: 1.0}
    order = rank(l)
    keep = np.zeros(v, dtype=bool)
    keep[order] = True
    if 0 < top_k < v:
        keep[:] = False
        keep[order[:top_k]] = True
    z = l / temperature
    p = np.where(keep, np.exp(z - z.max()), 0.0)
    p /= p.sum()
    if top_p < 1.0:
        mass_above = 0.0
        for t in order:
            if not keep[t]:
                continue
            if mass_above >= top_p:
                keep[t] = False
            else:
                assert abs(mass_above - top_p) > MARGIN, "top_p boundary too close"
            mass_above += p[t]
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    if min_p > 0.0:
        pmax = p.max()
        ratio = p / pmax
        close = keep & (np.abs(ratio - min_p) < MARGIN)
        assert not close.any(), "min_p boundary too close"
        keep &= ratio >= min_p
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    return {int(t): float(p[t]) for t in range(v) if keep[t] and p[t] > 0.0}


def g(x, digits=12):
    return float(f"{x:.{digits}g}")


def make_case(name, logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
              repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
              prompt=(), output=()):
    decimals = [float(x) for x in np.round(np.asarray(logits, dtype=np.float64), 4)]
    logits = np.asarray(decimals, dtype=np.float32)
    # Parameters are float32 in C++; use the same values here.
    f = lambda x: float(np.float32(x))
    temperature, top_p, min_p = f(temperature), f(top_p), f(min_p)
    rep, pres, freq = f(repetition_penalty), f(presence_penalty), f(frequency_penalty)
    pen = penalize(logits, list(prompt), list(output), rep, pres, freq)
    dist = distribution(pen, temperature, top_k, top_p, min_p)
    case = {
        "name": name,
        "params": {
            "temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
            "repetition_penalty": rep, "presence_penalty": pres,
            "frequency_penalty": freq,
        },
        "prompt": [int(t) for t in prompt],
        "output": [int(t) for t in output],
        "logits": decimals,
        "distribution": [[t, g(dist[t])] for t in sorted(dist)],
    }
    if rep != 1.0 or pres != 0.0 or freq != 0.0:
        case["penalized_logits"] = [g(x, 10) for x in pen]
    return case


def main():
    rng = np.random.default_rng(20240611)
    small = rng.normal(0.0, 2.0, size=64)
    mixed = rng.normal(0.0, 3.0, size=96)  # many positive and negative logits
    flat = rng.normal(0.0, 0.3, size=2048)  # big nucleus: top-p sorts in rounds
    ties = np.array([1.0, 3.0, 2.0, 3.0, 0.5, 3.0, 2.0, -1.0, 3.0, 0.0])
    prompt = [3, 7, 7, 11, 50, 90]
    output = [7, 11, 11, 11, 20, 21, 21, 63, 3]

    cases = [
        make_case("plain", small),
        make_case("temperature", small, temperature=0.5),
        make_case("top_k", small, temperature=0.7, top_k=10),
        make_case("top_p", small, temperature=1.3, top_p=0.8),
        make_case("min_p", small, min_p=0.1),
        make_case("combined", small, temperature=0.9, top_k=20, top_p=0.9, min_p=0.05),
        make_case("ties_top_k", ties, top_k=3),
        make_case("ties_top_p", ties, top_p=0.4),
        make_case("greedy_ties", ties, temperature=0.0),
        make_case("penalties", mixed, repetition_penalty=1.3, presence_penalty=0.5,
                  frequency_penalty=0.4, prompt=prompt, output=output),
        make_case("penalties_negative", mixed, repetition_penalty=0.8,
                  presence_penalty=-0.7, frequency_penalty=-0.3, prompt=prompt,
                  output=output),
        make_case("penalties_filtered", mixed, temperature=0.8, top_p=0.9,
                  repetition_penalty=1.2, frequency_penalty=-0.5, prompt=prompt,
                  output=output),
        make_case("penalties_greedy", mixed, temperature=0.0, repetition_penalty=2.0,
                  presence_penalty=1.5, frequency_penalty=1.0, prompt=prompt, output=output),
        make_case("large_top_p", flat, top_p=0.9),
        make_case("large_top_p_min_p", flat, temperature=0.6, top_p=0.95, min_p=0.4),
        make_case("large_top_k_top_p", flat, temperature=1.5, top_k=700, top_p=0.7),
    ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sampling",
                       "sampling_golden.json")
    with open(out, "w") as fh:
        json.dump({"generator": "tests/golden/make_sampling_golden.py", "cases": cases}, fh)
        fh.write("\n")
    print(f"wrote {out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
