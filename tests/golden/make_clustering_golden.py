#!/usr/bin/env python3
"""Golden head clustering for engine/chai (chai_clustering_golden_test).

CHAI clusters the attention heads of a layer by the cosine distance between
their attention-score features, with average-linkage agglomerative clustering
cut into k clusters. The reference is scikit-learn, exactly as the CHAI paper's
code calls it:

  d = scipy.spatial.distance.pdist(features, 'cosine')
  labels = AgglomerativeClustering(n_clusters=k, metric="precomputed",
                                   linkage="average").fit(squareform(d)).labels_

(sklearn builds the tree with scipy.cluster.hierarchy.linkage(method='average')
and cuts it with _hc_cut; the scipy linkage matrix Z is stored as well so the
C++ dendrogram can be compared merge by merge.)

Feature sets (every one is written with several k):
  random_*     uniform or signed random vectors, n in {4, 9, 12, 32, 40}
  blocks_*     g groups of near-duplicate causal 5x5 softmax distributions
               (prototype logits + small noise), heads shuffled
  dups_*       groups of EXACT duplicate heads: zero distances, i.e. ties
  qk_*         features computed from random (already rotated) q/k with GQA, causal
               and not; the q/k inputs and the features are stored so the C++
               feature code is checked too

Features are float32 values (the engine's dtype) written as shortest decimals
that read back to the same float32; scipy gets the exact double of each float32,
so both sides see identical inputs. Distances and heights are full doubles. A set is flagged
"tie_sensitive" when jittering its distance matrix by 1e-9 can change some
cut's partition; on such sets only the exact-input comparison is meaningful.

Run:  python3 tests/golden/make_clustering_golden.py
Writes tests/golden/chai/clustering_golden.json.
"""

import json
import math
import zlib
import os

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist, squareform
from sklearn.cluster import AgglomerativeClustering

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chai", "clustering_golden.json")


def f32_list(a):
    """Shortest decimals that round-trip through double -> float32, which is
    how the C++ test reads them (nlohmann parses a double, we cast)."""
    out = []
    for x in np.asarray(a, dtype=np.float32).ravel():
        s = np.format_float_positional(x, unique=True, trim="-")
        assert np.float32(float(s)) == x, s
        out.append(float(s))
    return out


def sklearn_labels(dist_square, k):
    model = AgglomerativeClustering(n_clusters=k, metric="precomputed", linkage="average")
    return model.fit(dist_square).labels_


def same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    fwd, bwd = {}, {}
    for x, y in zip(a.tolist(), b.tolist()):
        if fwd.setdefault(x, y) != y or bwd.setdefault(y, x) != x:
            return False
    return True


def partition_from_z(z, n, k):
    """Union-find over the first n-k rows of Z: must equal sklearn's cut."""
    parent = list(range(2 * n - 1))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i in range(n - k):
        a, b = int(z[i, 0]), int(z[i, 1])
        parent[find(a)] = n + i
        parent[find(b)] = n + i
    return [find(i) for i in range(n)]


def causal_softmax(logits, causal=True):
    s = np.array(logits, dtype=np.float64)
    t = s.shape[-1]
    if causal:
        s = s + np.triu(np.full((t, t), -np.inf), 1)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    return p / p.sum(axis=-1, keepdims=True)


def head_features(q, k, n_heads, n_kv_heads, head_dim, causal):
    """q [T, H, D], k [T, KV, D] float32 -> [H, T*T], float64 math."""
    group = n_heads // n_kv_heads
    feats = []
    for h in range(n_heads):
        qh = q[:, h, :].astype(np.float64)
        kh = k[:, h // group, :].astype(np.float64)
        feats.append(causal_softmax(qh @ kh.T / math.sqrt(head_dim), causal).ravel())
    return np.array(feats)


def ks_for(n):
    ks = {1, 2, 3, n // 2, max(1, n // 4), n - 1, n}
    return sorted(k for k in ks if 1 <= k <= n)


def make_case(name, feats32, extra=None):
    feats = np.asarray(feats32, dtype=np.float32).astype(np.float64)
    n, dim = feats.shape
    d = pdist(feats, "cosine")
    assert np.all(np.isfinite(d))
    z = linkage(d, method="average")
    square = squareform(d)
    cuts = []
    tie_sensitive = False
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for k in ks_for(n):
        labels = sklearn_labels(square, k)
        assert same_partition(labels, partition_from_z(z, n, k)), name
        for _ in range(5):
            jitter = rng.uniform(-1e-9, 1e-9, size=d.shape)
            if not same_partition(labels, sklearn_labels(squareform(np.abs(d + jitter)), k)):
                tie_sensitive = True
        cuts.append({"k": int(k), "labels": [int(x) for x in labels]})
    case = {
        "name": name,
        "n": int(n),
        "dim": int(dim),
        "features": f32_list(feats32),
        "distance": [float(x) for x in d],
        "linkage": [[int(r[0]), int(r[1]), float(r[2]), int(r[3])] for r in z],
        "cuts": cuts,
        "tie_sensitive": tie_sensitive,
    }
    if extra:
        case.update(extra)
    return case


def random_cases(rng):
    cases = []
    for n in (4, 9, 12, 32, 40):
        for rep in range(3):
            cases.append(make_case(f"random_uniform_n{n}_{rep}", rng.random((n, 25))))
        cases.append(make_case(f"random_signed_n{n}", rng.standard_normal((n, 25))))
        cases.append(make_case(f"random_dim7_n{n}", rng.standard_normal((n, 7))))
        # Softmax rows of random causal logits: what real features look like.
        logits = rng.standard_normal((n, 5, 5)) * 2.0
        cases.append(make_case(f"random_softmax_n{n}",
                               np.array([causal_softmax(l).ravel() for l in logits])))
    return cases


def block_cases(rng):
    cases = []
    for n, groups, noise in ((9, 3, 0.05), (12, 4, 0.1), (16, 2, 0.2), (32, 4, 0.05),
                             (32, 8, 0.1), (32, 5, 0.3), (40, 6, 0.1), (32, 1, 0.1),
                             (12, 12, 0.1), (24, 3, 0.5)):
        protos = rng.standard_normal((groups, 5, 5)) * 3.0
        assign = np.concatenate([np.arange(groups), rng.integers(0, groups, n - groups)])
        rng.shuffle(assign)
        feats = [causal_softmax(protos[g] + noise * rng.standard_normal((5, 5))).ravel()
                 for g in assign]
        cases.append(make_case(f"blocks_n{n}_g{groups}_noise{noise}", feats,
                               {"groups": [int(g) for g in assign]}))
    return cases


def duplicate_cases(rng):
    cases = []
    for n, groups in ((6, 2), (9, 3), (32, 4), (12, 5)):
        protos = [causal_softmax(rng.standard_normal((5, 5)) * 2.0).ravel()
                  for _ in range(groups)]
        assign = np.concatenate([np.arange(groups), rng.integers(0, groups, n - groups)])
        rng.shuffle(assign)
        feats = np.array([protos[g] for g in assign])
        cases.append(make_case(f"dups_n{n}_g{groups}", feats,
                               {"groups": [int(g) for g in assign]}))
    return cases


def qk_cases(rng):
    cases = []
    # (n_heads, n_kv_heads, head_dim): SmolLM2-135M is 9/3/64, LLaMA-7B 32/32/128.
    for n_heads, n_kv, head_dim, scale in ((9, 3, 64, 1.0), (32, 32, 32, 0.5), (8, 2, 16, 1.5),
                                           (12, 4, 32, 1.0), (4, 1, 8, 2.0), (32, 8, 16, 0.7)):
        for causal in (True, False):
            q = (rng.standard_normal((5, n_heads, head_dim)) * scale).astype(np.float32)
            k = (rng.standard_normal((5, n_kv, head_dim)) * scale).astype(np.float32)
            feats = head_features(q, k, n_heads, n_kv, head_dim, causal)
            name = f"qk_h{n_heads}_kv{n_kv}_d{head_dim}_{'causal' if causal else 'full'}"
            cases.append(make_case(name, feats.astype(np.float32), {
                "qk": {"n_heads": n_heads, "n_kv_heads": n_kv, "head_dim": head_dim,
                       "n_tokens": 5, "causal": causal, "q": f32_list(q), "k": f32_list(k)}}))
    return cases


def main():
    rng = np.random.default_rng(20240312)
    cases = random_cases(rng) + block_cases(rng) + duplicate_cases(rng) + qk_cases(rng)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tests/golden/make_clustering_golden.py",
                   "reference": "sklearn AgglomerativeClustering(linkage='average', "
                                "metric='precomputed') on scipy pdist 'cosine'",
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    n_cuts = sum(len(c["cuts"]) for c in cases)
    ties = [c["name"] for c in cases if c["tie_sensitive"]]
    print(f"wrote {OUT}: {len(cases)} feature sets, {n_cuts} cuts; tie-sensitive: {ties}")


if __name__ == "__main__":
    main()
