#!/usr/bin/env bash
# GPU checks in one go, for a lent GPU machine, in three phases: Triton vs PyTorch parity (the kernel
# tests, natively, no interpreter), the GPU benchmarks, then kernel tables of where the time goes
# (bench/raster_profile.py forward+backward of one garden view; bench/attention_profile.py for top-k
# VOS and dense MCNet). Writes logs and JSON under $OUT (default bench/out). Each step is cut at
# STEP_TIMEOUT_S (default 240) seconds.
#   bash bench/gpu_check.sh [attention] [raster]      (default: both)
#   ATTN_K="topk" bash bench/gpu_check.sh attention   (only the attention tests matching -k "topk")
# The garden data is read from $MNEMOVISION_DATA, else ./.gpu_data (a copy carried to the GPU machine),
# else ../shared/data. Wheels carried in ./.whl are installed under /tmp/site: gsplat's CUDA code is
# then compiled in the background (sm_90, MAX_JOBS=12) while the tests run, and with pytest-xdist
# (+ execnet) the tests compile their kernels in 4 processes; the rasterizer
# benchmark then includes gsplat's CUDA rasterizer if the build finished by GSPLAT_WAIT_S (default 420)
# seconds into the script.
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
stamp() { echo "[gpu_check $(date -u +%H:%M:%S), ${SECONDS}s] $*"; }

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/gpu_env.txt"

gsplat_flag=/tmp/gsplat_build_status
rm -f "$gsplat_flag"
if compgen -G ".whl/*.whl" >/dev/null; then  # carried wheels: gsplat, pytest-xdist + execnet (parallel test compiles)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if compgen -G ".whl/gsplat-*.whl" >/dev/null; then
  stamp "building gsplat's CUDA extension in the background"
  (MAX_JOBS=12 TORCH_CUDA_ARCH_LIST=9.0 $PY -c "from gsplat.cuda._backend import _C; assert _C is not None" >"$OUT/gsplat_build.log" 2>&1; echo $? >"$gsplat_flag") &
fi

xdist=()
$PY -c "import xdist" 2>/dev/null && xdist=(-n 4)  # compile the test kernels in parallel
status=0
run_step() {  # run_step NAME CMD...: tee the output to $OUT/NAME.log (at most STEP_TIMEOUT_S seconds), remember a failure
  stamp "start $1"
  timeout "${STEP_TIMEOUT_S:-240}" "${@:2}" 2>&1 | tee "$OUT/$1.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { status=1; stamp "FAILED $1"; }
  stamp "end $1"
}
wants() { [[ " ${benches[*]} " == *" $1 "* ]]; }
# parity tests launch one fixed configuration per kernel (the test_*_autotuned_* tests switch the
# autotuner back on themselves): compiling every candidate is the benchmarks' job
pytest_native=(env MNEMOVISION_TRITON_AUTOTUNE=0 $PY -m pytest "${xdist[@]}" -q -p no:cacheprovider -o addopts="--strict-markers" -rs)

# 1. parity: the kernel tests, natively (no interpreter)
if wants raster; then
  run_step gpu_tests_gaussians "${pytest_native[@]}" tests/kernels/test_gaussians.py tests/kernels/test_backend.py
fi
if wants attention; then
  attn_k=()
  [ -n "${ATTN_K:-}" ] && attn_k=(-k "$ATTN_K")  # e.g. ATTN_K="topk": a subset when device time is short
  run_step gpu_tests_attention "${pytest_native[@]}" tests/kernels/test_attention.py "${attn_k[@]}"
fi
# 2. the benchmarks (the record)
if wants raster; then
  backends=triton
  if [ -n "$(compgen -G '.whl/gsplat-*.whl')" ]; then
    while [ ! -f "$gsplat_flag" ] && [ "$SECONDS" -lt "${GSPLAT_WAIT_S:-420}" ]; do sleep 5; done
    if [ "$(cat "$gsplat_flag" 2>/dev/null)" = "0" ]; then backends=triton,gsplat; else stamp "gsplat not built in time: $(tail -c 600 "$OUT/gsplat_build.log" 2>/dev/null)"; fi
  fi
  STEP_TIMEOUT_S=${RASTER_TIMEOUT_S:-420} run_step raster_gpu $PY bench/raster.py --device cuda --backends "$backends" --json "$OUT/raster_gpu.json"
fi
if wants attention; then
  run_step attention_gpu $PY bench/attention.py --device cuda --dtype float16 --json "$OUT/attention_gpu.json"
fi
# 3. where the time goes (kernel tables)
if wants raster; then
  run_step raster_profile_fwd_bwd $PY bench/raster_profile.py --device cuda --backends triton --backward
fi
if wants attention; then
  run_step attention_profile_topk $PY bench/attention_profile.py --case vos_T20 --top-k 30
  run_step attention_profile_mcnet $PY bench/attention_profile.py --case mcnet --top-k 0
fi
exit $status
