#!/usr/bin/env bash
# Runs the CUDA build-path probe on the GPU machine (or, with no GPU, a dry run
# that checks the no-device paths). Run from anywhere inside the repo:
#
#   bash tests/gpu/probe.sh
#
# Needs the binaries from tests/gpu/build_probe.sh in .carry/gpu (carry it).
# Writes everything to $OUT/probe.txt as it goes (OUT defaults to /tmp/out)
# and prints a summary table last. Finishes in well under 2 minutes: each step
# has a timeout and steps are skipped once the budget (PROBE_BUDGET_S, 105 s)
# is spent. Exit 0 when every step gave what its mode expects.
#
# Mode: "gpu" when nvidia-smi lists a GPU, else "none" (dry run); override
# with PROBE_EXPECT=gpu|none. In gpu mode the probes must pass on the GPU; in
# none mode cuda_probe must exit 3 ("no CUDA device") and probe_loader must
# fall back to the CPU with exit 0.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
LOG="$OUT/probe.txt"
: >"$LOG"
BIN="${PROBE_BIN:-$ROOT/.carry/gpu}"
BUDGET="${PROBE_BUDGET_S:-105}"
SECONDS=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

log() { printf '%s\n' "$*" | tee -a "$LOG"; }
section() { log ""; log "===== [$(printf '%3d' "$SECONDS")s] $*"; }

# ---- summary bookkeeping --------------------------------------------------------
STEPS=()   # "name|expect|rc|status|secs|note"
FAILS=0
record() {  # name expect rc status secs note
  STEPS+=("$1|$2|$3|$4|$5|$6")
  [[ "$4" == FAIL ]] && FAILS=$((FAILS + 1))
  log "-> $1: $4 (rc=$3, expected $2, ${5}s) $6"
}

# run_step NAME EXPECT_RC TIMEOUT_S GREP_PATTERN -- CMD...
# Runs CMD with a timeout, tees its output into the log, and checks the exit
# code and (if non-empty) that the output contains GREP_PATTERN (ERE).
LAST_OUT=""
run_step() {
  local name="$1" expect="$2" tmo="$3" pat="$4"
  shift 5
  local left=$((BUDGET - SECONDS))
  if ((left < 5)); then
    record "$name" "$expect" "-" SKIP 0 "time budget spent"
    return
  fi
  ((tmo > left)) && tmo=$left
  section "$name: $* (timeout ${tmo}s)"
  LAST_OUT="$TMP/step$((${#STEPS[@]} + 1)).txt"
  local t0=$SECONDS rc
  timeout -k 5 "$tmo" "$@" >"$LAST_OUT" 2>&1
  rc=$?
  tee -a "$LOG" <"$LAST_OUT"
  local status=PASS note=""
  if [[ $rc == 124 || $rc == 137 ]]; then
    status=FAIL note="timed out after ${tmo}s"
  elif [[ "$rc" != "$expect" ]]; then
    status=FAIL note="unexpected exit code"
  elif [[ -n "$pat" ]] && ! grep -Eq "$pat" "$LAST_OUT"; then
    status=FAIL note="output lacks /$pat/"
  fi
  record "$name" "$expect" "$rc" "$status" "$((SECONDS - t0))" "$note"
}

# ---- 0. environment ---------------------------------------------------------------
section "environment"
log "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')  host: $(uname -srm)"
log "repo: $ROOT  binaries: $BIN  OUT: $OUT"
if command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  log "nvcc here: $({ command -v nvcc || echo /usr/local/cuda/bin/nvcc; } | head -1) ($( { nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version; } | tail -1))"
fi

MODE="${PROBE_EXPECT:-}"
if [[ -z "$MODE" ]]; then
  if command -v nvidia-smi >/dev/null && timeout 15 nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    MODE=gpu
  else
    MODE=none
  fi
fi
log "mode: $MODE"

# ---- 1. nvidia-smi ----------------------------------------------------------------
if command -v nvidia-smi >/dev/null; then
  run_step nvidia-smi 0 20 "" -- nvidia-smi
  run_step nvidia-smi-query 0 15 "" -- nvidia-smi \
    --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,power.limit,compute_mode,mig.mode.current \
    --format=csv
else
  record nvidia-smi "-" "-" SKIP 0 "nvidia-smi not installed"
fi

# ---- 2. binaries ------------------------------------------------------------------
section "binaries"
BUILT_HERE=""
# The transfer may drop the executable bits; restore them (harmless otherwise).
chmod u+x "$BIN/cuda_probe" "$BIN/probe_loader" 2>/dev/null || true
if [[ ! -x "$BIN/cuda_probe" || ! -x "$BIN/probe_loader" || ! -f "$BIN/libchai_cuda_probe_module.so" ]]; then
  log "carried binaries missing in $BIN (was .carry/gpu carried?)"
  if [[ -x /usr/local/cuda/bin/nvcc ]] && ((BUDGET - SECONDS > 60)); then
    BIN=/tmp/chai_probe_build
    run_step build-on-device 0 50 "" -- env OUTDIR="$BIN" bash tests/gpu/build_probe.sh
    BUILT_HERE=" (BUILT ON THIS MACHINE: carry missing)"
  fi
  # The point is to prove the carried build: results from a local build are
  # useful, but the carry itself failed.
  record carried-binaries "-" "-" FAIL 0 "not in .carry/gpu${BUILT_HERE:+; built here instead}"
  if [[ ! -x "$BIN/cuda_probe" ]]; then
    record binaries 0 1 FAIL 0 "no binaries; run tests/gpu/build_probe.sh and carry .carry/gpu"
  fi
fi
# shellcheck disable=SC2012
ls -l "$BIN" 2>&1 | tee -a "$LOG"
log "carried size: $(du -sh "$BIN" 2>/dev/null | cut -f1)$BUILT_HERE"

# libcublas.so.13 (+ libcublasLt.so.13): the binaries' RUNPATH says
# /usr/local/cuda/lib64; if the loader cannot find them there or in the ld.so
# cache, look where CUDA toolkits and the pip wheels put them.
missing_libs() { ldd "$BIN/cuda_probe" 2>/dev/null | grep -E 'not found' || true; }
if [[ -x "$BIN/cuda_probe" && -n "$(missing_libs)" ]]; then
  log "not resolved: $(missing_libs | tr -s ' \t\n' ' ')"
  CANDS=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64
         /usr/local/cuda-13*/targets/x86_64-linux/lib)
  for py in python3 /opt/torch/.venv/bin/python3; do
    mapfile -t -O "${#CANDS[@]}" CANDS < <(timeout 10 "$py" -c \
      'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null)
  done
  dirs=""
  for lib in libcublas.so.13 libcublasLt.so.13; do
    f=$( { for c in "${CANDS[@]}"; do [[ -d "$c" ]] && timeout 10 find "$c" -maxdepth 3 -name "$lib" 2>/dev/null; done
           timeout 20 find /usr/local /opt /usr/lib -name "$lib" 2>/dev/null; } | head -1)
    [[ -n "$f" && ":$dirs:" != *":$(dirname "$f"):"* ]] && dirs="$dirs:$(dirname "$f")"
  done
  if [[ -n "$dirs" ]]; then
    export LD_LIBRARY_PATH="${dirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  else
    log "libcublas.so.13 not found on this machine"
  fi
fi
for f in cuda_probe libchai_cuda_probe_module.so probe_loader; do
  [[ -e "$BIN/$f" ]] && { log "--- ldd $f"; ldd "$BIN/$f" 2>&1 | tee -a "$LOG"; }
done
if [[ -n "$(missing_libs)" ]]; then
  record libcublas "-" "-" "$([[ $MODE == gpu ]] && echo FAIL || echo INFO)" 0 "unresolved: $(missing_libs | awk '{print $1}' | tr '\n' ' ')"
else
  record libcublas "-" 0 PASS 0 "$(ldd "$BIN/cuda_probe" | awk '/libcublas.so.13/ {print $3}')"
fi

CUOBJDUMP=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
if [[ -x "$CUOBJDUMP" && -x "$BIN/cuda_probe" ]]; then
  run_step cuobjdump-sm90 0 15 "sm_90" -- "$CUOBJDUMP" --list-elf --list-ptx "$BIN/cuda_probe"
fi

# ---- 3. the probes ---------------------------------------------------------------
if [[ -x "$BIN/cuda_probe" ]]; then
  if [[ $MODE == gpu ]]; then
    run_step cuda_probe 0 60 "RESULT probe PASS" -- "$BIN/cuda_probe"
    PROBE_OUT="$LAST_OUT"
  elif [[ -n "$(missing_libs)" ]]; then
    # No libcublas here: a binary linked to it cannot even start (DESIGN.md §8);
    # the dlopen() loader below must still fall back cleanly.
    run_step cuda_probe-no-libcublas 127 20 "libcublas" -- "$BIN/cuda_probe"
  else
    run_step cuda_probe 3 20 "no CUDA device" -- "$BIN/cuda_probe"
    PROBE_OUT="$LAST_OUT"
  fi
  # DESIGN.md §8 rule on every machine: no visible device -> message + exit 3.
  [[ -z "$(missing_libs)" ]] &&
    run_step cuda_probe-no-device 3 20 "no CUDA device" -- env CUDA_VISIBLE_DEVICES= "$BIN/cuda_probe" --quick
fi
if [[ -x "$BIN/probe_loader" ]]; then
  if [[ $MODE == gpu ]]; then
    run_step loader-gpu 0 30 "RESULT loader PASS gpu_path" -- "$BIN/probe_loader" --expect-gpu
  else
    run_step loader-fallback 0 30 "RESULT loader PASS cpu_fallback" -- "$BIN/probe_loader"
  fi
  run_step loader-no-device 0 30 "RESULT loader PASS cpu_fallback" -- env CUDA_VISIBLE_DEVICES= "$BIN/probe_loader"
  run_step loader-no-module 0 15 "RESULT loader PASS cpu_fallback" -- "$BIN/probe_loader" --module /nonexistent/libchai_cuda_probe_module.so
fi

# ---- 4. compute-sanitizer memcheck on the quick probe ------------------------------
SAN=/usr/local/cuda/bin/compute-sanitizer
[[ -x $SAN ]] || SAN=$(command -v compute-sanitizer || true)
if [[ $MODE == gpu && -n "$SAN" && -x "$SAN" && -x "$BIN/cuda_probe" ]]; then
  run_step memcheck 0 60 "ERROR SUMMARY: 0 errors" -- "$SAN" --tool memcheck --error-exitcode 9 \
    "$BIN/cuda_probe" --quick
else
  record memcheck "-" "-" SKIP 0 "$([[ $MODE == gpu ]] && echo "compute-sanitizer not found" || echo "no GPU")"
fi

# ---- 5. summary (also at the end of $LOG) -----------------------------------------
{
  echo ""
  echo "===== SUMMARY (mode=$MODE, ${SECONDS}s, log $LOG)$BUILT_HERE"
  printf '%-24s %-6s %-4s %-6s %5s  %s\n' step status rc expect secs note
  for s in "${STEPS[@]}"; do
    IFS='|' read -r n e r st sec note <<<"$s"
    printf '%-24s %-6s %-4s %-6s %5s  %s\n' "$n" "$st" "$r" "$e" "$sec" "$note"
  done
  if [[ -n "${PROBE_OUT:-}" && -s "${PROBE_OUT:-}" ]] && grep -q '^RESULT ' "$PROBE_OUT"; then
    echo "--- cuda_probe results"
    grep '^RESULT ' "$PROBE_OUT" | sed 's/^RESULT //'
  fi
  echo "OVERALL: $([[ $FAILS == 0 ]] && echo PASS || echo "FAIL ($FAILS step(s))")"
} | tee -a "$LOG"
[[ $FAILS == 0 ]]
