#!/usr/bin/env bash
# Configures and builds chai-serve.
#   deploy/build.sh [BUILD_DIR] [extra cmake args...]   (default build/)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-${ROOT}/build}"
shift || true
cmake -S "${ROOT}" -B "${BUILD}" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "${BUILD}" -j"$(nproc)"
