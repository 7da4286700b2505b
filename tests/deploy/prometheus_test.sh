#!/usr/bin/env bash
# deploy/prometheus/: `promtool check rules` and `promtool test rules` (each
# alert fires on a series built to breach it and stays silent on one built
# not to: chai-alerts.test.yml), `promtool check config` on prometheus.yml,
# and a negative control: a copy of the rules with one threshold raised
# must fail its unit test, so the unit tests do pin the thresholds.
# Exits 77 (skip) without promtool, 1 under CI=true.
set -euo pipefail
SRC="${1:?usage: prometheus_test.sh SOURCE_DIR}"
DIR="${SRC}/deploy/prometheus"
if ! command -v promtool >/dev/null; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: promtool not found (Debian package prometheus; deploy/setup.sh installs it)"
    exit 1
  fi
  echo "SKIP: promtool not found (Debian package prometheus)"
  exit 77
fi
promtool check rules "${DIR}/chai-alerts.yml"
promtool test rules "${DIR}/chai-alerts.test.yml"
promtool check config "${DIR}/prometheus.yml"

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
cp "${DIR}/chai-alerts.test.yml" "${tmp}/"
# KV cache alert at 0.99 instead of 0.9: the 97% series must no longer fire.
sed 's/chai_kv_cache_usage_ratio{job="chai-serve"}\[5m\]) > 0.9/chai_kv_cache_usage_ratio{job="chai-serve"}[5m]) > 0.99/' \
  "${DIR}/chai-alerts.yml" > "${tmp}/chai-alerts.yml"
if cmp -s "${DIR}/chai-alerts.yml" "${tmp}/chai-alerts.yml"; then
  echo "FAIL: negative control did not change the rules (sed pattern out of date)"
  exit 1
fi
if promtool test rules "${tmp}/chai-alerts.test.yml" >/dev/null 2>&1; then
  echo "FAIL: unit tests still pass with the KV-cache threshold raised to 0.99"
  exit 1
fi
echo "PASS: unit tests fail when a threshold changes"
echo OK
