#!/usr/bin/env bash
# Builds the CUDA build-path probe on the (GPU-less) build machine into
# .carry/gpu/ (git-ignored), to be carried to the GPU machine and run there by
# tests/gpu/probe.sh. Standalone: not part of the CMake build. See docs/GPU.md.
#
#   cuda_probe                      nvcc, sm_90 SASS + compute_90 PTX, static
#                                   cudart, dynamic cuBLAS
#   libchai_cuda_probe_module.so    same, as a dlopen()able module
#   probe_loader                    plain g++, no CUDA at all, dlopen()s the module
#
# Environment: NVCC (default /usr/local/cuda/bin/nvcc), CXX (default g++),
# OUTDIR (default <repo>/.carry/gpu), CUBLAS_LINK=dynamic|static (default
# dynamic; static needs libcublas_static.a, which this machine's CUDA lacks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/kernels/cuda/probe"
NVCC="${NVCC:-/usr/local/cuda/bin/nvcc}"
CXX="${CXX:-g++}"
OUTDIR="${OUTDIR:-$ROOT/.carry/gpu}"
CUBLAS_LINK="${CUBLAS_LINK:-dynamic}"
CUDA_LIB="$(cd "$(dirname "$NVCC")/.." && pwd)/lib64"

[[ -x "$NVCC" ]] || { echo "build_probe: nvcc not found at $NVCC" >&2; exit 1; }
mkdir -p "$OUTDIR"

# H100/H200 only: SASS for sm_90 plus compute_90 PTX (JIT on newer chips).
GENCODE=(-gencode 'arch=compute_90,code=[sm_90,compute_90]')
# Host side: warnings on, libstdc++/libgcc static so the binaries need only
# glibc (>= the build machine's 2.36) from the target's OS.
# shellcheck disable=SC2054  # the commas are nvcc's -Xcompiler list syntax
NVFLAGS=(-std=c++20 -O2 -lineinfo "${GENCODE[@]}" -cudart static
         -Xcompiler -Wall,-Wextra,-Werror,-fvisibility=hidden
         -Xcompiler -static-libstdc++,-static-libgcc)
# The target's CUDA 13 libraries are found through RUNPATH (the standard place)
# or LD_LIBRARY_PATH (probe.sh sets it to wherever libcublas.so.13 lives).
RUNPATH=(-Xlinker -rpath=/usr/local/cuda/lib64)

case "$CUBLAS_LINK" in
  dynamic) CUBLAS=(-lcublas -lcublasLt) ;;
  static)
    [[ -f "$CUDA_LIB/libcublas_static.a" ]] || {
      echo "build_probe: CUBLAS_LINK=static but $CUDA_LIB/libcublas_static.a does not exist" \
           "(this CUDA install ships only libcublas.so.13); use CUBLAS_LINK=dynamic" >&2
      exit 1
    }
    CUBLAS=(-lcublas_static -lcublasLt_static -lculibos) ;;
  *) echo "build_probe: CUBLAS_LINK must be dynamic or static" >&2; exit 2 ;;
esac

t0=$(date +%s)
echo "build_probe: $("$NVCC" --version | tail -1) -> $OUTDIR (cuBLAS $CUBLAS_LINK)"

"$NVCC" "${NVFLAGS[@]}" -Xptxas -v -o "$OUTDIR/cuda_probe" "$SRC/cuda_probe.cu" \
  "${RUNPATH[@]}" "${CUBLAS[@]}" 2> "$OUTDIR/ptxas_cuda_probe.txt" \
  || { cat "$OUTDIR/ptxas_cuda_probe.txt" >&2; exit 1; }
grep -E "warning|error" "$OUTDIR/ptxas_cuda_probe.txt" >&2 || true

# The module: static cudart inside, its symbols hidden so that a process with
# another CUDA runtime (PyTorch, a second module) does not bind to ours.
"$NVCC" "${NVFLAGS[@]}" -shared -Xcompiler -fPIC -o "$OUTDIR/libchai_cuda_probe_module.so" \
  "$SRC/probe_module.cu" "${RUNPATH[@]}" -Xlinker --exclude-libs,ALL -Xlinker -z,defs \
  -Xlinker --version-script="$SRC/probe_module.map" \
  "${CUBLAS[@]}"

# The loader: no CUDA headers beyond our C ABI header, no CUDA libraries.
"$CXX" -std=c++20 -O2 -Wall -Wextra -Werror -static-libstdc++ -static-libgcc \
  -o "$OUTDIR/probe_loader" "$SRC/probe_loader.cc" -ldl

echo "build_probe: built in $(( $(date +%s) - t0 )) s"
ls -l "$OUTDIR"
du -sh "$OUTDIR"
