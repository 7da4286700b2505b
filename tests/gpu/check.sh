#!/usr/bin/env bash
# The CUDA backend's check on the GPU machine (DESIGN.md section 9), or its
# CPU dry run. Runs in stages, each writing its results under OUT as it ends:
#   1. nvidia-smi
#   2. ldd of the binaries
#   3. gpu tests            -> OUT/gpu_tests.json (gtest JSON)
#   4. compute-sanitizer memcheck on a short test filter -> OUT/memcheck.txt
#   5. GPU benchmark        -> OUT/bench.json
#   5b. PyTorch baseline    -> OUT/torch.json (GPU mode only)
#   6. a short table        -> stdout and OUT/summary.txt
# Every stage's output is logged to OUT/check.txt; OUT holds at most these 6
# files (the device tool brings back 8).
#
#   bash tests/gpu/check.sh [--dry-run] [--bin DIR] [--out DIR]
#
# --bin: the binaries (default .carry/gpu, made by tests/gpu/build_check.sh).
# --out: results (default $OUT, else /tmp/out).
# --dry-run: no GPU expected: the tests must all skip, the benchmark must say
#   "no CUDA device" (exit 3), the table must print. A ctest (label unit) runs
#   this so the script cannot rot. Without --dry-run the mode is "gpu" when
#   nvidia-smi lists a GPU, else "none" (which checks like --dry-run).
# Budget: CHECK_BUDGET_S (default 270) for all stages; each has a timeout and
# is skipped once the budget is spent. Exit 0 when every stage gave what its
# mode expects.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.carry/gpu"
OUTDIR="${OUT:-/tmp/out}"
MODE=""
while (($#)); do
  case "$1" in
    --dry-run) MODE=none ;;
    --bin) BIN="$2"; shift ;;
    --out) OUTDIR="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUTDIR"
LOG="$OUTDIR/check.txt"
# Each step's own output, also appended to check.txt. Kept out of OUT because
# the device tool returns at most 8 files from it.
STEPS_DIR="$(mktemp -d)"
trap 'rm -rf "$STEPS_DIR"' EXIT
: >"$LOG"
BUDGET="${CHECK_BUDGET_S:-270}"
SECONDS=0

log() { printf '%s\n' "$*" | tee -a "$LOG"; }
section() { log ""; log "===== [$(printf '%3d' "$SECONDS")s] $*"; }

STEPS=()
FAILS=0
record() {  # name status secs note
  STEPS+=("$1|$2|$3|$4")
  [[ "$2" == FAIL ]] && FAILS=$((FAILS + 1))
  log "-> $1: $2 (${3}s) $4"
}

# run_step NAME EXPECT_RC TIMEOUT OUTFILE -- CMD...: runs CMD with a timeout,
# output to OUTFILE and the log; sets STEP_RC.
STEP_RC=0
run_step() {
  local name="$1" expect="$2" tmo="$3" out="$4"
  shift 5
  local left=$((BUDGET - SECONDS))
  if ((left < 10)); then
    record "$name" SKIP 0 "time budget spent"
    STEP_RC=-1
    return 1
  fi
  ((tmo > left)) && tmo=$left
  section "$name: $* (timeout ${tmo}s)"
  local t0=$SECONDS
  timeout -k 5 "$tmo" "$@" >"$out" 2>&1
  STEP_RC=$?
  tee -a "$LOG" <"$out" | tail -n 40
  if [[ $STEP_RC == 124 || $STEP_RC == 137 ]]; then
    record "$name" FAIL $((SECONDS - t0)) "timed out after ${tmo}s"
  elif [[ "$STEP_RC" != "$expect" ]]; then
    record "$name" FAIL $((SECONDS - t0)) "exit $STEP_RC, expected $expect"
  else
    return 0
  fi
  return 1
}

section "environment"
log "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')  host: $(uname -srm)  bin: $BIN  out: $OUTDIR"
if [[ -z "$MODE" ]]; then
  if command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    MODE=gpu
  else
    MODE=none
  fi
fi
log "mode: $MODE"
chmod u+x "$BIN"/chai_cuda_test "$BIN"/chai_cuda_bench 2>/dev/null || true
for f in libchai_cuda_backend.so chai_cuda_test chai_cuda_bench; do
  if [[ ! -e "$BIN/$f" ]]; then
    record binaries FAIL 0 "$BIN/$f missing (run tests/gpu/build_check.sh, carry .carry/gpu)"
    MISSING=1
  fi
done

# ---- 1. nvidia-smi ----------------------------------------------------------------
if command -v nvidia-smi >/dev/null; then
  if run_step nvidia-smi 0 30 "$STEPS_DIR/nvidia-smi.txt" -- nvidia-smi; then
    timeout 15 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,power.limit,mig.mode.current \
      --format=csv >>"$STEPS_DIR/nvidia-smi.txt" 2>&1
    record nvidia-smi PASS 0 "$(timeout 10 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  fi
else
  record nvidia-smi "$([[ $MODE == gpu ]] && echo FAIL || echo SKIP)" 0 "nvidia-smi not installed"
fi

# ---- 2. libraries -----------------------------------------------------------------
# libcublas.so.13: RUNPATH says /usr/local/cuda/lib64; else look where CUDA
# toolkits and the nvidia pip wheels put it.
if [[ -z "${MISSING:-}" ]] && ldd "$BIN/chai_cuda_bench" 2>/dev/null | grep -q 'not found'; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
           $(timeout 20 find /usr/local /opt /usr/lib -name libcublas.so.13 -printf '%h\n' 2>/dev/null | head -3); do
    if [[ -e "$d/libcublas.so.13" ]]; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
      break
    fi
  done
fi
{
  for f in libchai_cuda_backend.so chai_cuda_test chai_cuda_bench; do
    echo "--- ldd $f"
    ldd "$BIN/$f" 2>&1
  done
} >"$STEPS_DIR/ldd.txt"
cat "$STEPS_DIR/ldd.txt" >>"$LOG"
if grep -q 'not found' "$STEPS_DIR/ldd.txt"; then
  record libraries "$([[ $MODE == gpu ]] && echo FAIL || echo INFO)" 0 \
    "unresolved: $(grep 'not found' "$STEPS_DIR/ldd.txt" | awk '{print $1}' | sort -u | tr '\n' ' ')"
else
  record libraries PASS 0 "$(grep -m1 'libcublas.so.13 =>' "$STEPS_DIR/ldd.txt" | awk '{print $3}')"
fi

# ---- 3. gpu tests -----------------------------------------------------------------
export CHAI_CUDA_MODULE="$BIN/libchai_cuda_backend.so"
TESTS_JSON="$OUTDIR/gpu_tests.json"
gtest_counts() {  # prints "tests failures skipped" from a gtest JSON file
  python3 - "$1" <<'PY' 2>/dev/null || echo "? ? ?"
import json, sys
d = json.load(open(sys.argv[1]))
skipped = sum(1 for s in d.get("testsuites", []) for t in s.get("testsuite", [])
              if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN")
print(d.get("tests", 0), d.get("failures", 0), skipped)
PY
}
if [[ -z "${MISSING:-}" ]]; then
  if [[ $MODE == gpu ]]; then
    # On the GPU a skip is a failure: the fixture fails instead of skipping.
    run_step gpu-tests 0 150 "$STEPS_DIR/gpu_tests.txt" -- env CHAI_REQUIRE_GPU=1 \
      "$BIN/chai_cuda_test" --gtest_output="json:$TESTS_JSON"
  else
    run_step gpu-tests 0 60 "$STEPS_DIR/gpu_tests.txt" -- "$BIN/chai_cuda_test" \
      --gtest_output="json:$TESTS_JSON"
  fi
  rc=$STEP_RC
  read -r n_tests n_fail n_skip < <(gtest_counts "$TESTS_JSON")
  note="$n_tests tests, $n_fail failed, $n_skip skipped"
  if [[ $rc == 0 ]]; then
    if [[ $MODE == gpu && "$n_skip" != 0 ]]; then
      record gpu-tests FAIL 0 "$note (nothing may skip on a GPU)"
    elif [[ $MODE != gpu && "$n_skip" != "$n_tests" ]]; then
      record gpu-tests FAIL 0 "$note (without a GPU every test must skip)"
    else
      record gpu-tests PASS 0 "$note"
    fi
  fi
  # The forward tests' logit differences, for the table.
  grep -E 'positions: top-1' "$STEPS_DIR/gpu_tests.txt" >"$STEPS_DIR/forward_diffs.txt" 2>/dev/null || true
fi

# ---- 4. compute-sanitizer memcheck -------------------------------------------------
SAN=/usr/local/cuda/bin/compute-sanitizer
[[ -x $SAN ]] || SAN=$(command -v compute-sanitizer || true)
if [[ $MODE == gpu && -n "$SAN" && -x "$SAN" && -z "${MISSING:-}" ]]; then
  if run_step memcheck 0 75 "$OUTDIR/memcheck.txt" -- env CHAI_REQUIRE_GPU=1 "$SAN" --tool memcheck \
      --error-exitcode 9 "$BIN/chai_cuda_test" \
      --gtest_filter='CudaOpsTest.RmsNorm*:CudaOpsTest.Elementwise*:CudaOpsTest.Rope*:CudaAttentionTest.RaggedGqa*:CudaAttentionTest.Identity*'; then
    if grep -q "ERROR SUMMARY: 0 errors" "$OUTDIR/memcheck.txt"; then
      record memcheck PASS 0 "0 errors"
    else
      record memcheck FAIL 0 "no clean ERROR SUMMARY"
    fi
  fi
else
  record memcheck SKIP 0 "$([[ $MODE == gpu ]] && echo "compute-sanitizer not found" || echo "no GPU")"
fi

# ---- 5. benchmark -----------------------------------------------------------------
if [[ -z "${MISSING:-}" ]]; then
  if [[ $MODE == gpu ]]; then
    # Full run if the budget allows, else the quick shape.
    left=$((BUDGET - SECONDS))
    args=(--json "$OUTDIR/bench.json")
    ((left < 100)) && args+=(--quick)
    if run_step bench 0 150 "$STEPS_DIR/bench.txt" -- "$BIN/chai_cuda_bench" "${args[@]}"; then
      record bench PASS 0 "$( ((left < 100)) && echo "quick shape (budget)" || echo "LLaMA-7B shape")"
    fi
  else
    if run_step bench 3 30 "$STEPS_DIR/bench.txt" -- "$BIN/chai_cuda_bench"; then
      if grep -q "no CUDA device" "$STEPS_DIR/bench.txt"; then
        record bench PASS 0 "no CUDA device (exit 3), as expected without a GPU"
      else
        record bench FAIL 0 "exit 3 without the 'no CUDA device' message"
      fi
    fi
  fi
fi

# ---- 5b. PyTorch baseline ----------------------------------------------------------
# The same shape in plain PyTorch (fp16, SDPA, cuBLAS) on the same GPU in the same
# run, so the C++ numbers come with a baseline ratio. GPU mode only.
if [[ $MODE == gpu ]]; then
  if python3 -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1; then
    left=$((BUDGET - SECONDS))
    targs=(--json "$OUTDIR/torch.json")
    [[ -f "$OUTDIR/bench.json" ]] && grep -q '"layers": 8' "$OUTDIR/bench.json" && targs+=(--quick)
    if run_step torch 0 150 "$STEPS_DIR/torch.txt" -- env PYTHONUNBUFFERED=1 python3 \
        "$ROOT/tests/gpu/torch_baseline.py" "${targs[@]}"; then
      record torch PASS 0 "$(head -1 "$STEPS_DIR/torch.txt" | sed 's/^device: //')"
    fi
  else
    record torch SKIP 0 "python3 with CUDA PyTorch not found"
  fi
fi

# ---- 6. summary -------------------------------------------------------------------
{
  echo ""
  echo "===== SUMMARY (mode=$MODE, ${SECONDS}s, results in $OUTDIR)"
  printf '%-12s %-6s %5s  %s\n' stage status secs note
  for s in "${STEPS[@]}"; do
    IFS='|' read -r n st sec note <<<"$s"
    printf '%-12s %-6s %5s  %s\n' "$n" "$st" "$sec" "$note"
  done
  if [[ -s "$STEPS_DIR/forward_diffs.txt" ]]; then
    echo "--- forward pass, CUDA vs CPU"
    cat "$STEPS_DIR/forward_diffs.txt"
  fi
  if [[ -s "$STEPS_DIR/bench.txt" && $MODE == gpu ]]; then
    echo "--- benchmark"
    grep -E '^(device|d2d|weights|batch|[0-9]+ |TTFT|breakdown|CHAI K|total)' "$STEPS_DIR/bench.txt"
  fi
  if [[ -s "$STEPS_DIR/torch.txt" && $MODE == gpu ]]; then
    echo "--- PyTorch baseline (fp16, SDPA)"
    grep -E '^(device|d2d|weights|batch|[0-9]+ |TTFT|total)' "$STEPS_DIR/torch.txt"
    if [[ -s "$OUTDIR/bench.json" && -s "$OUTDIR/torch.json" ]]; then
      python3 "$ROOT/tests/gpu/compare_baseline.py" "$OUTDIR/bench.json" "$OUTDIR/torch.json" 2>&1
    fi
  fi
  echo "OVERALL: $([[ $FAILS == 0 ]] && echo PASS || echo "FAIL ($FAILS stage(s))")"
} | tee "$OUTDIR/summary.txt" | tee -a "$LOG"
[[ $FAILS == 0 ]]
