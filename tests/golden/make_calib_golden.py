#!/usr/bin/env python3
"""Golden data for CHAI calibration (chai_calibration_test, chai_config_test).

1. attention features (engine/chai/calibration_features.h): from random
   float32 q [T, H, D] and k [T, KV, D], each head's causal attention
   probabilities softmax(q_h k_g(h)^T / sqrt(D)) over the lower triangle,
   row by row, computed in float64 with numpy (g(h) = h // (H // KV)).
2. SHA-256 test vectors from hashlib (boundary lengths around the 55/56/64
   byte padding cases).
3. model fingerprints (engine/chai/model_fingerprint.h, version 1), recomputed
   independently: the tiny LLaMA from its safetensors file (numpy), and the
   default model from its GGUF through gguf-py's dequantize (skipped if the
   file is missing). The C++ test checks the tiny model's GGUF and
   safetensors both give the recorded value.

Run:  python3 tests/golden/make_calib_golden.py
Writes tests/golden/chai/calib_golden.json.
"""
import hashlib
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "chai", "calib_golden.json")
TINY = os.path.join(ROOT, "tests", "golden", "tiny_llama", "f32", "model.safetensors")
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TAG = b"chai-model-fingerprint-v1\n"


def features(q, k):
    t, h, d = q.shape
    kv = k.shape[1]
    g = h // kv
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    out = []
    for head in range(h):
        s = q64[:, head, :] @ k64[:, head // g, :].T / np.sqrt(d)
        row = []
        for i in range(t):
            x = s[i, : i + 1]
            e = np.exp(x - x.max())
            row.extend(e / e.sum())
        out.append(row)
    return np.array(out)


def fingerprint(rows):
    h = hashlib.sha256(TAG)
    for r in rows:
        h.update(np.ascontiguousarray(r, dtype="<f4").tobytes())
    return h.hexdigest()


def fp_rows(embd, output, output_norm, attn_norm0, ffn_norm_last, wv0, wdown_last):
    v = embd.shape[0]
    return [embd[0], embd[1], embd[v // 2], embd[v - 1], output[v - 1], output_norm, attn_norm0,
            ffn_norm_last, wv0[0], wdown_last[0]]


def tiny_fingerprint():
    from safetensors.numpy import load_file
    w = load_file(TINY)
    n_layers = 1 + max(int(k.split(".")[2]) for k in w if k.startswith("model.layers."))
    last = f"model.layers.{n_layers - 1}."
    embd = w["model.embed_tokens.weight"]
    out = w.get("lm_head.weight", embd)
    return fingerprint(fp_rows(embd, out, w["model.norm.weight"],
                               w["model.layers.0.input_layernorm.weight"],
                               w[last + "post_attention_layernorm.weight"],
                               w["model.layers.0.self_attn.v_proj.weight"],
                               w[last + "mlp.down_proj.weight"]))


def gguf_fingerprint(path):
    import gguf
    r = gguf.GGUFReader(path)
    t = {x.name: x for x in r.tensors}

    def deq(name):
        x = t[name]
        return gguf.quants.dequantize(x.data, x.tensor_type).astype(np.float32)

    n_layers = 1 + max(int(n.split(".")[1]) for n in t if n.startswith("blk."))
    last = f"blk.{n_layers - 1}."
    embd = deq("token_embd.weight")
    out = deq("output.weight") if "output.weight" in t else embd
    return fingerprint(fp_rows(embd, out, deq("output_norm.weight"), deq("blk.0.attn_norm.weight"),
                               deq(last + "ffn_norm.weight"), deq("blk.0.attn_v.weight"),
                               deq(last + "ffn_down.weight")))


def main():
    rng = np.random.default_rng(7)
    feats = []
    for name, t, h, kv, d in [("gqa_t6_h4_kv2_d8", 6, 4, 2, 8), ("mha_t5_h3_d4", 5, 3, 3, 4),
                              ("mqa_t7_h3_kv1_d16", 7, 3, 1, 16)]:
        q = (rng.standard_normal((t, h, d)) * 1.5).astype(np.float32)
        k = (rng.standard_normal((t, kv, d)) * 1.5).astype(np.float32)
        feats.append({"name": name, "n_tokens": t, "n_heads": h, "n_kv_heads": kv, "head_dim": d,
                      "q": [float(v) for v in q.reshape(-1)],
                      "k": [float(v) for v in k.reshape(-1)],
                      "features": [float(v) for v in features(q, k).reshape(-1)]})
    sha = []
    for n in [0, 3, 55, 56, 63, 64, 65, 119, 120, 200, 1000]:
        data = bytes((i * 131 + 7) % 256 for i in range(n))
        sha.append({"length": n, "hex": hashlib.sha256(data).hexdigest()})
    out = {"generator": "tests/golden/make_calib_golden.py", "attention_features": feats,
           "sha256": sha, "sha256_pattern": "byte i = (i * 131 + 7) % 256",
           "tiny_llama_fingerprint": tiny_fingerprint()}
    if os.path.exists(DEFAULT_MODEL):
        out["default_model_fingerprint"] = gguf_fingerprint(DEFAULT_MODEL)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
