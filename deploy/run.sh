#!/usr/bin/env bash
# Quick start: set up, build, and run the main job on the default model.
# (Until `chai serve` lands this runs `chai generate` on a sample prompt.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"${ROOT}/deploy/setup.sh"
"${ROOT}/deploy/build.sh" "${ROOT}/build"
exec "${ROOT}/build/server/chai" generate \
  --model "${ROOT}/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --prompt "${CHAI_PROMPT:-What is the capital of France?}" --chat --max-tokens 64 "$@"
