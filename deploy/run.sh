#!/usr/bin/env bash
# Quick start: set up, build, and run the main job: `chai serve` on the
# default model, gRPC on :50051 and Prometheus /metrics on :9090, in the
# foreground (Ctrl-C or SIGTERM drains and exits 0). Extra arguments go to
# `chai serve` (e.g. --port 50052 --api-key-file keys.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"${ROOT}/deploy/setup.sh"
"${ROOT}/deploy/build.sh" "${ROOT}/build"
exec "${ROOT}/build/server/chai" serve \
  --model "${ROOT}/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"
