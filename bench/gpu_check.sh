#!/usr/bin/env bash
# GPU checks in one go, for a lent GPU machine: Triton vs PyTorch parity (the kernel tests, natively,
# no interpreter) and the GPU benchmarks. Writes logs and JSON under $OUT (default bench/out).
#   bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/gpu_env.txt"

status=0
$PY -m pytest tests/kernels -q -p no:cacheprovider -o addopts="--strict-markers" -rs 2>&1 | tee "$OUT/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
$PY bench/attention.py --device cuda --dtype float16 --json "$OUT/attention_gpu.json" 2>&1 | tee "$OUT/attention_gpu.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
