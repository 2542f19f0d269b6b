#!/usr/bin/env bash
# The GPU check of issue #7 (item 6) in one command, at most 8 minutes on one GPU; one result file.
#   bash benchmarks/gpu_check.sh [--device cuda] [--out gpu_check.md] [--smoke] [--data-dir DIR] [--cuda-graphs]
# Runs from the repository root without installing dhclib (PYTHONPATH); needs torch, numpy, pandas, scipy and MNIST
# under --data-dir or $DHC_DATA_DIR. On a lent device machine (no ../shared there): copy MNIST's raw files into an
# ignored folder of the repo (e.g. .gpudata/MNIST/raw), carry it and pass --data-dir .gpudata; carry wheels of any
# missing package as the device tool's notes say. `--device cpu --smoke` is the dry run the tests make.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" benchmarks/gpu_check.py "$@"
