#!/usr/bin/env python3
"""Golden K-means inertia for engine/chai/kmeans (chai_calibration_test).

CHAI calibration runs K-means over a layer's head vectors for k = 1..H and
reads the elbow of the error curve (the paper's offline script uses sklearn
KMeans and its inertia_). The reference here is scikit-learn:

    KMeans(n_clusters=k, n_init=10, random_state=0, algorithm="lloyd").fit(X).inertia_

Our K-means uses its own seeds, so the contract is not equal labels but
"at least as good": our best-of-restarts inertia must be <= sklearn's x
(1 + 1e-6). For n <= 10 points the script also records the exact optimum
(brute force over all partitions into k non-empty sets), which no algorithm
can beat; on the "easy" sets (well separated groups) sklearn reaches it and
so must we.

Sets: blobs (3 and 4 well separated groups of heads), uniform random, softmax
rows (attention-like vectors with a group structure), exact duplicates
(inertia 0 from k = #distinct), and the 32-head shape of LLaMA-7B.
Values are float64 written with repr (exact round trip).

Run:  python3 tests/golden/make_kmeans_golden.py
Writes tests/golden/chai/calib_kmeans_golden.json.
"""
import json
import os

import numpy as np
import sklearn
from sklearn.cluster import KMeans

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "chai", "calib_kmeans_golden.json")


def partitions(n, k):
    """All labelings of n items into exactly k non-empty unlabeled blocks (restricted growth)."""
    labels = [0] * n

    def rec(i, used):
        if i == n:
            if used == k:
                yield list(labels)
            return
        if k - used > n - i:
            return
        for c in range(min(used + 1, k)):
            labels[i] = c
            yield from rec(i + 1, max(used, c + 1))

    yield from rec(0, 0)


def optimal_inertia(x, k):
    n = x.shape[0]
    best = np.inf
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    for lab in partitions(n, k):
        lab = np.array(lab)
        tot = 0.0
        for c in range(k):
            idx = np.where(lab == c)[0]
            tot += d[np.ix_(idx, idx)].sum() / (2 * len(idx))
        best = min(best, tot)
    return float(best)


def softmax_rows(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention_like(rng, heads, groups, t):
    """heads vectors of causal softmax rows (lower triangle), heads in `groups` noisy groups."""
    protos = rng.standard_normal((groups, t, t)) * 2.0
    assign = rng.permutation(np.arange(heads) % groups)
    rows = []
    for h in range(heads):
        logits = protos[assign[h]] + 0.3 * rng.standard_normal((t, t))
        feats = []
        for i in range(t):
            feats.extend(softmax_rows(logits[i, : i + 1]))
        rows.append(feats)
    return np.array(rows)


def blobs(rng, n, groups, dim, spread):
    centers = rng.standard_normal((groups, dim)) * 10.0
    assign = rng.permutation(np.arange(n) % groups)
    return centers[assign] + spread * rng.standard_normal((n, dim))


def main():
    rng = np.random.default_rng(20240308)
    sets = []

    def add(name, x, easy=False):
        n = x.shape[0]
        sk = []
        for k in range(1, n + 1):
            km = KMeans(n_clusters=k, n_init=10, random_state=0, algorithm="lloyd").fit(x)
            sk.append(float(km.inertia_))
        opt = [optimal_inertia(x, k) for k in range(1, n + 1)] if n <= 10 else None
        sets.append({"name": name, "n": int(n), "dim": int(x.shape[1]),
                     "points": [float(v) for v in x.reshape(-1)],
                     "sklearn_inertia": sk, "optimal_inertia": opt, "easy": easy})

    add("blobs_9x20_3", blobs(rng, 9, 3, 20, 0.1), easy=True)
    add("blobs_10x5_4", blobs(rng, 10, 4, 5, 0.05), easy=True)
    add("uniform_9x50", rng.uniform(size=(9, 50)))
    add("uniform_8x2", rng.uniform(size=(8, 2)))
    add("normal_10x3", rng.standard_normal((10, 3)))
    add("attention_9_t8_g3", attention_like(rng, 9, 3, 8))
    add("attention_9_t12_g9", attention_like(rng, 9, 9, 12))
    base = rng.standard_normal((3, 4))
    add("duplicates_7x4", base[[0, 1, 2, 0, 1, 0, 2]])
    add("single_point", rng.standard_normal((1, 3)))
    add("two_points", rng.standard_normal((2, 6)))
    add("uniform_32x16", rng.uniform(size=(32, 16)))
    add("attention_32_t6_g4", attention_like(rng, 32, 4, 6))

    with open(OUT, "w") as f:
        json.dump({"generator": "tests/golden/make_kmeans_golden.py",
                   "sklearn_version": sklearn.__version__, "sets": sets}, f)
        f.write("\n")
    print("wrote", OUT, len(sets), "sets")


if __name__ == "__main__":
    main()
