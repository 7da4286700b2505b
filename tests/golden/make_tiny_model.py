#!/usr/bin/env python3
"""Makes tests/golden/tiny_llama/: one small random LLaMA written in both
formats, plus golden logits from an independent float64 numpy forward pass
(run by hand, never in CI; the outputs are committed).

    python3 tests/golden/make_tiny_model.py

Needs numpy, gguf (gguf-py), safetensors, tokenizers; transformers + torch
when importable, to validate the numpy reference itself (the script asserts
that transformers' LlamaForCausalLM agrees with it on every variant).

The model: 2 layers, hidden 32, 4 query heads and 2 KV heads of head_dim 16
(so q_dim = 64 != hidden: head_dim is explicit in both formats), SwiGLU 96,
RMSNorm eps 1e-5, rope_theta 10000, and the 805-token byte-level BPE
tokenizer of tests/golden/tokenizer/llama3/. Hidden 32 rather than 64 keeps
every committed file together under 1.5 MB.

Outputs (tests/golden/tiny_llama/):
  f32/            config.json, model.safetensors (F32, tied embeddings),
                  tokenizer.json, tokenizer_config.json
  f16_sharded/    the same weights in F16 plus an untied lm_head, split into
                  two shards with model.safetensors.index.json
  tiny_llama.gguf         the f32 weights as llama.cpp's converter writes a
                  LLaMA: Q and K rows permuted for interleaved-pair RoPE
                  (n_head_kv for K), tokenizer as "gpt2"/"llama-bpe"
  tiny_llama_llama3.gguf  the same plus rope_freqs.weight, llama.cpp's
                  encoding of Llama-3.1 rope scaling
  llama3_config.json      the f32 config with rope_scaling "llama3"; the test
                  pairs it with f32/model.safetensors (same weights)
  logits_{f32,f16,llama3}.bin  float32 [rows, vocab]: the numpy reference's
                  logits at every position of every sequence, in order
  golden.json     config, sequences, row offsets, RoPE inverse frequencies
                  (numpy port and transformers' own llama3 init), and the
                  transformers cross-check differences
Also the seed corpus of the safetensors_fuzzer, tests/fuzz/safetensors/:
small files written by the safetensors package, an index and config.json.
"""
import json
import math
import os
import shutil
import sys
import tempfile

import gguf
import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "tiny_llama")
TOK_DIR = os.path.join(ROOT, "tests", "golden", "tokenizer", "llama3")

DIM, FFN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 32, 96, 2, 4, 2, 16
THETA, EPS, CTX = 10000.0, 1e-5, 128
# original_max_position_embeddings is small so that, at the test's short
# positions, all three llama3 bands (kept, smoothed, divided) change logits.
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}
TEXTS = ["Hello world",
         "The year 2024 had 366 days; numbers like 3.14 appear often.",
         "I'm sure you're right, we've seen they'll do it and she'd agree."]
MAX_TOKENS = 16


# ---------------------------------------------------------------- weights

def make_weights(vocab, seed=0):
    rng = np.random.default_rng(seed)

    def lin(out_f, in_f):  # Hugging Face Linear: [out, in]
        return (rng.standard_normal((out_f, in_f)) / math.sqrt(in_f)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((vocab, DIM)).astype(np.float32)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(DIM)).astype(np.float32)
        w[p + "post_attention_layernorm.weight"] = (
            1 + 0.1 * rng.standard_normal(DIM)).astype(np.float32)
        w[p + "self_attn.q_proj.weight"] = lin(HEADS * HEAD_DIM, DIM)
        w[p + "self_attn.k_proj.weight"] = lin(KV_HEADS * HEAD_DIM, DIM)
        w[p + "self_attn.v_proj.weight"] = lin(KV_HEADS * HEAD_DIM, DIM)
        w[p + "self_attn.o_proj.weight"] = lin(DIM, HEADS * HEAD_DIM)
        w[p + "mlp.gate_proj.weight"] = lin(FFN, DIM)
        w[p + "mlp.up_proj.weight"] = lin(FFN, DIM)
        w[p + "mlp.down_proj.weight"] = lin(DIM, FFN)
    w["model.norm.weight"] = (1 + 0.1 * rng.standard_normal(DIM)).astype(np.float32)
    lm_head = lin(vocab, DIM)
    return w, lm_head


# ------------------------------------------------------ numpy reference

def default_inv_freq():
    return 1.0 / THETA ** (np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM)


def llama3_inv_freq(p):
    """Independent float64 port of the Llama-3.1 frequency rule (Meta's
    apply_scaling, as transformers' _compute_llama3_parameters applies it)."""
    inv = default_inv_freq()
    old = p["original_max_position_embeddings"]
    low_wavelen = old / p["low_freq_factor"]
    high_wavelen = old / p["high_freq_factor"]
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / p["factor"])
        else:
            s = (old / wavelen - p["low_freq_factor"]) / (p["high_freq_factor"] - p["low_freq_factor"])
            out.append((1 - s) * f / p["factor"] + s * f)
    return np.array(out)


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rope_rotate_half(x, inv_freq):
    """x: [T, heads, head_dim]; Hugging Face layout: pairs (i, i + head_dim/2)."""
    ang = np.arange(x.shape[0])[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward(w, lm_head, ids, inv_freq):
    """Float64 LLaMA forward over one sequence; returns logits [T, vocab]."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    lm_head = lm_head.astype(np.float64)
    t = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((t, t), -np.inf), k=1)
    group = HEADS // KV_HEADS
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(t, HEADS, HEAD_DIM)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(t, KV_HEADS, HEAD_DIM)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(t, KV_HEADS, HEAD_DIM)
        q, k = rope_rotate_half(q, inv_freq), rope_rotate_half(k, inv_freq)
        out = np.zeros((t, HEADS, HEAD_DIM))
        for hd in range(HEADS):
            kv = hd // group  # grouped-query attention
            s = q[:, hd] @ k[:, kv].T / math.sqrt(HEAD_DIM) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, hd] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kv]
        x = x + out.reshape(t, -1) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"])
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    return rms_norm(x, w["model.norm.weight"]) @ lm_head.T


# ------------------------------------------------------------- writers

def hf_config(vocab, tied, rope_scaling=None):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": DIM,
         "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
         "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "hidden_act": "silu",
         "rms_norm_eps": EPS, "rope_theta": THETA, "max_position_embeddings": CTX,
         "vocab_size": vocab, "tie_word_embeddings": tied, "attention_bias": False,
         "mlp_bias": False, "bos_token_id": 800, "eos_token_id": 804,
         "torch_dtype": "float32", "rope_scaling": rope_scaling}
    return c


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def copy_tokenizer(d):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK_DIR, name), os.path.join(d, name))


def write_f32_dir(w, vocab):
    d = os.path.join(OUT, "f32")
    os.makedirs(d, exist_ok=True)
    save_file(w, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(d, "config.json"), hf_config(vocab, tied=True))
    copy_tokenizer(d)


def write_f16_sharded_dir(w16, vocab):
    d = os.path.join(OUT, "f16_sharded")
    os.makedirs(d, exist_ok=True)
    names = list(w16)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for fname, keys in shards.items():
        save_file({k: w16[k] for k in keys}, os.path.join(d, fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in keys})
    total = sum(v.nbytes for v in w16.values())
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    cfg = hf_config(vocab, tied=False)
    cfg["torch_dtype"] = "float16"
    write_json(os.path.join(d, "config.json"), cfg)
    copy_tokenizer(d)


def permute(w, n_head):
    """llama.cpp's LlamaModel.permute: within each head, rotate-half rows
    (i, i + d/2) become adjacent rows (2i, 2i + 1) for interleaved RoPE."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llamacpp_rope_factors(p):
    """rope_freqs.weight as llama.cpp's converter computes it (float32 base
    frequencies, one divisor per frequency)."""
    freqs = 1.0 / (np.float32(THETA) ** (np.arange(0, HEAD_DIM, 2, dtype=np.float32) / HEAD_DIM))
    old = p["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / p["low_freq_factor"], old / p["high_freq_factor"]
    factors = []
    for f in freqs:
        wavelen = 2 * math.pi / float(f)
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(p["factor"])
        else:
            s = (old / wavelen - p["low_freq_factor"]) / (p["high_freq_factor"] - p["low_freq_factor"])
            factors.append(1 / ((1 - s) / p["factor"] + s))
    return np.array(factors, dtype=np.float32)


def write_gguf(path, w, vocab, rope_factors=None):
    tok = json.load(open(os.path.join(TOK_DIR, "tokenizer.json"), encoding="utf-8"))
    tokens = [None] * vocab
    types = [gguf.TokenType.NORMAL] * vocab
    for t, i in tok["model"]["vocab"].items():
        tokens[i] = t
    for a in tok["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL
    assert all(t is not None for t in tokens)
    merges = [" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]]

    wr = gguf.GGUFWriter(path, "llama")
    wr.add_name("tiny-llama")
    wr.add_context_length(CTX)
    wr.add_embedding_length(DIM)
    wr.add_block_count(LAYERS)
    wr.add_feed_forward_length(FFN)
    wr.add_head_count(HEADS)
    wr.add_head_count_kv(KV_HEADS)
    wr.add_rope_freq_base(THETA)
    wr.add_layer_norm_rms_eps(EPS)
    wr.add_key_length(HEAD_DIM)
    wr.add_value_length(HEAD_DIM)
    wr.add_rope_dimension_count(HEAD_DIM)
    wr.add_vocab_size(vocab)
    wr.add_file_type(gguf.LlamaFileType.ALL_F32)
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("llama-bpe")
    wr.add_token_list(tokens)
    wr.add_token_types(types)
    wr.add_token_merges(merges)
    wr.add_bos_token_id(tokens.index("<|begin_of_text|>"))
    wr.add_eos_token_id(tokens.index("<|eot_id|>"))
    wr.add_add_bos_token(True)

    if rope_factors is not None:  # the converter emits it before the weights
        wr.add_tensor("rope_freqs.weight", rope_factors)
    wr.add_tensor("token_embd.weight", w["model.embed_tokens.weight"])
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(LAYERS):
        for hf, gg in names.items():
            t = w[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                t = permute(t, HEADS)
            elif hf == "self_attn.k_proj":
                t = permute(t, KV_HEADS)
            wr.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(t))
    wr.add_tensor("output_norm.weight", w["model.norm.weight"])  # tied: no output.weight
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


# ------------------------------------------------ transformers cross-check

def transformers_check(variants, sequences):
    """Runs transformers' LlamaForCausalLM (float32, eager attention) on each
    Hugging Face directory; returns {variant: max |diff|} and the llama3
    inverse frequencies its own rope init computes. None if not importable."""
    try:
        import torch
        from transformers import LlamaForCausalLM
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    except ImportError as e:
        print(f"transformers cross-check skipped: {e}", file=sys.stderr)
        return None, None
    diffs = {}
    for name, (path, ref_rows) in variants.items():
        try:
            model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                     attn_implementation="eager")
        except TypeError:
            model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                     attn_implementation="eager")
        model.eval()
        rows = []
        with torch.no_grad():
            for ids in sequences:
                rows.append(model(torch.tensor([ids])).logits[0].double().numpy())
        got = np.concatenate(rows)
        diff = float(np.abs(got - ref_rows).max())
        scale = float(np.abs(ref_rows).max())
        print(f"transformers vs numpy [{name}]: max |diff| {diff:.3e} (max |logit| {scale:.2f})")
        assert diff <= 1e-4 * scale, f"numpy reference disagrees with transformers on {name}"
        diffs[name] = diff
        if name == "llama3":
            inv = model.model.rotary_emb.inv_freq.double().numpy()
            assert np.allclose(inv, llama3_inv_freq(LLAMA3), rtol=1e-6), "llama3 inv_freq differs"
    from transformers import LlamaConfig
    cfg = LlamaConfig(**{k: v for k, v in hf_config(805, True, LLAMA3).items()
                         if k not in ("architectures", "model_type")})
    inv_tf, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    return diffs, [float(x) for x in inv_tf.double().numpy()]


# ------------------------------------------------------------ fuzz seeds

def write_fuzz_seeds():
    d = os.path.join(ROOT, "tests", "fuzz", "safetensors")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    save_file({"w": rng.standard_normal((3, 4)).astype(np.float32)},
              os.path.join(d, "one_f32.safetensors"))
    save_file({"a": rng.standard_normal((2, 8)).astype(np.float16),
               "b": np.arange(3, dtype=np.int64), "c": np.zeros((0, 5), dtype=np.float32),
               "d": np.ones((2, 1, 2), dtype=np.uint8), "e": np.ones(2, dtype=np.float64)},
              os.path.join(d, "mixed_metadata.safetensors"), metadata={"format": "pt"})
    save_file({}, os.path.join(d, "empty.safetensors"))
    write_json(os.path.join(d, "index.json"),
               {"metadata": {"total_size": 64},
                "weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors",
                               "lm_head.weight": "model-00002-of-00002.safetensors"}})
    write_json(os.path.join(d, "config_llama3.json"), hf_config(805, True, LLAMA3))
    mistral = hf_config(805, False, {"type": "linear", "factor": 2.0})
    mistral.update({"architectures": ["MistralForCausalLM"], "sliding_window": 64})
    write_json(os.path.join(d, "config_mistral.json"), mistral)


# ----------------------------------------------------------------- main

def main():
    tok = Tokenizer.from_file(os.path.join(TOK_DIR, "tokenizer.json"))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    bos = tok.token_to_id("<|begin_of_text|>")
    sequences = [([bos] + tok.encode(t, add_special_tokens=False).ids)[:MAX_TOKENS] for t in TEXTS]

    os.makedirs(OUT, exist_ok=True)
    write_fuzz_seeds()
    w, lm_head = make_weights(vocab)
    w16 = {k: v.astype(np.float16) for k, v in w.items()}
    w16["lm_head.weight"] = lm_head.astype(np.float16)

    write_f32_dir(w, vocab)
    write_f16_sharded_dir(w16, vocab)
    write_gguf(os.path.join(OUT, "tiny_llama.gguf"), w, vocab)
    write_gguf(os.path.join(OUT, "tiny_llama_llama3.gguf"), w, vocab,
               rope_factors=llamacpp_rope_factors(LLAMA3))
    write_json(os.path.join(OUT, "llama3_config.json"), hf_config(vocab, True, LLAMA3))

    embed = w["model.embed_tokens.weight"]
    inv_default, inv_l3 = default_inv_freq(), llama3_inv_freq(LLAMA3)
    golden = {
        "f32": np.concatenate([forward(w, embed, s, inv_default) for s in sequences]),
        "f16": np.concatenate([forward({k: v for k, v in w16.items() if k != "lm_head.weight"},
                                       w16["lm_head.weight"], s, inv_default) for s in sequences]),
        "llama3": np.concatenate([forward(w, embed, s, inv_l3) for s in sequences]),
    }
    for name, rows in golden.items():
        rows.astype("<f4").tofile(os.path.join(OUT, f"logits_{name}.bin"))

    with tempfile.TemporaryDirectory() as tmp:
        l3 = os.path.join(tmp, "llama3")
        os.makedirs(l3)
        shutil.copy(os.path.join(OUT, "f32", "model.safetensors"), l3)
        write_json(os.path.join(l3, "config.json"), hf_config(vocab, True, LLAMA3))
        diffs, inv_tf = transformers_check(
            {"f32": (os.path.join(OUT, "f32"), golden["f32"]),
             "f16": (os.path.join(OUT, "f16_sharded"), golden["f16"]),
             "llama3": (l3, golden["llama3"])}, sequences)

    offsets, row = [], 0
    for s in sequences:
        offsets.append(row)
        row += len(s)
    meta = {
        "note": "logits_<variant>.bin: float32 little-endian [rows, vocab], numpy float64 "
                "reference (rotate-half RoPE, GQA, RMSNorm, SwiGLU) rounded to float32; "
                "row_offset is a sequence's first row. f16 uses the float16-rounded weights.",
        "config": {"vocab": vocab, "dim": DIM, "ffn": FFN, "layers": LAYERS, "heads": HEADS,
                   "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "rope_theta": THETA,
                   "rms_eps": EPS, "context": CTX, "llama3": LLAMA3},
        "sequences": [{"text": t, "ids": s, "row_offset": o}
                      for t, s, o in zip(TEXTS, sequences, offsets)],
        "rows": row,
        "max_abs_logit": {k: float(np.abs(v).max()) for k, v in golden.items()},
        "llama3_vs_default_max_diff": float(np.abs(golden["llama3"] - golden["f32"]).max()),
        "rope_inv_freq_default": [float(x) for x in inv_default],
        "rope_inv_freq_llama3": [float(x) for x in inv_l3],
        "rope_inv_freq_llama3_transformers": inv_tf,
        "gguf_rope_freqs": [float(x) for x in llamacpp_rope_factors(LLAMA3)],
        "transformers_max_diff": diffs,
    }
    write_json(os.path.join(OUT, "golden.json"), meta)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total} bytes; sequences {[len(s) for s in sequences]}; "
          f"llama3 vs default max diff {meta['llama3_vs_default_max_diff']:.3f}")
    assert total < 1_500_000


if __name__ == "__main__":
    main()
