#!/usr/bin/env python3
"""Writes the GGUF fuzzer's seed corpus (tests/fuzz/gguf/) with gguf-py.

Small valid files that between them reach every metadata value type, every
array element type, every tensor type the reader supports, a custom
alignment and a tensor-less file, so the fuzzer starts from deep inside the
parser instead of having to discover the format. Deterministic: rerunning
rewrites identical bytes. Usage: python3 tests/fuzz/make_gguf_seeds.py
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from gguf import GGUFWriter

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf")

# (type, block elements, block bytes), as kernels/dtype.cc.
BLOCKS = {
    Q.F32: (1, 4), Q.F16: (1, 2), Q.BF16: (1, 2), Q.Q4_0: (32, 18), Q.Q4_1: (32, 20),
    Q.Q8_0: (32, 34), Q.Q4_K: (256, 144), Q.Q5_K: (256, 176), Q.Q6_K: (256, 210),
}


def raw_tensor(w, name, qtype, dims, seed):
    """Adds a tensor of GGML-order `dims` with deterministic raw bytes."""
    elems, nbytes = BLOCKS[qtype]
    rows = int(np.prod(dims[1:])) if len(dims) > 1 else 1
    size = dims[0] // elems * nbytes * rows
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    # gguf-py takes numpy (row-major) shape: reversed GGML order, bytes last.
    shape = list(reversed(dims))
    shape[-1] = shape[-1] // elems * nbytes
    w.add_tensor(name, data.reshape(shape), raw_dtype=qtype)


def write(name, build, alignment=None):
    path = os.path.join(OUT, name)
    w = GGUFWriter(path, "llama")
    if alignment is not None:
        w.data_alignment = alignment
        w.add_uint32("general.alignment", alignment)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: {os.path.getsize(path)} bytes")


def tiny_llama(w):
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    tokens = ["<s>", "</s>", "a", "b", "\u0120a", "ab"]
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 1, 1, 1, 1])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(True)
    raw_tensor(w, "token_embd.weight", Q.Q8_0, [32, 6], 1)
    raw_tensor(w, "output_norm.weight", Q.F32, [32], 2)
    raw_tensor(w, "blk.0.attn_norm.weight", Q.F32, [32], 3)
    raw_tensor(w, "blk.0.attn_q.weight", Q.Q4_0, [32, 32], 4)
    raw_tensor(w, "blk.0.attn_k.weight", Q.Q4_1, [32, 16], 5)
    raw_tensor(w, "blk.0.attn_v.weight", Q.F16, [32, 16], 6)
    raw_tensor(w, "blk.0.attn_output.weight", Q.BF16, [32, 32], 7)


def every_type(w):
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float32("t.f32", 0.5)
    w.add_float64("t.f64", 1e300)
    w.add_bool("t.bool", False)
    w.add_string("t.str", "h\u00e9llo")
    w.add_array("t.arr_str", ["", "x", "yz"])
    w.add_key_value("t.arr_u8", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("t.arr_i16", [-1, 2], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("t.arr_u64", [2**64 - 1, 0], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("t.arr_f64", [0.25, -1.0], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("t.arr_f32", [1.5], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("t.arr_bool", [True, False], V.ARRAY, sub_type=V.BOOL)
    raw_tensor(w, "k4", Q.Q4_K, [256, 1], 8)
    raw_tensor(w, "k5", Q.Q5_K, [256], 9)
    raw_tensor(w, "k6", Q.Q6_K, [256, 1, 1, 1], 10)
    raw_tensor(w, "f", Q.F32, [3, 2, 1], 11)


def metadata_only(w):
    w.add_name("vocab only")
    w.add_token_list(["<unk>", "a"])
    w.add_token_scores([0.0, -1.5])


def aligned_64(w):
    raw_tensor(w, "a", Q.F32, [3], 12)
    raw_tensor(w, "b", Q.F16, [5, 3], 13)
    raw_tensor(w, "c", Q.Q8_0, [64], 14)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write("tiny_llama.gguf", tiny_llama)
    write("every_type.gguf", every_type)
    write("metadata_only.gguf", metadata_only)
    write("aligned_64.gguf", aligned_64, alignment=64)
