#!/usr/bin/env bash
# GPU checks in one go, for a lent GPU machine: Triton vs PyTorch parity (the kernel tests, natively,
# no interpreter) and the GPU benchmarks. Writes logs and JSON under $OUT (default bench/out).
#   bash bench/gpu_check.sh [attention] [raster]      (default: both benchmarks)
# The garden data is read from $MNEMOVISION_DATA, else ./.gpu_data (a copy carried to the GPU machine),
# else ../shared/data.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ -z "${MNEMOVISION_DATA:-}" ] && [ -d .gpu_data ]; then export MNEMOVISION_DATA="$PWD/.gpu_data"; fi
PY=${PYTHON:-python3}
benches=("$@")
[ "${#benches[@]}" -gt 0 ] || benches=(attention raster)

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/gpu_env.txt"

status=0
$PY -m pytest tests/kernels -q -p no:cacheprovider -o addopts="--strict-markers" -rs 2>&1 | tee "$OUT/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
for bench in "${benches[@]}"; do
  case "$bench" in
    attention) $PY bench/attention.py --device cuda --dtype float16 --json "$OUT/attention_gpu.json" 2>&1 | tee "$OUT/attention_gpu.log" ;;
    raster) $PY bench/raster.py --device cuda --json "$OUT/raster_gpu.json" 2>&1 | tee "$OUT/raster_gpu.log" ;;
    *) echo "unknown benchmark $bench"; status=1; continue ;;
  esac
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit $status
