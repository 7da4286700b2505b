#!/usr/bin/env bash
# Nsight Compute on the CUDA backend's hot kernels, run on the GPU machine
# with the binaries tests/gpu/build_check.sh carried in .carry/gpu:
#   - GemvKernel (batch-1 decode matrix products): the first 3 launches
#     (layer 0's Q, K and V products, 4096 x 4096);
#   - PrefillMmaKernel (tensor-core prefill attention): one launch of the
#     2048-token prefill.
# Sections: speed of light, memory workload, occupancy, launch stats, warp
# stall reasons. Full reports go to OUT/ncu_*.txt; a digest is printed.
#
#   bash tests/gpu/profile.sh [--bin DIR] [--out DIR]
#
# Clocks are left as the card runs them (--clock-control none), so the
# numbers match the benchmark's.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.carry/gpu"
OUTDIR="${OUT:-/tmp/out}"
while (($#)); do
  case "$1" in
    --bin) BIN="$2"; shift ;;
    --out) OUTDIR="$2"; shift ;;
    *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUTDIR"
NCU="$(command -v ncu || true)"
[[ -z "$NCU" ]] && NCU="$(ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
if [[ -z "$NCU" ]]; then
  echo "profile.sh: ncu not found" >&2
  exit 3
fi
SECTIONS=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy
          --section LaunchStats --section WarpStateStats)
BENCH=("$BIN/chai_cuda_bench" --batches 1 --contexts 512 --steps 1)
rc=0
timeout 150 "$NCU" --clock-control none --kernel-name regex:GemvKernel --launch-count 3 \
  "${SECTIONS[@]}" "${BENCH[@]}" >"$OUTDIR/ncu_gemv.txt" 2>&1 || rc=1
timeout 150 "$NCU" --clock-control none --kernel-name regex:PrefillMmaKernel --launch-count 1 \
  "${SECTIONS[@]}" "${BENCH[@]}" >"$OUTDIR/ncu_attention.txt" 2>&1 || rc=1
for f in ncu_gemv ncu_attention; do
  echo "===== $f"
  grep -E '^\s+(Gemv|Prefill)|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|L1/TEX Hit|L2 Hit|Mem Busy|Max Bandwidth|Registers Per|Theoretical Occupancy|Achieved Occupancy|Block Limit|Warp Cycles Per Issued|Shared Memory Configuration Size|Dynamic Shared|Grid Size|Waves Per SM|Stall|est. speedup|OPT|==PROF==|==ERROR==' \
    "$OUTDIR/$f.txt" | head -80
done
exit $rc
