"""The tile sizes the dense backward launches with fit a Hopper GPU's shared memory, checked without a
GPU: Triton compiles the kernels for sm_90 here (in a fresh process, since this one's kernels run in the
interpreter), and its report of the shared memory each program asks for is compared to the 227 KB an
H100 / H200 program may have. The parity tests cannot see this on CPU (the interpreter has no such
limit), and on an H200 (2026-11-29) the fused dK + dV kernel at D = 64, Dv = 130 in float32 asked for
263 KB on the tiles sized by D alone."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the most shared memory one program may use on sm_90 (H100, H200)
HOPPER_SHARED_BYTES = 232448

BENCH = Path(__file__).resolve().parents[2] / "bench"

# bench/kernel_resources.py compiles a kernel as a launch would specialise it (its integer arguments
# divisible by 16 marked so) and reports its resources
COMPILE = r"""
import json, sys
import torch
sys.path.insert(0, sys.argv[2])
from kernel_resources import compile_report
from mnemovision.kernels.attention import triton_impl as ai, triton_sizes

types = {name: "*fp32" for name in ("Q", "K", "V", "Bias", "Lse", "DO", "Delta", "DK", "DVout", "DBias")}
types.update({name: "i32" for name in ("NQ", "M", "D", "DV", "CHUNK", "SPLITS")}, SCALE="fp32")
report = []
for d, dv in json.loads(sys.argv[1]):
    blocks = ai.gpu_blocks(ai.key_side_width(d, dv))
    constants = dict(HAS_BIAS=True, BLOCK_M=blocks["BLOCK_M"], BLOCK_N=blocks["BLOCK_N"], BLOCK_D=triton_sizes.block_d(d),
                     BLOCK_DV=triton_sizes.block_d(dv), PREC=triton_sizes.precision(torch.float32))
    ints = {"NQ": 17, "M": 33, "D": d, "DV": dv, "CHUNK": blocks["BLOCK_M"], "SPLITS": 1}
    resources = compile_report(ai._attn_bwd_dkdv_kernel, constants, ai.FUSED_WARPS, 90, types=types, ints=ints)
    report.append({"d": d, "dv": dv, "block_m": blocks["BLOCK_M"], "shared": resources["shared_b"]})
print(json.dumps(report))
"""


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_fused_key_side_backward_fits_hopper_shared_memory():
    """float32 (the most shared memory): the shape that overflowed, the widest fused one (D = Dv =
    256, MCNet's widths) and the widest on 64 x 64 tiles (D = Dv = 128)."""
    shapes = [(64, 130), (256, 256), (128, 128)]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", COMPILE, json.dumps(shapes), str(BENCH)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(r["d"], r["dv"]) for r in report] == shapes
    # the overflowing shape now takes the 32 x 32 tiles of the widest rows
    assert report[0]["block_m"] == 32 and report[2]["block_m"] == 64
    for row in report:
        assert 0 < row["shared"] <= HOPPER_SHARED_BYTES, row
