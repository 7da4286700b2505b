#!/usr/bin/env bash
# Runs every libFuzzer binary (*_fuzzer) under BUILD_DIR for SECONDS each.
#
#   tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS
#
# A fuzzer named <thing>_fuzzer is seeded from tests/fuzz/<thing>/ when that
# directory exists. New inputs go to a scratch corpus under BUILD_DIR, never
# into the checked-in seeds, and crash/leak/timeout reproducers to
# BUILD_DIR/fuzz-artifacts/<thing>/. Exits non-zero if any fuzzer finds a
# crash (or fails to start), or if no fuzzer binary is found.
# Build the binaries with: CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja \
#   -DCHAI_BUILD_FUZZERS=ON -DCHAI_BUILD_SERVER=OFF -DCHAI_BUILD_TESTS=OFF \
#   -DCHAI_BUILD_BENCHMARKS=OFF && ninja -C build-fuzz
set -euo pipefail

if [[ $# -ne 2 || ! -d "$1" || ! "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
seconds=$2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

mapfile -t fuzzers < <(find "$build_dir" -type f -name '*_fuzzer' -perm -u+x | sort)
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  echo "no *_fuzzer binaries under $build_dir (configure with -DCHAI_BUILD_FUZZERS=ON)" >&2
  exit 1
fi

failed=()
for bin in "${fuzzers[@]}"; do
  name=$(basename "$bin")
  thing=${name%_fuzzer}
  corpus="$build_dir/fuzz-corpus/$thing"
  artifacts="$build_dir/fuzz-artifacts/$thing"
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus")
  [[ -d "$repo/tests/fuzz/$thing" ]] && dirs+=("$repo/tests/fuzz/$thing")
  # A dictionary next to the seeds (tests/fuzz/<thing>.dict) helps with magic strings.
  dict=()
  [[ -f "$repo/tests/fuzz/$thing.dict" ]] && dict=("-dict=$repo/tests/fuzz/$thing.dict")
  echo "=== $name: ${seconds}s, seeds: ${dirs[*]:1}"
  # -max_len: 64 KiB holds a small model's header plus a few tensors; larger
  # inputs only slow the fuzzer. -timeout: a single input taking 10 s is a
  # hang (a reader must be linear in its input). The first directory receives
  # new corpus entries.
  log="$build_dir/fuzz-$thing.log"
  rc=0
  "$bin" "${dirs[@]}" "${dict[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=65536 -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    >"$log" 2>&1 || rc=$?
  grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==[0-9]+==ERROR|SUMMARY|Test unit written|artifact_prefix)' \
    "$log" || true
  if [[ $rc -ne 0 ]]; then
    echo "!!! $name exited $rc; log: $log, reproducers: $artifacts/" >&2
    failed+=("$name")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzers with findings: ${failed[*]}" >&2
  exit 1
fi
echo "all ${#fuzzers[@]} fuzzer(s) ran ${seconds}s without findings"
