#!/usr/bin/env python3
"""Writes golden dequantization data for kernels/cpu/dequantize_test.cc.

For every GGML type chai-serve reads, writes under tests/golden/quant/:
  <type>.blocks  raw block bytes (GGML layout), rows of N_ELEMS elements
  <type>.f32     gguf-py's dequantization of those bytes, little-endian float32
and manifest.json describing both; for F16 and BF16 also <type>.src.f32, the
floats that were converted (to test the encoders). Run from anywhere; needs numpy and gguf-py:

  python3 tests/golden/make_quant_golden.py

Q4_0, Q4_1, Q8_0 and BF16 bytes come from gguf.quants.quantize on seeded
random floats (gguf-py cannot quantize K-quants); Q4_K, Q5_K, Q6_K bytes are
random with fp16 super-block scales drawn from a sane range, so every bit of the
packed scales and quants is exercised. F16/BF16 include zeros, subnormals and
infinities. Deterministic: same bytes every run.
"""
import hashlib
import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = pathlib.Path(__file__).resolve().parent / "quant"
N_ELEMS = 512  # elements per row: two K-quant super-blocks, 16 legacy blocks
N_ROWS = 4


def fp16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(-1, 2)


def random_floats(rng):
    x = rng.standard_normal((N_ROWS, N_ELEMS)).astype(np.float32)
    x[0, :32] = 0.0  # an all-zero block (d == 0)
    x[1, 32:64] *= 1000.0  # a wide-range block
    x[2, :] += 3.0  # offset rows (exercise Q4_1's min)
    return x


def k_quant_bytes(rng, qtype, type_size):
    n_blocks = N_ROWS * N_ELEMS // 256
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):
        raw[:, 0:2] = fp16_bytes(rng.uniform(1e-4, 2e-2, n_blocks))  # d
        raw[:, 2:4] = fp16_bytes(rng.uniform(1e-4, 2e-2, n_blocks))  # dmin
    elif qtype == T.Q6_K:
        raw[:, -2:] = fp16_bytes(rng.uniform(1e-4, 2e-2, n_blocks))  # d (last field)
    else:
        raise ValueError(qtype)
    return raw.reshape(N_ROWS, -1)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240521)
    manifest = {"n_elems_per_row": N_ELEMS, "n_rows": N_ROWS, "types": {}}
    for name, qtype in [("F16", T.F16), ("BF16", T.BF16), ("Q4_0", T.Q4_0),
                        ("Q4_1", T.Q4_1), ("Q8_0", T.Q8_0), ("Q4_K", T.Q4_K),
                        ("Q5_K", T.Q5_K), ("Q6_K", T.Q6_K)]:
        block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
        if qtype == T.F16:
            x = random_floats(rng)
            x[3, :8] = [0.0, -0.0, 1e-7, -3e-6, 6.0e-5, 65504.0, np.inf, -np.inf]
            raw = x.astype(np.float16).view(np.uint8)
            method = "numpy float16 cast of seeded normals + special values"
        elif qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
            raw = k_quant_bytes(rng, qtype, type_size)
            method = "random block bytes, fp16 scales uniform in [1e-4, 2e-2]"
        else:
            x = random_floats(rng)
            if qtype == T.BF16:
                x[3, :6] = [0.0, -0.0, 1e-40, np.inf, -np.inf, 3.3895314e38]
            raw = quants.quantize(x, qtype)
            method = "gguf.quants.quantize of seeded normals"
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
        if qtype in (T.F16, T.BF16):
            # The source floats, to check the float -> fp16/bf16 encoders too.
            (OUT / f"{name}.src.f32").write_bytes(x.astype("<f4").tobytes())
        deq = quants.dequantize(raw, qtype).astype("<f4")
        assert deq.shape == (N_ROWS, N_ELEMS), deq.shape
        assert raw.size == N_ROWS * N_ELEMS // block_size * type_size
        (OUT / f"{name}.blocks").write_bytes(raw.tobytes())
        (OUT / f"{name}.f32").write_bytes(deq.tobytes())
        manifest["types"][name] = {
            "ggml_type": int(qtype),
            "method": method,
            "blocks_sha256": hashlib.sha256(raw.tobytes()).hexdigest(),
            "f32_sha256": hashlib.sha256(deq.tobytes()).hexdigest(),
        }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
