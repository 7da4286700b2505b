#!/usr/bin/env python3
"""Makes the tokenizer golden files in tests/golden/tokenizer/ (run by hand,
never in CI; the outputs are committed).

    python3 tests/golden/make_tokenizer_golden.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]

Needs: gguf, tokenizers, transformers (+ jinja2). Produces:
  smollm2_golden.json   ids for >= 300 strings from the default model's GGUF.
      Reference: the `tokenizers` library built from the GGUF's vocab and
      merges with SmolLM2's real tokenizer.json pre-tokenizer,
      Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
      use_regex=True)]. transformers' own GGUF-rebuilt tokenizer is compared on
      probes (digit runs, whitespace runs, contractions) and the result is
      recorded under "transformers_gguf_check" (DESIGN.md section 5 warns it may
      not reproduce 'smollm').
  chat_golden.json      apply_chat_template output (transformers) for the
      GGUF's ChatML template and the reference Llama-2 and Llama-3 templates.
  spm/                  small SentencePiece-style BPE (byte_fallback, ▁):
      tokenizer.json, spm.gguf (tokenizer.ggml.model="llama", scores,
      token_type), spm_golden.json.
  llama3/               small byte-level BPE with the Llama-3 pre-tokenizer and
      ignore_merges: tokenizer.json, tokenizer_config.json, llama3.gguf,
      llama3_golden.json.
"""
import argparse
import inspect
import json
import os
import random
import sys
import unicodedata

import gguf
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "tokenizer")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")


def read_gguf(path):
    r = gguf.GGUFReader(path)

    def field(name):
        f = r.fields.get(name)
        if f is None:
            return None
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [f.parts[i][0].item() for i in f.data]
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]][0].item()

    return field


def hand_written_strings():
    s = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "a", "A", "Hello", "Hello world",
        "Hello, world!", " Hello world", "Hello world ", "Hello  world", "Hello   world",
        "Hello\tworld", "Hello\nworld", "Hello \n world", "Hello\n\n\nworld", "line1\r\nline2",
        "trailing spaces   ", "   leading spaces", "\t\tindented with tabs", "mixed \t \n whitespace",
        # digits
        "0", "7", "42", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", "-42",
        "+1 (555) 123-4567", "2024-11-26T19:40:00Z", "v1.2.3", "0x1F", "1e-9", "100%", "$19.99",
        "abc123def", "123abc", "a1b2c3", " 123", "  123", "x  42", "Call 911 now", "١٢٣ Arabic-Indic",
        "४२ Devanagari digits", "Ⅻ roman numeral", "½ ¾ ²³", "①②③", "１２３ fullwidth",
        # contractions
        "I'm", "you're", "we've", "they'll", "she'd", "it's", "don't", "can't", "won't", "I'M",
        "YOU'RE", "It'S", "'s", "'ll", "rock'n'roll", "O'Reilly", "the dogs' bones", "''quoted''",
        "‘curly’ quotes", "“double curly”", "l'amour", "I’m with a curly apostrophe",
        # punctuation & code
        "!!!", "?!", "...", "—", "--", "(parens)", "[brackets]", "{braces}", "<angle>", "a+b=c",
        "foo(bar, baz);", "def f(x):\n    return x ** 2\n", "int main() { return 0; }",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "#include <stdio.h>",
        "if x == 1 and y != 2:", "print('hello')", "console.log(\"hi\");", "SELECT * FROM t WHERE id = 1;",
        "https://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Windows\\System32",
        "/usr/local/bin/python3", "~/.bashrc", "a_b_c", "snake_case_name", "camelCaseName",
        "SCREAMING_CASE", "kebab-case-name", "<html><body>Hi</body></html>", "{\"key\": [1, 2, 3]}",
        "x = [i**2 for i in range(10)]", "   # indented comment", "\tif (a) {\n\t\tb();\n\t}",
        "$$ \\frac{a}{b} $$", "@decorator", "#hashtag", "a/b/c", "1/2", "a\\nb",
        # Unicode
        "café", "naïve", "résumé", "Ångström", "façade", "Straße", "ÆØÅ æøå", "Ελληνικά", "Русский текст",
        "Привет, мир!", "Україна", "עברית", "مرحبا بالعالم", "السلام عليكم", "فارسی", "हिन्दी",
        "বাংলা", "தமிழ்", "ไทย", "ລາວ", "ქართული", "Հայերեն", "አማርኛ", "中文", "你好，世界！",
        "我爱北京天安门", "日本語のテキスト", "カタカナ", "ひらがな", "한국어 텍스트", "漢字と仮名",
        "Tiếng Việt", "Türkçe ığüşöç", "Polski: zażółć gęślą jaźń", "Čeština", "Română ș ț",
        # combining marks & normalization
        "e\u0301", "cafe\u0301", "n\u0303", "a\u0308o\u0308u\u0308", "\u0915\u094d\u0937",
        "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319a\u0308lgo",
        "\u1100\u1161\u11a8", "ﬁ ligature", "Å vs Å", "Ω vs Ω",
        # emoji
        "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "❤️", "I ❤️ NY", "🎉 party 🎉", "emoji😀inside",
        "🤖🧠💡", "⭐️⭐️⭐️", "☕ coffee", "♠♥♦♣", "→ ← ↑ ↓", "∀x∈ℝ: x²≥0", "≠ ≤ ≥ ∞",
        # unusual whitespace & control
        "a\u00a0b", "a\u3000b", "a\u2003b", "a\u200bb", "a\u200db", "\ufeffBOM", "a\u0085b",
        "a\u000bb", "a\u000cb", "a\u2028b", "a\u2029b", "\u00a0\u00a0lead", "x \u00a0 y",
        " \t \t ", "\n \n", "  \n\n  ", "a \n\tb", "end with newline\n", "end with spaces  ",
        # special tokens (parse_special)
        "<|im_start|>", "<|im_end|>", "<|im_start|>user\nHi<|im_end|>\n",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "text<|endoftext|>more", "<|endoftext|><|endoftext|>", " <|im_start|> spaced <|im_end|> ",
        "<|im_start", "im_start|>", "<|im_start|", "<repo_name>chai<file_sep>", "<filename>main.cc",
        "<jupyter_code>print(1)<jupyter_output>", "<|unknown_special|>", "<s>not special here</s>",
        # mixed
        "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK bRoWn",
        "Numbers: 1, 22, 333, 4444, 55555.", "Price: €1.234,56 or £99", "Temperature: -3.5°C",
        "He said, \"It's 3:45 p.m.\"", "Email me at a.b@c.d!", "Mr. Smith's 2nd car.",
        "Hello世界123مرحبا", "abc中文def", "日本語 and English mixed", "Ελληνικά123", "тест123test",
    ]
    return s


def random_strings(n, seed):
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r",
        "'.,;:!?-_()[]{}<>\"/\\@#$%^&*+=|~`", "éèêëàâäôöûüçñßøåæœ", "абвгдежзийклмнопрстуфхцчшщъыьэюя",
        "的一是不了人我在有他这为之大来以个中上们", "あいうえおかきくけこさしすせそ", "가나다라마바사아자차카타파하",
        "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇", "\u0301\u0308\u0303\u20dd",
        "\u00a0\u2003\u3000\u200b\u0085", "٠١٢٣٤٥٦٧٨٩", "'s 've 're 'll 'd 'm 't",
    ]
    out = []
    for _ in range(n):
        length = rng.randint(1, 40)
        chunks = []
        for _ in range(length):
            pool = rng.choice(pools)
            if pool.startswith("'s"):
                chunks.append(rng.choice(pool.split(" ")))
            else:
                chunks.append(rng.choice(pool))
        out.append("".join(chunks))
    return out


def smollm_reference(field):
    tokens = field("tokenizer.ggml.tokens")
    merges = field("tokenizer.ggml.merges")
    types = field("tokenizer.ggml.token_type")
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                     fuse_unk=False, byte_fallback=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i, t in enumerate(types) if t == 3])
    return tok


def check_transformers_gguf(model_path, ref):
    """Compares transformers' GGUF-rebuilt tokenizer with the reference."""
    probes = ["12345", "x 2024 y", "a  1", "  123  ", "Hello   world", "\n\n\n  x", "I'm you're we've",
              "don't", "3.14 and 1,000", "tabs\t\tand  spaces", "I'M", "1 2  3   4"]
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(os.path.dirname(model_path),
                                           gguf_file=os.path.basename(model_path))
    except Exception as e:  # noqa: BLE001 - record why the check could not run
        return {"ran": False, "error": repr(e)[:500]}
    diffs = []
    for p in probes:
        a = hf.encode(p, add_special_tokens=False)
        b = ref.encode(p, add_special_tokens=False).ids
        if a != b:
            diffs.append({"text": p, "transformers": a, "reference": b})
    pre = None
    try:
        pre = json.loads(hf.backend_tokenizer.to_str()).get("pre_tokenizer")
    except Exception:  # noqa: BLE001
        pass
    return {"ran": True, "agrees": not diffs, "differences": diffs,
            "transformers_pre_tokenizer": pre}


def chat_golden(field, ref):
    from transformers import PreTrainedTokenizerFast
    convs = [
        [{"role": "user", "content": "Hi!"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
        [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there! How can I help?"},
         {"role": "user", "content": "  Tell me a joke.  \n"}],
        [{"role": "system", "content": "Sys\nmultiline"}, {"role": "user", "content": "Q1"},
         {"role": "assistant", "content": " A1 "}, {"role": "user", "content": "Q2 with 数字 123 😀"}],
    ]
    families = [
        ("chatml", field("tokenizer.chat_template"), "<|im_start|>", "<|im_end|>"),
        ("llama2", LLAMA2_TEMPLATE, "<s>", "</s>"),
        ("llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>"),
    ]
    cases = []
    for family, template, bos, eos in families:
        t = PreTrainedTokenizerFast(tokenizer_object=ref, bos_token=bos, eos_token=eos)
        for conv in convs:
            for gen in (False, True):
                if family == "llama2" and gen:
                    continue  # the Llama-2 template ignores add_generation_prompt
                text = t.apply_chat_template(conv, chat_template=template, tokenize=False,
                                             add_generation_prompt=gen)
                cases.append({"family": family, "template": template, "bos": bos, "eos": eos,
                              "messages": conv, "add_generation_prompt": gen, "expected": text})
    return cases


def training_corpus():
    import collections, email, html, http, json as js, logging, string, textwrap, unittest
    texts = [inspect.getdoc(m) or "" for m in (collections, email, html, http, js, logging, string,
                                                textwrap, unittest, random, os, inspect)]
    texts += hand_written_strings()
    texts += ["The year 2024 had 366 days; numbers like 3.14, 42 and 1,000 appear often.",
              "I'm sure you're right, we've seen they'll do it and she'd agree."] * 5
    return texts


def write_gguf(path, arch, model, tokens, types, scores=None, merges=None, pre=None,
               bos=None, eos=None, unk=None, add_bos=None, add_space_prefix=None, template=None):
    w = gguf.GGUFWriter(path, arch)
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    if unk is not None:
        w.add_unk_token_id(unk)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    if add_space_prefix is not None:
        w.add_add_space_prefix(add_space_prefix)
    if template is not None:
        w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_spm(strings):
    """SentencePiece-style BPE: ▁ for spaces, byte fallback, merges derived
    from the vocabulary exactly as transformers' SentencePiece converter does
    (every split of a piece into two pieces, ordered by the piece's rank), so
    that rank-ordered HF BPE and score-ordered SentencePiece BPE agree."""
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                                   normalizers.Replace(" ", "▁")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    trainer_tok.train_from_iterator(training_corpus(), trainer)
    trained = json.loads(trainer_tok.to_str())["model"]["vocab"]
    pieces = [p for p, _ in sorted(trained.items(), key=lambda kv: kv[1])
              if p not in ("<unk>", "<s>", "</s>")]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for i, t in enumerate(tokens):
        if i < 259:
            continue
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab and vocab[a] >= 259 and vocab[b] >= 259:
                merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                               fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    d = os.path.join(OUT, "spm")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(259, len(tokens))]
    write_gguf(os.path.join(d, "spm.gguf"), "llama", "llama", tokens, types, scores=scores,
               bos=1, eos=2, unk=0, add_bos=True, add_space_prefix=True)
    spm_strings = strings[:60] + [s for s in strings if "<s>" in s or "</s>" in s] + strings[-40:]
    cases = [{"text": s, "ids": tok.encode(s).ids} for s in spm_strings]
    with open(os.path.join(d, "spm_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"note": "ids from tokenizers " + tokenizers.__version__ +
                   " encode(text) with add_special_tokens=True (adds <s>)", "cases": cases},
                  f, ensure_ascii=False, indent=0)
    return len(cases)


def make_llama3(strings):
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer)
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    d = os.path.join(OUT, "llama3")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_bos_token": True,
                   "chat_template": LLAMA3_TEMPLATE}, f, indent=1)
    full = json.loads(tok.to_str())
    vocab = full["model"]["vocab"]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    types = [1] * len(tokens)
    for a in full["added_tokens"]:
        while a["id"] >= len(tokens):
            tokens.append(None)
            types.append(1)
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3
    merges = [" ".join(m) if isinstance(m, list) else m for m in full["model"]["merges"]]
    bos = tokens.index("<|begin_of_text|>")
    write_gguf(os.path.join(d, "llama3.gguf"), "llama", "gpt2", tokens, types, merges=merges,
               pre="llama-bpe", bos=bos, eos=tokens.index("<|eot_id|>"), add_bos=True,
               template=LLAMA3_TEMPLATE)
    l3_strings = strings[:80] + strings[-40:] + [
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "Hello\n\n\nworld", "x \n\n y", "  \r\n  z", "abc!!!\n\nnext", "12345678", "(hello)"]
    cases = [{"text": s, "ids": tok.encode(s, add_special_tokens=False).ids} for s in l3_strings]
    with open(os.path.join(d, "llama3_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"note": "ids from tokenizers " + tokenizers.__version__ +
                   " encode(text, add_special_tokens=False)", "cases": cases},
                  f, ensure_ascii=False, indent=0)
    return len(cases)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    field = read_gguf(args.model)
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "smollm"
    ref = smollm_reference(field)
    strings = hand_written_strings() + random_strings(150, seed=1234)
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for s in strings:
        enc = ref.encode(s, add_special_tokens=False)
        assert ref.decode(enc.ids, skip_special_tokens=False) == s, s
        cases.append({"text": s, "ids": enc.ids})
    check = check_transformers_gguf(args.model, ref)
    with open(os.path.join(OUT, "smollm2_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"model": os.path.basename(args.model),
                   "reference": "tokenizers " + tokenizers.__version__ +
                                " BPE from the GGUF vocab+merges, pre_tokenizer Sequence[Digits("
                                "individual_digits=True), ByteLevel(add_prefix_space=False, "
                                "use_regex=True)], special tokens = token_type 3; "
                                "encode(text, add_special_tokens=False)",
                   "python_unicode_version": unicodedata.unidata_version,
                   "transformers_gguf_check": check, "cases": cases},
                  f, ensure_ascii=False, indent=0)
    chat = chat_golden(field, ref)
    with open(os.path.join(OUT, "chat_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"note": "transformers apply_chat_template(tokenize=False)", "cases": chat},
                  f, ensure_ascii=False, indent=1)
    n_spm = make_spm(strings)
    n_l3 = make_llama3(strings)
    print(f"smollm2: {len(cases)} strings; chat: {len(chat)}; spm: {n_spm}; llama3: {n_l3}")
    print("transformers GGUF check:", json.dumps(check)[:2000])


if __name__ == "__main__":
    sys.exit(main())
