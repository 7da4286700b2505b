#!/usr/bin/env python3
"""Golden next-token logits and greedy continuations from Hugging Face transformers.

Run by hand (needs torch + transformers + gguf; never run in CI):
    python3 tests/golden/make_logits_golden.py models/SmolLM2-135M-Instruct.Q4_1.gguf

transformers loads the GGUF through the `gguf` package and dequantizes every
tensor to float32, then runs its own LlamaForCausalLM (rotate-half RoPE on
un-permuted Q/K, eager attention). That is an implementation independent of
ours. For each prompt the script writes (tests/golden/logits/):
  golden.json  prompt ids, and per position the reference top-1 id, the gap
               between its two best logits, and the top-8 (id, logit) pairs;
               the greedy 64-token continuation; the shape of logits.bin.
  (greedy_gaps: the reference's top-2 logit gap at each greedy step.)
  logits.bin   float32 little-endian, full logits of the LAST prompt position
               of each prompt, [n_prompts, vocab].
Prompt ids come from transformers' tokenizer; the C++ test feeds these ids
directly, so the logits check does not depend on our tokenizer.
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Water boils at a temperature of",
    "The three primary colors are red, blue and",
    "Question: What is the largest planet in our solar system?\nAnswer:",
]
GEN_TOKENS = 64
TOPK = 8


def main():
    path = sys.argv[1]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logits")
    os.makedirs(out_dir, exist_ok=True)
    d, f = os.path.split(os.path.abspath(path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    cases = []
    last_logits = []
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
        per_pos = []
        for p in range(len(ids)):
            order = np.argsort(-logits[p], kind="stable")
            per_pos.append({
                "top1": int(order[0]),
                "gap": float(logits[p][order[0]] - logits[p][order[1]]),
                "top": [[int(i), float(logits[p][i])] for i in order[:TOPK]],
            })
        last_logits.append(logits[-1].astype("<f4"))
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=GEN_TOKENS, do_sample=False,
                                 min_new_tokens=GEN_TOKENS, pad_token_id=tok.eos_token_id)
        cont = [int(t) for t in gen[0][len(ids):]]
        # The reference's margin at each greedy step: a continuation may only
        # legitimately diverge where the two best logits are (near) tied.
        with torch.no_grad():
            full = model(torch.tensor([ids + cont])).logits[0].float().numpy()
        greedy_gaps = []
        for p in range(len(ids) - 1, len(ids) + len(cont) - 1):
            top2 = np.sort(full[p])[-2:]
            greedy_gaps.append(float(top2[1] - top2[0]))
        cases.append({"prompt": prompt, "ids": [int(i) for i in ids], "positions": per_pos,
                      "greedy": cont, "greedy_gaps": greedy_gaps,
                      "greedy_text": tok.decode(cont)})
        print(repr(prompt), len(ids), "->", repr(tok.decode(cont)[:60]))
    np.stack(last_logits).tofile(os.path.join(out_dir, "logits.bin"))
    meta = {"model": f, "reference": f"transformers {__import__('transformers').__version__}, "
            f"torch {torch.__version__}, float32, eager attention",
            "vocab": int(last_logits[0].shape[0]), "cases": cases}
    with open(os.path.join(out_dir, "golden.json"), "w") as fh:
        json.dump(meta, fh, indent=1)


if __name__ == "__main__":
    main()
