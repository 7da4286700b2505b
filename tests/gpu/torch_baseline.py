#!/usr/bin/env python3
"""PyTorch baseline for chai_cuda_bench: the same LLaMA-7B shape, same runs.

A plain PyTorch LLaMA decoder (fp16 weights and KV cache, cuBLAS matrix
products through torch.nn.functional.linear, attention through
torch.nn.functional.scaled_dot_product_attention, rotate-half RoPE, RMSNorm
in fp32 as Hugging Face's LlamaRMSNorm does), with random weights made on the
device. It is what `transformers`' LlamaForCausalLM does per step with a
preallocated (static) KV cache, written out so it runs without downloading or
configuring anything on the GPU machine, which has no network.

Measured, like chai_cuda_bench (kernels/cuda/bench/cuda_bench.cc):
  - decode step time at batch 1, 16, 64 and contexts 512, 2048, eager and
    replayed from a CUDA graph (the graph removes Python/launch overhead, so
    it is PyTorch's best case without torch.compile);
  - time to first token of a 2048-token prompt at batch 1 (causal SDPA);
  - device-to-device copy bandwidth, to compare with the C++ bench's.
Configurations whose fp16 KV cache does not fit in free device memory are
reported as skipped. Timing: CUDA events, warm-up first, median of the steps.

  python3 tests/gpu/torch_baseline.py [--json FILE] [--quick] [--device cpu]

--device cpu with --quick is a smoke run for this machine (no GPU).
Run by tests/gpu/check.sh on the GPU machine; never in CI.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F


class Shape:
    def __init__(self, layers=32, dim=4096, heads=32, kv_heads=32, head_dim=128, ffn=11008,
                 vocab=32000):
        self.layers, self.dim, self.heads, self.kv_heads = layers, dim, heads, kv_heads
        self.head_dim, self.ffn, self.vocab = head_dim, ffn, vocab


def make_weights(s, dev, dtype, gen):
    def w(rows, cols):
        # Scaled so activations stay finite through 32 layers.
        return (torch.randn(rows, cols, device=dev, dtype=torch.float32, generator=gen)
                / math.sqrt(cols)).to(dtype)

    layers = []
    for _ in range(s.layers):
        layers.append(dict(
            wq=w(s.heads * s.head_dim, s.dim), wk=w(s.kv_heads * s.head_dim, s.dim),
            wv=w(s.kv_heads * s.head_dim, s.dim), wo=w(s.dim, s.heads * s.head_dim),
            gate=w(s.ffn, s.dim), up=w(s.ffn, s.dim), down=w(s.dim, s.ffn),
            attn_norm=torch.ones(s.dim, device=dev, dtype=dtype),
            ffn_norm=torch.ones(s.dim, device=dev, dtype=dtype)))
    return dict(layers=layers, embd=w(s.vocab, s.dim), out=w(s.vocab, s.dim),
                out_norm=torch.ones(s.dim, device=dev, dtype=dtype))


def rms_norm(x, weight, eps=1e-5):
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def rope_tables(s, positions, dtype):
    inv = 1.0 / (10000.0 ** (torch.arange(0, s.head_dim, 2, device=positions.device,
                                          dtype=torch.float32) / s.head_dim))
    ang = positions.float()[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x, cos, sin):
    # x: [B, H, T, D]; cos/sin broadcast to [., 1, T, D] or [B, 1, 1, D].
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


def forward(s, W, cache, ids, pos0, seq_len):
    """ids: [B, T] int64; writes K/V at positions pos0..pos0+T-1; returns logits [B, vocab]
    of the last position. seq_len: how many cached positions attention reads (pos0 + T)."""
    B, T = ids.shape
    x = F.embedding(ids, W["embd"])  # [B, T, dim]
    positions = torch.arange(pos0, pos0 + T, device=ids.device)
    cos, sin = rope_tables(s, positions, x.dtype)
    cos, sin = cos[None, None], sin[None, None]
    rep = s.heads // s.kv_heads
    for li, L in enumerate(W["layers"]):
        h = rms_norm(x, L["attn_norm"])
        q = F.linear(h, L["wq"]).view(B, T, s.heads, s.head_dim).transpose(1, 2)
        k = F.linear(h, L["wk"]).view(B, T, s.kv_heads, s.head_dim).transpose(1, 2)
        v = F.linear(h, L["wv"]).view(B, T, s.kv_heads, s.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        kc, vc = cache[li]
        kc[:B, :, pos0:pos0 + T] = k
        vc[:B, :, pos0:pos0 + T] = v
        kk, vv = kc[:B, :, :seq_len], vc[:B, :, :seq_len]
        if rep > 1:
            kk, vv = kk.repeat_interleave(rep, 1), vv.repeat_interleave(rep, 1)
        a = F.scaled_dot_product_attention(q, kk, vv, is_causal=(T > 1 and pos0 == 0))
        a = a.transpose(1, 2).reshape(B, T, s.heads * s.head_dim)
        x = x + F.linear(a, L["wo"])
        h = rms_norm(x, L["ffn_norm"])
        x = x + F.linear(F.silu(F.linear(h, L["gate"])) * F.linear(h, L["up"]), L["down"])
    x = rms_norm(x[:, -1], W["out_norm"])
    return F.linear(x, W["out"])


class Timer:
    def __init__(self, dev):
        self.cuda = dev.type == "cuda"

    def run(self, fn, reps, warmup=2):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)


def copy_bandwidth(dev, timer):
    if dev.type != "cuda":
        return 0.0
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev).random_(0, 255)
    b = torch.empty_like(a)
    t = timer.run(lambda: b.copy_(a), reps=10)
    del a, b
    return 2.0 * n / t / 1e9


def verify_hf():
    """The baseline must compute a LLaMA forward pass, or its times mean nothing."""
    from transformers import LlamaConfig, LlamaForCausalLM
    s = Shape(layers=2, dim=64, heads=4, kv_heads=2, head_dim=16, ffn=128, vocab=100)
    gen = torch.Generator().manual_seed(3)
    W = make_weights(s, torch.device("cpu"), torch.float32, gen)
    for L in W["layers"]:  # non-trivial norm weights
        L["attn_norm"].uniform_(0.5, 1.5, generator=gen)
        L["ffn_norm"].uniform_(0.5, 1.5, generator=gen)
    cfg = LlamaConfig(vocab_size=s.vocab, hidden_size=s.dim, intermediate_size=s.ffn,
                      num_hidden_layers=s.layers, num_attention_heads=s.heads,
                      num_key_value_heads=s.kv_heads, head_dim=s.head_dim, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=False)
    hf = LlamaForCausalLM(cfg).eval()
    sd = {"model.embed_tokens.weight": W["embd"], "lm_head.weight": W["out"],
          "model.norm.weight": W["out_norm"]}
    names = dict(wq="self_attn.q_proj", wk="self_attn.k_proj", wv="self_attn.v_proj",
                 wo="self_attn.o_proj", gate="mlp.gate_proj", up="mlp.up_proj",
                 down="mlp.down_proj", attn_norm="input_layernorm",
                 ffn_norm="post_attention_layernorm")
    for i, L in enumerate(W["layers"]):
        for k, n in names.items():
            sd[f"model.layers.{i}.{n}.weight"] = L[k]
    hf.load_state_dict(sd, strict=True)
    T = 12
    ids = torch.randint(0, s.vocab, (1, T), generator=gen)
    cache = [(torch.zeros(1, s.kv_heads, T, s.head_dim), torch.zeros(1, s.kv_heads, T, s.head_dim))
             for _ in range(s.layers)]
    with torch.no_grad():
        ref = hf(ids).logits[0]
        # Prefill T-1 tokens, then decode the last one from the cache.
        forward(s, W, cache, ids[:, :T - 1], 0, T - 1)
        got_decode = forward(s, W, cache, ids[:, T - 1:], T - 1, T)[0]
        got_prefill = forward(s, W, cache, ids, 0, T)[0]
    d1 = (got_prefill - ref[-1]).abs().max().item()
    d2 = (got_decode - ref[-1]).abs().max().item()
    print(f"max |logit diff| vs transformers {__import__('transformers').__version__}: "
          f"prefill {d1:.2e}, decode {d2:.2e}")
    return 0 if max(d1, d2) < 1e-4 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true", help="8 layers, contexts 512, prefill 512")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--tiny", action="store_true", help="a tiny shape (CPU smoke run)")
    ap.add_argument("--verify-hf", action="store_true",
                    help="compare this model's logits with transformers' LlamaForCausalLM "
                         "on the tiny shape (CPU, float32) and exit")
    args = ap.parse_args()
    if args.verify_hf:
        return verify_hf()

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device (torch.cuda.is_available() is False)")
        return 3
    s = Shape()
    batches, contexts, prefill = [1, 16, 64], [512, 2048], 2048
    if args.quick:
        s.layers, contexts, prefill = 8, [512], 512
    if args.tiny:
        s = Shape(layers=2, dim=64, heads=4, kv_heads=2, head_dim=16, ffn=128, vocab=100)
        batches, contexts, prefill = [1, 4], [16, 32], 24
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = True
    timer = Timer(dev)
    t_start = time.time()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device: {name}  torch {torch.__version__}")
    print(f"shape: {s.layers} layers, dim {s.dim}, {s.heads} heads ({s.kv_heads} KV), "
          f"head_dim {s.head_dim}, ffn {s.ffn}, vocab {s.vocab}, {dtype}")
    copy_gbs = copy_bandwidth(dev, timer)
    print(f"d2d copy 1 GiB: {copy_gbs:.0f} GB/s (read + write)")
    gen = torch.Generator(device=dev)
    gen.manual_seed(1)
    W = make_weights(s, dev, dtype, gen)
    esz = torch.tensor([], dtype=dtype).element_size()
    weight_bytes = sum(t.numel() * esz for L in W["layers"] for t in L.values())
    weight_bytes += (W["embd"].numel() + W["out"].numel() + W["out_norm"].numel()) * esz
    # Decode reads every layer weight and the output matrix, one embedding row.
    read_weight_bytes = weight_bytes - W["embd"].numel() * esz
    print(f"weights: {weight_bytes / 1e9:.2f} GB")

    rows = []
    print(f"{'batch':<6} {'ctx':<6} {'mode':<6} {'step_ms':>10} {'tokens/s':>10}  note")
    for ctx in contexts:
        max_len = ctx + 1
        per_seq = 2 * s.layers * s.kv_heads * s.head_dim * max_len * esz
        fits = 0
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            free = torch.cuda.mem_get_info(dev)[0]
            for b in sorted(batches, reverse=True):
                if b * per_seq < free - (3 << 30):  # room for activations and the graph pool
                    fits = b
                    break
        else:
            fits = max(batches)
        cache = None
        if fits:
            cache = [(torch.randn(fits, s.kv_heads, max_len, s.head_dim, device=dev,
                                  generator=gen).to(dtype),
                      torch.randn(fits, s.kv_heads, max_len, s.head_dim, device=dev,
                                  generator=gen).to(dtype)) for _ in range(s.layers)]
        for b in batches:
            if b > fits:
                note = f"fp16 KV cache {b * per_seq / 1e9:.0f} GB does not fit"
                print(f"{b:<6} {ctx:<6} {'-':<6} {'-':>10} {'-':>10}  {note}")
                rows.append(dict(batch=b, context=ctx, skipped=note))
                continue
            ids = torch.randint(0, s.vocab, (b, 1), device=dev, generator=gen)
            step = lambda: forward(s, W, cache, ids, ctx, ctx + 1)
            with torch.inference_mode():
                t_eager = timer.run(step, args.steps)
                t_graph = None
                if dev.type == "cuda":
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        step()
                    torch.cuda.current_stream().wait_stream(side)
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g):
                        step()
                    t_graph = timer.run(g.replay, args.steps)
                    del g
            for mode, t in (("eager", t_eager), ("graph", t_graph)):
                if t is None:
                    continue
                row = dict(batch=b, context=ctx, mode=mode, step_ms=t * 1e3, tokens_per_s=b / t)
                note = ""
                if b == 1:
                    by = read_weight_bytes + 2 * s.layers * s.kv_heads * s.head_dim * esz * (ctx + 1)
                    row["bytes_read"] = by
                    if copy_gbs:
                        row["bandwidth_share"] = by / t / 1e9 / copy_gbs
                        note = f"{by / t / 1e9:.0f} GB/s = {100 * row['bandwidth_share']:.0f}% of copy"
                print(f"{b:<6} {ctx:<6} {mode:<6} {t * 1e3:>10.3f} {b / t:>10.1f}  {note}")
                rows.append(row)
        del cache
    ttft = None
    with torch.inference_mode():
        cache = [(torch.empty(1, s.kv_heads, prefill, s.head_dim, device=dev, dtype=dtype),
                  torch.empty(1, s.kv_heads, prefill, s.head_dim, device=dev, dtype=dtype))
                 for _ in range(s.layers)]
        ids = torch.randint(0, s.vocab, (1, prefill), device=dev, generator=gen)
        t = timer.run(lambda: forward(s, W, cache, ids, 0, prefill), reps=3, warmup=1)
        ttft = dict(ms=t * 1e3, prompt_tokens_per_s=prefill / t)
        print(f"TTFT {prefill} tokens: {t * 1e3:.1f} ms ({prefill / t:.0f} prompt tokens/s)")
    total = time.time() - t_start
    print(f"total {total:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=name, torch=torch.__version__, dtype=str(dtype),
                           shape=vars(s), weights_gb=weight_bytes / 1e9,
                           copy_gbs_read_write=copy_gbs, decode=rows,
                           **{f"ttft_{prefill}": ttft}, total_s=total), f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
