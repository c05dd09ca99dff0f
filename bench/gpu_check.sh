#!/usr/bin/env bash
# GPU checks in one go, for a lent GPU machine, in three phases:
#  1. in parallel (compile-bound, so the machine's cores are used at once): the kernel tests natively
#     (Triton vs PyTorch parity, no interpreter, fixed kernel settings), and the kernel profiles
#     (bench/raster_profile.py forward+backward at C = 3 with the sequential and the batched small-C
#     kernels, at C = 160 with the wide and the batched kernels; bench/attention_profile.py for top-k
#     VOS at selection tiles of 8, 16 and 32 keys and dense MCNet, forward+backward), which compile
#     every autotuner candidate into Triton's disk cache and print the autotuner's timing per
#     candidate (noisy here: the GPU is shared) and the kernel tables;
#  2. one after another, on an otherwise idle GPU: the benchmarks (the record: attention, then the
#     rasterizer), their kernels now compiled, with TRITON_PRINT_AUTOTUNING=1 so the log names each
#     autotuner choice, then
#     bench/launch_overhead.py (host cost per call at tiny shapes, with a Python profile);
#  3. the kernel tables again, alone on the GPU (PROFILE_AGAIN=1, when time allows); then the
#     issues' targets checked against the run's benchmark JSON (bench/targets.py).
# Writes JSON and one log of every step ($OUT/steps.log) under $OUT (default bench/out). Each step is cut at STEP_TIMEOUT_S (default 240).
# QUICK=1, a follow-up on a fresh machine in about 5 minutes: phase 1 runs the benchmarks' Triton
# rows once to compile their autotuner candidates (attention_warm, raster_warm: timings not kept)
# (with SEQ_PROFILE=1 also profiles the one-Gaussian-at-a-time kernels at C = 3, raster_seq_c3: its
# candidates' compiles outlasted 120 s on an H200 beside the tests)
# beside the native parity tests: every Triton test of test_gaussians.py and test_attention.py
# (175 in 210 s with the default XDIST_N=6 on an H200, 2026-11-29: the four failures that run found
# were outside the subset run before), or those matching QUICK_K;
# phase 2 the attention benchmark on ATTN_CASES (default vos_T20:topk,mcnet) without the CPU path,
# the MCNet backward profile with dK and dV in one kernel and in two, the top-k forward profile with
# 1, 4 and 8 thresholds per search step, the rasterizer benchmark at C = 3 (RASTER_CHANNELS) with the
# autotuner on (RASTER_AUTOTUNE=0: its fixed settings, no candidate compiles), the C = 3
# forward+backward kernel table with the tiles started longest list first and in index order, and
# launch_overhead with 500 calls per row.
#   bash bench/gpu_check.sh [attention] [raster]      (default: both)
#   A QUICK call that fits one 600 s device command (every step cut at its limit, worst case ~595 s;
#   about 340 s on an H200, 2026-11-29, with the rasterizer at C = 3 and 160):
#   OUT=$OUT QUICK=1 RASTER_CHANNELS=3,160 STEP_TIMEOUT_S=35 TEST_TIMEOUT_S=240 ATTN_TIMEOUT_S=80 \
#     RASTER_TIMEOUT_S=100 OVERHEAD_TIMEOUT_S=70 GSPLAT_WAIT_S=250 TAIL_LINES=14 bash bench/gpu_check.sh
#   ATTN_K="topk" bash bench/gpu_check.sh attention   (only the kernel tests matching -k "triton and topk")
# Step 0 runs tests/kernels/test_launch.py natively (a few seconds); if the direct launches fail it,
# the rest runs with MNEMOVISION_TRITON_DIRECT_LAUNCH=0.
# The garden data is read from $MNEMOVISION_DATA, else ./.gpu_data (a copy carried to the GPU machine),
# else ../shared/data. Wheels carried in ./.whl are installed under /tmp/site: gsplat's CUDA code is
# then compiled in the background (sm_90, GSPLAT_JOBS=6) during phase 1, and with pytest-xdist
# (+ execnet) the tests run in XDIST_N (default 6) processes; the rasterizer benchmark includes gsplat's CUDA
# rasterizer if the build finished by GSPLAT_WAIT_S (default 300) seconds into the script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# one architecture list for gsplat's background build and the benchmark that loads it: torch's JIT
# extension loader rebuilds when the compile flags differ (in the eleventh session's second call the
# benchmark process rebuilt gsplat's extension and ran out of time)
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
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
if compgen -G ".whl/*.whl" >/dev/null; then  # carried wheels: gsplat, pytest-xdist + execnet (parallel tests)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
wants() { [[ " ${benches[*]} " == *" $1 "* ]]; }
if wants raster && compgen -G ".whl/gsplat-*.whl" >/dev/null; then
  stamp "building gsplat's CUDA extension in the background"
  (MAX_JOBS=${GSPLAT_JOBS:-6} $PY -c "from gsplat.cuda._backend import _C; assert _C is not None" >"$OUT/gsplat_build.log" 2>&1; echo $? >"$gsplat_flag") &
fi

status_dir=$(mktemp -d)
LOG_DIR=${LOG_DIR:-$(mktemp -d)}
run_step() {  # run_step NAME CMD...: output to $LOG_DIR/NAME.log (cut at STEP_TIMEOUT_S seconds), then appended
  # to $OUT/steps.log (one file: a device tool may bring back only a few files); a failure is remembered
  stamp "start $1"
  timeout "${STEP_TIMEOUT_S:-240}" "${@:2}" >"$LOG_DIR/$1.log" 2>&1
  local rc=$?
  [ "$rc" -eq 0 ] || { touch "$status_dir/$1"; stamp "FAILED $1 (rc $rc)"; }
  stamp "end $1"
  { flock 9; { echo "===== $1 (rc $rc, ended at ${SECONDS}s)"; cat "$LOG_DIR/$1.log"; } >>"$OUT/steps.log"; } 9>"$LOG_DIR/.lock"
  tail -n "${TAIL_LINES:-40}" "$LOG_DIR/$1.log"
}

xdist=()
$PY -c "import xdist" 2>/dev/null && xdist=(-n "${XDIST_N:-6}")
# parity tests launch one fixed configuration per kernel (the test_*_autotuned_* tests switch the
# autotuner back on themselves): compiling every candidate is the profiles' job
pytest_native=(env MNEMOVISION_TRITON_AUTOTUNE=0 $PY -m pytest "${xdist[@]}" -q -p no:cacheprovider -o addopts="--strict-markers" -rs)
test_files=()
wants raster && test_files+=(tests/kernels/test_gaussians.py)
wants raster && [ -z "${QUICK:-}" ] && test_files+=(tests/kernels/test_backend.py)
wants attention && test_files+=(tests/kernels/test_attention.py)
test_k="triton${ATTN_K:+ and $ATTN_K}"
[ -n "${QUICK:-}" ] && [ -n "${QUICK_K:-}" ] && test_k="triton and (${QUICK_K})"

# 0. the direct launches (``mnemovision.kernels._launch.Launcher``) checked natively first: should
# they fail here, every later step launches through Triton's JIT instead (and the log says so)
STEP_TIMEOUT_S=${LAUNCH_TEST_TIMEOUT_S:-90} run_step launch_tests $PY -m pytest -q -p no:cacheprovider -o addopts="--strict-markers" tests/kernels/test_launch.py
if [ -f "$status_dir/launch_tests" ]; then
  export MNEMOVISION_TRITON_DIRECT_LAUNCH=0
  stamp "direct launches failed their tests: MNEMOVISION_TRITON_DIRECT_LAUNCH=0 from here on"
fi

# 1. parallel: parity tests + profiles (compiles)
pids=()
STEP_TIMEOUT_S=${TEST_TIMEOUT_S:-200} run_step gpu_tests "${pytest_native[@]}" "${test_files[@]}" -k "$test_k" & pids+=($!)
if wants raster && [ -z "${QUICK:-}" ]; then
  run_step raster_profile_c3 $PY bench/raster_profile.py --device cuda --backends triton --channels 3 --backward --calls 3 --small-c both & pids+=($!)
  run_step raster_profile_c160 $PY bench/raster_profile.py --device cuda --backends triton --channels 160 --backward --calls 3 --wide both & pids+=($!)
fi
if [ -n "${QUICK:-}" ]; then  # beside the tests, compile the benchmarks' autotuner candidates into Triton's disk cache
  wants attention && STEP_TIMEOUT_S=${TEST_TIMEOUT_S:-200} run_step attention_warm $PY bench/attention.py --quick --device cuda --dtype float16 --cases "${ATTN_CASES:-vos_T20:topk,mcnet}" --backends triton & pids+=($!)
  wants raster && [ "${RASTER_AUTOTUNE:-1}" != "0" ] && { STEP_TIMEOUT_S=${TEST_TIMEOUT_S:-200} run_step raster_warm $PY bench/raster.py --quick --device cuda --backends triton --channels "${RASTER_CHANNELS:-3}" & pids+=($!); }
  # the one-Gaussian-at-a-time kernels at C = 3 (not the default), with their one-warp sub-tile
  # candidates: autotuner timings per candidate (the GPU is shared here) and a profile
  wants raster && [ "${SEQ_PROFILE:-0}" = "1" ] && { STEP_TIMEOUT_S=${TEST_TIMEOUT_S:-200} run_step raster_seq_c3 $PY bench/raster_profile.py --device cuda --backends triton --channels 3 --backward --calls 3 --small-c sequential & pids+=($!); }
fi
if wants attention && [ -z "${QUICK:-}" ]; then
  run_step attention_profile_topk $PY bench/attention_profile.py --case vos_T20 --top-k 30 --backward --calls 5 --tiles 8,16,32 & pids+=($!)
  run_step attention_profile_mcnet $PY bench/attention_profile.py --case mcnet --top-k 0 --backward --calls 5 --key-grads both & pids+=($!)
fi
wait "${pids[@]}"

# 2. the benchmarks (the record), alone on the GPU
export TRITON_PRINT_AUTOTUNING=1
# attention first: gsplat's build (background) gets the most time before the rasterizer benchmark
if wants attention; then
  attn_args=(${ATTN_CASES:+--cases "$ATTN_CASES"})
  [ -n "${QUICK:-}" ] && attn_args=(--cases "${ATTN_CASES:-vos_T20:topk,mcnet}" --backends naive,sdpa,triton)
  STEP_TIMEOUT_S=${ATTN_TIMEOUT_S:-200} run_step attention_gpu $PY bench/attention.py --device cuda --dtype float16 "${attn_args[@]}" --json "$OUT/attention_gpu.json"
fi
if wants attention && [ -n "${QUICK:-}" ]; then  # alone on the GPU: dK and dV fused or not; search thresholds per step
  run_step attention_profile_mcnet_bwd $PY bench/attention_profile.py --case mcnet --top-k 0 --backward --calls 10 --key-grads both
  run_step attention_profile_topk_fwd $PY bench/attention_profile.py --case vos_T20 --top-k 30 --calls 10 --probes 1,4,8
fi
if wants raster; then
  backends=triton
  if compgen -G '.whl/gsplat-*.whl' >/dev/null; then
    while [ ! -f "$gsplat_flag" ] && [ "$SECONDS" -lt "${GSPLAT_WAIT_S:-300}" ]; do sleep 3; done
    if [ "$(cat "$gsplat_flag" 2>/dev/null)" = "0" ]; then backends=triton,gsplat; else stamp "gsplat not built in time: $(tail -c 600 "$OUT/gsplat_build.log" 2>/dev/null)"; fi
  fi
  raster_env=()
  channels=${RASTER_CHANNELS:-3,160}
  [ -n "${QUICK:-}" ] && channels=${RASTER_CHANNELS:-3}
  [ "${RASTER_AUTOTUNE:-1}" = "0" ] && raster_env=(env MNEMOVISION_TRITON_AUTOTUNE=0)
  STEP_TIMEOUT_S=${RASTER_TIMEOUT_S:-240} run_step raster_gpu "${raster_env[@]}" $PY bench/raster.py --device cuda --backends "$backends" --channels "$channels" --json "$OUT/raster_gpu.json"
  # the kernels of one C = 3 forward+backward, alone on the GPU (binning, sort, compositor)
  [ -n "${QUICK:-}" ] && run_step raster_profile_c3 "${raster_env[@]}" $PY bench/raster_profile.py --device cuda --backends triton --channels 3 --backward --calls 3 --order both
fi
unset TRITON_PRINT_AUTOTUNING
# host cost per call at tiny shapes (launches, Triton's launcher, wrappers, autograd)
peer=()
[ "$(cat "$gsplat_flag" 2>/dev/null)" = "0" ] && peer=(--gsplat)
calls=2000
[ -n "${QUICK:-}" ] && calls=500
STEP_TIMEOUT_S=${OVERHEAD_TIMEOUT_S:-60} run_step launch_overhead $PY bench/launch_overhead.py --calls "$calls" --cprofile "${peer[@]}" --json "$OUT/launch_overhead.json"
# 3. kernel tables alone on the GPU
if [ -n "${PROFILE_AGAIN:-}" ]; then
  wants raster && run_step raster_profile_alone $PY bench/raster_profile.py --device cuda --backends triton --backward --calls 3
  wants attention && run_step attention_profile_topk_alone $PY bench/attention_profile.py --case vos_T20 --top-k 30
fi
# the issues' targets against this run's benchmark JSON (appended to the step log, never a failed step)
{ echo "===== targets"; timeout 60 $PY bench/targets.py --dir "$OUT" 2>&1; } | tee -a "$OUT/steps.log"
failed=$(ls "$status_dir" | tr "\n" " ")
stamp "done; failed steps: ${failed:-none}"
[ -z "$failed" ]
