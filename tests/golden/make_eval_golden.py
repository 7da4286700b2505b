#!/usr/bin/env python3
"""Golden log-likelihoods for `chai eval` from Hugging Face transformers.

Run by hand (needs torch + transformers + gguf + tokenizers; never in CI):
    python3 tests/golden/make_eval_golden.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
        [--data ../shared/data/eval] [--items 20]

An implementation independent of ours, end to end:
  * task text: the raw data files parsed here in Python and turned into
    prompts with lm-evaluation-harness's own expressions (task YAMLs
    doc_to_text / doc_to_choice / doc_to_target, hellaswag/utils.py
    preprocess);
  * tokenization: the harness's HFLM._encode_pair (trailing context
    whitespace moved into the continuation; whole = enc(ctx + cont),
    cont = whole[len(enc(ctx)):]; no special tokens) with the reference
    SmolLM2 tokenizer built by the `tokenizers` library from the GGUF's vocab
    and merges (make_tokenizer_golden.smollm_reference: transformers' own
    GGUF tokenizer gets SmolLM2's digit splitting wrong, see
    tests/golden/tokenizer/smollm2_golden.json);
  * scores: transformers' LlamaForCausalLM on the GGUF dequantized to float32
    (eager attention), each choice run as its own full sequence context +
    continuation (no cache reuse), log_softmax in float64, summed over the
    continuation; acc / acc_norm predictions as the harness's
    process_results (np.argmax, completion_len = len(choice));
  * WikiText-2: llama.cpp's perplexity protocol over the first windows
    (n_ctx 512, tokens of the whole file, second half of each window scored,
    no BOS for this model), ppl and its "+/-" exactly as perplexity.cpp.

Writes tests/golden/eval/eval_golden.json.
"""
import argparse
import bz2
import json
import math
import os
import re
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from make_tokenizer_golden import read_gguf, smollm_reference  # noqa: E402


# --- lm-evaluation-harness task text -------------------------------------------------------
def hellaswag_preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def load_hellaswag(d, n):
    with bz2.open(os.path.join(d, "hellaswag", "hellaswag_val_full.txt.bz2"), "rt",
                  encoding="utf-8") as f:
        lines = f.read().split("\n")
    items = []
    for i in range(n):
        b = lines[6 * i:6 * i + 6]
        items.append({"context": hellaswag_preprocess(b[0]),
                      "choices": [hellaswag_preprocess(e) for e in b[2:6]], "gold": int(b[1])})
    return items


def load_piqa(d, n):
    with open(os.path.join(d, "piqa", "valid.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(l) for l in f if l.strip()][:n]
    with open(os.path.join(d, "piqa", "valid-labels.lst"), encoding="utf-8") as f:
        labels = [int(l) for l in f if l.strip()][:n]
    return [{"context": f"Question: {doc['goal']}\nAnswer:", "choices": [doc["sol1"], doc["sol2"]],
             "gold": lab} for doc, lab in zip(docs, labels)]


def load_arc(d, level, n):
    with open(os.path.join(d, "arc", f"ARC-{level}-Test.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(l) for l in f if l.strip()][:n]
    out = []
    for doc in docs:
        labels = [c["label"] for c in doc["question"]["choices"]]
        out.append({"context": f"Question: {doc['question']['stem']}\nAnswer:",
                    "choices": [c["text"] for c in doc["question"]["choices"]],
                    "gold": labels.index(doc["answerKey"])})
    return out


def load_boolq(d, n):
    with open(os.path.join(d, "boolq", "val.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(l) for l in f if l.strip()][:n]
    return [{"context": f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:",
             "choices": ["no", "yes"], "gold": 1 if doc["label"] in (True, "true") else 0}
            for doc in docs]


# --- harness tokenization and scoring ------------------------------------------------------
def encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation, add_special_tokens=False).ids
    ctx = tok.encode(context, add_special_tokens=False).ids
    return ctx, whole[len(ctx):]


def log_probs(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits.double(), dim=-1).numpy()


def score_item(model, tok, item):
    conts, sums = [], []
    ctx = None
    for choice in item["choices"]:
        c, cont = encode_pair(tok, item["context"], " " + choice)
        assert ctx is None or c == ctx
        ctx = c
        lp = log_probs(model, c + cont)
        sums.append(float(sum(lp[len(c) - 1 + j, t] for j, t in enumerate(cont))))
        conts.append(cont)
    completion_len = np.array([float(len(ch)) for ch in item["choices"]])
    return {"context": item["context"], "choices": item["choices"], "gold": item["gold"],
            "context_ids": ctx, "continuation_ids": conts, "logliks": sums,
            "pred": int(np.argmax(sums)), "pred_norm": int(np.argmax(np.array(sums) / completion_len))}


def wikitext(model, tok, d, n_ctx, windows):
    with open(os.path.join(d, "wikitext2", "wiki.test.raw"), encoding="utf-8") as f:
        text = f.read()
    if text.endswith("\n"):
        text = text[:-1]  # llama.cpp drops one trailing newline of a prompt file
    ids = tok.encode(text, add_special_tokens=False).ids
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    for w in range(windows):
        win = ids[w * n_ctx:(w + 1) * n_ctx]
        lp = log_probs(model, win)
        for j in range(first, n_ctx - 1):
            v = lp[j, win[j + 1]]
            nll -= v
            nll2 += v * v
            count += 1
    nll2 /= count
    nll /= count
    ppl = math.exp(nll)
    stderr = math.sqrt((nll2 - nll * nll) / (count - 1)) * ppl
    return {"n_ctx": n_ctx, "windows": windows, "n_tokens": count, "ppl": ppl,
            "ppl_stderr": stderr, "total_tokens": len(ids), "first_ids": ids[:windows * n_ctx],
            "last_ids": ids[-32:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "eval"))
    ap.add_argument("--items", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(2)
    field = read_gguf(args.model)
    assert field("tokenizer.ggml.pre") == "smollm" and not field("tokenizer.ggml.add_bos_token")
    tok = smollm_reference(field)
    d, f = os.path.split(os.path.abspath(args.model))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    n = args.items
    tasks = {"hellaswag": load_hellaswag(args.data, n), "piqa": load_piqa(args.data, n),
             "arc-easy": load_arc(args.data, "Easy", n),
             "arc-challenge": load_arc(args.data, "Challenge", n), "boolq": load_boolq(args.data, n)}
    out = {"model": f,
           "reference": f"transformers {__import__('transformers').__version__}, torch "
                        f"{torch.__version__}, float32 eager; tokenizers "
                        f"{__import__('tokenizers').__version__} SmolLM2 reference tokenizer",
           "tasks": {}}
    for name, items in tasks.items():
        scored = [score_item(model, tok, it) for it in items]
        acc = float(np.mean([s["pred"] == s["gold"] for s in scored]))
        acc_norm = float(np.mean([s["pred_norm"] == s["gold"] for s in scored]))
        out["tasks"][name] = {"items": scored, "acc": acc, "acc_norm": acc_norm}
        print(f"{name}: {len(scored)} items, acc {acc:.3f}, acc_norm {acc_norm:.3f}", flush=True)
    out["wikitext"] = wikitext(model, tok, args.data, 512, 2)
    print("wikitext:", {k: v for k, v in out["wikitext"].items() if "ids" not in k}, flush=True)
    os.makedirs(os.path.join(HERE, "eval"), exist_ok=True)
    with open(os.path.join(HERE, "eval", "eval_golden.json"), "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
