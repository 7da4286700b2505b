#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (the README's test command;
# CI runs exactly this through .ci/run). Prints the time of each stage.
#
# Stages: setup -> build (Release, warnings as errors) -> unit/golden tests ->
# ASan+UBSan build and tests of engine + kernels -> bounded libFuzzer runs.
#   CHAI_FUZZ_SECONDS=N   seconds per fuzzer (default 60)
#   CHAI_SKIP_SANITIZE=1  skip the sanitizer stage (local iteration only)
#   CHAI_SKIP_FUZZ=1      skip the fuzz stage (local iteration only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="$(nproc)"
declare -a STAGES=()

stage() {
  local name="$1"; shift
  local t0=$SECONDS
  printf '\n===== stage: %s\n' "${name}"
  "$@"
  local dt=$((SECONDS - t0))
  STAGES+=("$(printf '%-12s %5ss' "${name}" "${dt}")")
  printf '===== stage %s done in %ss\n' "${name}" "${dt}"
}

do_setup() { "${ROOT}/deploy/setup.sh"; }

do_build() {
  "${ROOT}/deploy/build.sh" "${ROOT}/build"
}

do_tests() {
  ctest --test-dir "${ROOT}/build" --output-on-failure -j"${JOBS}" --timeout 900
}

do_sanitize() {
  [[ "${CHAI_SKIP_SANITIZE:-0}" == "1" ]] && { echo "skipped"; return; }
  cmake -S "${ROOT}" -B "${ROOT}/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCHAI_SANITIZE=ON -DCHAI_BUILD_BENCHMARKS=OFF >/dev/null
  # The engine and kernels tests: everything but the CLI, which is a thin
  # layer over them and is covered by the Release run.
  cmake --build "${ROOT}/build-asan" -j"${JOBS}"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "${ROOT}/build-asan" --output-on-failure -j"${JOBS}" --timeout 1800 \
      -L 'kernels|engine|model|tokenizer|sampling|golden|unit'
}

do_fuzz() {
  [[ "${CHAI_SKIP_FUZZ:-0}" == "1" ]] && { echo "skipped"; return; }
  CC=clang CXX=clang++ cmake -S "${ROOT}" -B "${ROOT}/build-fuzz" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAI_BUILD_FUZZERS=ON -DCHAI_BUILD_TESTS=OFF \
    -DCHAI_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "${ROOT}/build-fuzz" -j"${JOBS}" --target chai_fuzzers
  "${ROOT}/tests/fuzz/run_fuzzers.sh" "${ROOT}/build-fuzz" "${CHAI_FUZZ_SECONDS:-60}"
}

stage setup do_setup
stage build do_build
stage tests do_tests
stage sanitize do_sanitize
stage fuzz do_fuzz

printf '\n===== stage times\n'
printf '%s\n' "${STAGES[@]}"
printf 'total        %5ss\n' "${SECONDS}"
