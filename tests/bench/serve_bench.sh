#!/usr/bin/env bash
# The serving benchmark of issue 4 (docs/PERFORMANCE.md): `chai bench`
# against a local `chai serve` on the default model at concurrency 1, 8 and
# 32, plus `chai generate`'s decode rate on the same prompt length and thread
# count as the single-stream yardstick. Prints each run's JSON and a summary
# table. A benchmark, not a test: run it on an otherwise idle machine.
#
#   tests/bench/serve_bench.sh [BUILD_DIR] [THREADS]
#   CHAI_BENCH_PROMPT=128 CHAI_BENCH_TOKENS=64  prompt and output lengths
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-${ROOT}/build}"
THREADS="${2:-1}"
CHAI="${BUILD}/server/chai"
MODEL="${ROOT}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT_TOKENS="${CHAI_BENCH_PROMPT:-128}"
MAX_TOKENS="${CHAI_BENCH_TOKENS:-64}"
OUT="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "${SERVER_PID}" ]]; then kill "${SERVER_PID}" 2>/dev/null || true; fi
  rm -rf "${OUT}"
}
trap cleanup EXIT

"${CHAI}" serve --model "${MODEL}" --host 127.0.0.1 --port 0 --metrics-port -1 \
  --threads "${THREADS}" >"${OUT}/serve.out" 2>"${OUT}/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 600); do
  grep -q "serving on" "${OUT}/serve.out" 2>/dev/null && break
  sleep 0.1
done
target="$(grep -o 'serving on [^ ]*' "${OUT}/serve.out" | awk '{print $3}' | sed 's/0.0.0.0/127.0.0.1/')"
[[ -n "${target}" ]] || { echo "chai serve did not start"; cat "${OUT}/serve.err"; exit 1; }

bench() {  # concurrency requests -> JSON on stdout
  "${CHAI}" bench --target "${target}" --concurrency "$1" --requests "$2" \
    --prompt-tokens "${PROMPT_TOKENS}" --max-tokens "${MAX_TOKENS}" --json
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Single-stream decode: `chai generate` on a prompt of PROMPT_TOKENS tokens
# (" the" is one token in this vocabulary) alternated with one-stream bench
# runs, so both see the same machine; best of three each.
prompt="$(printf 'the %.0s' $(seq 1 "${PROMPT_TOKENS}"))"
best_gen=0
best_serve=0
for _ in 1 2 3; do
  gen="$("${CHAI}" generate --model "${MODEL}" --prompt "${prompt}" --max-tokens "${MAX_TOKENS}" \
    --ignore-eos --temperature 0 --threads "${THREADS}" --json 2>/dev/null | tail -1 |
    json 'd["timings"]["decode_tokens_per_s"]')"
  serve="$(bench 1 2 | json '1 / d["itl_s"]["mean"]')"
  best_gen="$(python3 -c "print(max(${best_gen}, ${gen}))")"
  best_serve="$(python3 -c "print(max(${best_serve}, ${serve}))")"
done
echo "{\"generate_decode_tokens_per_s\": ${best_gen}, \"serve_decode_tokens_per_s\": ${best_serve}}"

for c in 1 8 32; do
  n=$((c == 1 ? 8 : c * 3))
  bench "${c}" "${n}" >"${OUT}/c${c}.json"
  cat "${OUT}/c${c}.json"
  echo
done
kill -TERM "${SERVER_PID}"
wait "${SERVER_PID}" || true
SERVER_PID=""

python3 - "${OUT}" "${best_gen}" "${best_serve}" "${THREADS}" <<'PY'
import json, sys
out, gen, serve, threads = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
runs = {c: json.load(open(f"{out}/c{c}.json")) for c in (1, 8, 32)}
ms = lambda d: "/".join(f"{d[k] * 1e3:.0f}" for k in ("p50", "p90", "p99"))
print(f"\nthreads {threads}, prompt {runs[1]['prompt_tokens']} tokens, {runs[1]['max_tokens']} output tokens")
print("\n| concurrency | requests ok | output tok/s | TTFT p50/p90/p99 ms | ITL p50/p90/p99 ms |")
print("| --- | --- | --- | --- | --- |")
for c, r in runs.items():
    print(f"| {c} | {r['succeeded']}/{r['requests']} | {r['output_throughput']:.1f} | "
          f"{ms(r['ttft_s'])} | {ms(r['itl_s'])} |")
print(f"\nsingle-stream decode, best of 3 alternated: server (1/mean ITL) {serve:.1f} tok/s, "
      f"chai generate {gen:.1f} tok/s, ratio {serve / gen:.3f}")
print(f"aggregate output throughput c=32 / c=1: "
      f"{runs[32]['output_throughput'] / runs[1]['output_throughput']:.2f}x")
PY
