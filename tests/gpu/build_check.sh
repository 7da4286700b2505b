#!/usr/bin/env bash
# Builds the CUDA backend's check binaries on the (GPU-less) build machine and
# copies them into .carry/gpu/ (git-ignored) for tests/gpu/check.sh on the GPU
# machine: libchai_cuda_backend.so, chai_cuda_test, chai_cuda_bench.
#
#   tests/gpu/build_check.sh [BUILD_DIR]     (default: <repo>/build-cuda)
#
# Configures BUILD_DIR if needed (Release, CUDA on, sm_90), builds only those
# targets, checks what they link (ldd) and what the module leaves undefined,
# strips debug info, and keeps the carry under 60 MiB.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-$ROOT/build-cuda}"
OUTDIR="${OUTDIR:-$ROOT/.carry/gpu}"
JOBS="${JOBS:-2}"
t0=$(date +%s)
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCHAI_BUILD_CUDA=ON \
    -DCHAI_BUILD_BENCHMARKS=OFF
fi
cmake --build "$BUILD" --target chai_cuda_backend chai_cuda_test chai_cuda_bench -j"$JOBS"
mkdir -p "$OUTDIR"
fail=0
for f in libchai_cuda_backend.so chai_cuda_test chai_cuda_bench; do
  cp "$BUILD/gpu/$f" "$OUTDIR/$f"
  strip --strip-debug "$OUTDIR/$f"
  # Only glibc, libgcc_s and CUDA's libraries may be needed at run time.
  bad=$(ldd "$OUTDIR/$f" | awk '{print $1}' |
        grep -vE '^(linux-vdso\.so|/lib64/ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libgcc_s\.so|libcublas\.so|libcublasLt\.so)' || true)
  if [[ -n "$bad" ]]; then
    echo "build_check: $f needs libraries the GPU machine lacks: $bad" >&2
    fail=1
  fi
done
# The module takes Abseil from its host process; anything else undefined
# (beyond glibc/libgcc/CUDA) would fail at dlopen() there.
undef=$(nm -D --undefined-only "$OUTDIR/libchai_cuda_backend.so" | awk '$1 == "U" {print $2}' |
        grep -vE '@(GLIBC|CXXABI|GCC|libcublas)|^_ZNK?4absl' || true)
if [[ -n "$undef" ]]; then
  echo "build_check: the module leaves unexpected symbols undefined:" >&2
  echo "$undef" >&2
  fail=1
fi
size_kb=$(du -sk "$OUTDIR" | cut -f1)
if ((size_kb > 60 * 1024)); then
  echo "build_check: $OUTDIR is ${size_kb} KiB, over the 60 MiB carry budget" >&2
  fail=1
fi
ls -l "$OUTDIR"
echo "build_check: $(du -sh "$OUTDIR" | cut -f1) in $OUTDIR, $(( $(date +%s) - t0 )) s"
exit $fail
