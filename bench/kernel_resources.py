"""Registers, spills and occupancy of the Triton kernels for a GPU architecture, without a GPU.

    python bench/kernel_resources.py [--arch 90] [--kernels raster,attention] [--channels 3,160]

Compiles each kernel configuration for the target (Triton's own compiler, and its bundled ``ptxas -v``
for the resource report) and prints a table: registers per thread, spill stores and loads, shared
memory, and how many programs (and warps) fit on one SM by registers (65,536 per SM), and whether ptxas had to
serialize the kernel's Hopper matrix multiplies (``wgmma_serial``: its advisory C7515, where each
wgmma waits for the previous one to finish instead of overlapping it). Register pressure decides
how many tiles an SM works on at once, so a candidate that spills or fits one program per SM is
slow whatever the GPU; the table says which before device time is spent. Must run without
TRITON_INTERPRET (the kernels have to be compiled, not interpreted). Compilers differ: to see what
the GPU machine's Triton makes of the kernels, install that version beside the project's
(``pip install --target /tmp/t36 triton==3.6.0``) and run with ``PYTHONPATH=/tmp/t36``; the table's
header names the Triton that compiled it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

REGISTERS_PER_SM = 65536
# the integer arguments of one garden view (648 x 420, 41 x 27 tiles, 138,766 Gaussians)
GARDEN_INTS = {"H": 420, "W": 648, "TILES_X": 41, "N_TILES": 1107, "VN": 138766, "NF": 138766, "NPIX": 272160}
SCALARS = ("H", "W", "TILES_X", "N_TILES", "C", "OUT_C", "VN", "NF", "TILE0", "ROW0", "UNIT", "NPIX")
INT64_POINTERS = ("Offsets", "FlatIds", "RowStart", "TileOrder")
INT32_POINTERS = ("Stops",)


def signature(fn, constants: dict, types: dict | None = None) -> dict:
    """Triton signature: ``types`` where given, else compositor conventions (pointers fp32, ids
    int64, the shape scalars i32)."""
    sig = {}
    for name in fn.arg_names:
        if name in constants:
            sig[name] = "constexpr"
        elif types and name in types:
            sig[name] = types[name]
        elif name in SCALARS:
            sig[name] = "i32"
        else:
            sig[name] = "*i64" if name in INT64_POINTERS else "*i32" if name in INT32_POINTERS else "*fp32"
    return sig


def ptxas_report(ptx: str, arch: int) -> dict:
    import triton

    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as handle:
        handle.write(ptx)
    try:
        out = subprocess.run([str(ptxas), f"-arch=sm_{arch}a" if arch >= 90 else f"-arch=sm_{arch}", "-v", handle.name, "-o", os.devnull], capture_output=True, text=True, check=True).stderr
    finally:
        os.unlink(handle.name)
    regs = re.search(r"Used (\d+) registers", out)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
    return {
        "registers": int(regs.group(1)) if regs else -1, "spill_stores": int(spills.group(1)) if spills else 0, "spill_loads": int(spills.group(2)) if spills else 0,
        # ptxas advisory C7515: the kernel's Hopper matrix multiplies (wgmma) wait for each other
        "wgmma_serial": "yes" if "wgmma.mma_async instructions are serialized" in out else "no",
    }


def sass_counts(cubin: bytes) -> dict:
    """Static instruction counts of the compiled kernel (Triton's bundled ``nvdisasm``): all
    instructions, block barriers (``BAR``: each a stall of every warp of the program, as in a
    cross-warp reduction), warp shuffles and global atomics/reductions (``ATOM``/``RED``). Counted in
    the code, not per executed iteration: a loop body counts once."""
    import triton

    nvdisasm = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as handle:
        handle.write(cubin)
    try:
        text = subprocess.run([str(nvdisasm), "-c", handle.name], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)
    ops = re.findall(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9]*)", text)
    return {"sass": len(ops), "bar": ops.count("BAR"), "shfl": ops.count("SHFL"), "atom": sum(op in ("ATOM", "ATOMG", "RED", "REDG") for op in ops)}


def compile_report(fn, constants: dict, num_warps: int, arch: int, types: dict | None = None, num_stages: int = 3, ints: dict | None = None, maxnreg: int | None = None) -> dict:
    """Compile one configuration and report its resources. ``ints`` holds the integer arguments of
    the shape being modelled: like a real launch, those divisible by 16 are specialised as such (this
    decides vector loads and asynchronous copies, so registers and shared memory too)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = signature(fn, constants, types)
    # as a launch on torch tensors would specialise: pointers 16-byte aligned, integers divisible by 16 marked
    ints = ints or {}
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(fn.arg_names) if sig[name].startswith("*") or (name in ints and ints[name] % 16 == 0)}
    source = ASTSource(fn, signature=sig, constexprs=constants, attrs=attrs)
    options = {"num_warps": num_warps, "num_stages": num_stages, **({"maxnreg": maxnreg} if maxnreg else {})}
    kernel = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    report = ptxas_report(kernel.asm["ptx"], arch)
    threads = 32 * num_warps
    report["programs_per_sm"] = REGISTERS_PER_SM // max(1, report["registers"] * threads)
    report["warps_per_sm"] = report["programs_per_sm"] * num_warps
    report["shared_b"] = kernel.metadata.shared
    report.update(sass_counts(kernel.asm["cubin"]))
    return report


def config_label(config, prefix: str = "") -> str:
    """A candidate's settings for the table: ``prefix``, its keyword values and any register cap."""
    cap = getattr(config, "maxnreg", None)
    values = " ".join(f"{k}={v}" for k, v in config.kwargs.items())
    return " ".join(part for part in (prefix, values, f"maxnreg={cap}" if cap else "") if part)


def report_row(kernel: str, c, config: str, fn, constants: dict, num_warps: int, arch: int, **compile_args) -> dict:
    """One table row, printed as it comes (compiles take seconds each): ``fn`` compiled by
    ``compile_report`` with ``constants`` on ``num_warps`` warps; ``config`` labels it."""
    row = {"kernel": kernel, "C": c, "config": config, "warps": num_warps}
    row.update(compile_report(fn, constants, num_warps, arch, **compile_args))
    print(row, flush=True)
    return row


def config_row(kernel: str, c: int, fn, config, constants: dict, arch: int) -> dict:
    """One table row: a compositor kernel compiled with ``config`` and ``constants`` at the garden shape."""
    return report_row(
        kernel, c, config_label(config), fn, {**constants, **config.kwargs}, config.num_warps, arch,
        num_stages=config.num_stages, ints=dict(GARDEN_INTS, C=c, OUT_C=c), maxnreg=config.maxnreg,
    )


def raster_rows(channels: list[int], arch: int) -> list[dict]:
    from mnemovision.kernels.gaussians import triton_impl as ti
    from mnemovision.kernels.gaussians import triton_seq as ts
    from mnemovision.kernels.gaussians import triton_wide as tw

    rows = []
    for c in channels:
        small = c if 0 < c <= ti.SMALL_C_MAX else 0
        wide = c > ts.MAX_CHANNELS
        # the batched kernels (the fallback paths)
        for which, fn, small_c, candidates in (("fwd", ti._composite_fwd_kernel, ti._FWD_SMALL_C_CONFIGS, ti._FWD_MATMUL_CONFIGS), ("bwd", ti._composite_bwd_kernel, ti._BWD_SMALL_C_CONFIGS, ti._BWD_MATMUL_CONFIGS)):
            constants = dict(SHARED_FEATS=True, SMALL_C=small, HAS_DEPTH=False, TILE=16, ORDERED=True, **({"ABSGRAD": False} if which == "bwd" else {}))
            rows += [config_row(f"composite_{which}", c, fn, config, constants, arch) for config in ti._pruner(small_c, candidates)([], {}, SMALL_C=small)]
        if wide:  # the wide path's matmul passes
            for which, fn, configs in (("wide_compose", tw._compose_kernel, tw.compose_configs()), ("wide_dots", tw._dots_kernel, tw.dots_configs()),
                                       ("wide_features", tw._feature_grad_kernel, tw.feature_configs())):
                rows += [config_row(which, c, fn, config, {"SHARED_FEATS": True}, arch) for config in configs]
        # the one-Gaussian-at-a-time kernels: for C <= 4, and (WIDE, no channels) as the walks of the wide path
        for which, fn in (("fwd", ts._seq_fwd_kernel), ("bwd", ts._seq_bwd_kernel)):
            constants = dict(SHARED_FEATS=True, NCH=0 if wide else c, HAS_DEPTH=False, WIDE=wide, **({"ABSGRAD": False} if which == "bwd" else {}))
            rows += [config_row(f"seq_{which}", c, fn, config, constants, arch) for config in ts.configs(backward=which == "bwd")]
    return rows


# the dense readouts of ``bench/attention.py`` (fp16): MCNet, the VOS readout at T = 20, M3
DENSE_SHAPES = {
    "mcnet": {"NQ": 16384, "M": 1024, "D": 256, "DV": 256},
    "vos_T20": {"NQ": 1620, "M": 32400, "D": 64, "DV": 512},
    "m3": {"NQ": 4096, "M": 4096, "D": 160, "DV": 768},
}


def attention_rows(arch: int) -> list[dict]:
    """The dense forward's autotune candidates at the benchmark's dense shapes (``DENSE_SHAPES``),
    the backward's key-side kernels at the MCNet shape (D = Dv = 256, fp16) and the top-k selection
    program's candidates at vos_T20 (M = 32400, top-k 30, D = 64; the tile size memory_attention
    picks there, and 32)."""
    import triton

    from mnemovision.kernels.attention import triton_impl as ai
    from mnemovision.kernels.attention import triton_sizes
    from mnemovision.kernels.attention import triton_topk as tk

    rows = []
    fwd_types = {"Q": "*fp16", "K": "*fp16", "V": "*fp16", "Bias": "*fp32", "Out": "*fp16", "Lse": "*fp32", "NQ": "i32", "M": "i32", "D": "i32", "DV": "i32", "SCALE": "fp32"}
    for case, shape in DENSE_SHAPES.items():
        block_d = triton_sizes.block_d(shape["D"])
        for config in ai._prune_fwd(ai._fwd_configs(), {"DV": shape["DV"]}, BLOCK_D=block_d):
            constants = dict(HAS_BIAS=False, BLOCK_D=block_d, PREC="tf32", STORE_LSE=True, **config.kwargs)
            rows.append(report_row(
                f"attn_fwd {case}", "-", f"{config_label(config)} stages={config.num_stages}", ai._attn_fwd_kernel, constants, config.num_warps, arch,
                types=fwd_types, num_stages=config.num_stages, ints=shape,
            ))
    # the dense backward's key side at MCNet (BLOCK_M = BLOCK_N = 32 as launched for D > 128): dK and dV
    # in one kernel (``FUSE_KEY_GRADS``) on 4 / 8 warps beside the two kernels it replaces
    bwd_types = {name: "*fp16" for name in ("Q", "K", "V", "DO", "DQ")}
    bwd_types.update({name: "*fp32" for name in ("Bias", "Lse", "Delta", "DK", "DVout", "DBias")})
    bwd_types.update({name: "i32" for name in ("NQ", "M", "D", "DV", "CHUNK", "SPLITS")}, SCALE="fp32")
    bwd_ints = {"NQ": 16384, "M": 1024, "D": 256, "DV": 256, "CHUNK": 1824, "SPLITS": 9}
    blocks = dict(HAS_BIAS=False, BLOCK_M=32, BLOCK_N=32, BLOCK_D=256, PREC="tf32")
    for name, fn, block_dv, warps in (("attn_bwd_dkdv mcnet", ai._attn_bwd_dkdv_kernel, 256, 8), ("attn_bwd_dkdv mcnet", ai._attn_bwd_dkdv_kernel, 256, 4),
                                      ("attn_bwd_dk mcnet", ai._attn_bwd_dk_kernel, 128, 4), ("attn_bwd_dv mcnet", ai._attn_bwd_dv_kernel, 128, 4),
                                      ("attn_bwd_dq mcnet", ai._attn_bwd_dq_kernel, 128, 4)):
        types = {k: v for k, v in bwd_types.items() if k in fn.arg_names}
        rows.append(report_row(name, "-", f"BLOCK_M=32 BLOCK_N=32 BLOCK_DV={block_dv}", fn, dict(blocks, BLOCK_DV=block_dv), warps, arch, types=types, ints=bwd_ints))
    sel_types = {
        "Q": "*fp16", "K": "*fp16", "V": "*fp16", "Bias": "*fp32", "TileMax": "*fp32", "Idx": "*i64", "Out": "*fp16", "Lse": "*fp32",
        "NQ": "i32", "M": "i32", "D": "i32", "DV": "i32", "NT": "i32", "KT": "i32", "TOPK": "i32", "SCALE": "fp32",
    }
    # the tile size memory_attention picks at vos_T20, and 32 (the size before it was chosen per shape)
    for tile in sorted({tk._tile_size(32400, 30), 32}):
        n_tiles = triton.cdiv(32400, tile)
        block_t = triton.next_power_of_2(n_tiles)
        for config in tk._select_tuned.configs:
            # the selection with the readout of Dv = 512 values fused, as memory_attention launches it
            constants = dict(HAS_BIAS=False, READOUT=True, TILE_=tile, BLOCK_T=block_t, BLOCK_KT=32, PROBES=tk.SEARCH_PROBES, STORE_LSE=True,
                             **tk._launch_sizes(30, 64, 512), **config.kwargs)
            rows.append(report_row(
                "topk_select vos_T20", "-", config_label(config, f"TILE={tile} BLOCK_T={block_t}"), tk._select_kernel, constants, config.num_warps, arch,
                types=sel_types, ints={"NQ": 1620, "M": 32400, "D": 64, "DV": 512, "NT": n_tiles, "KT": 30, "TOPK": 30}, maxnreg=config.maxnreg,
            ))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100)")
    parser.add_argument("--kernels", default="raster,attention")
    parser.add_argument("--channels", default="3,160", help="compositor channel counts")
    args = parser.parse_args()
    from mnemovision.kernels import triton_interpreter_enabled

    if triton_interpreter_enabled():
        raise SystemExit("unset TRITON_INTERPRET: the kernels must be compiled")
    wanted = args.kernels.split(",")
    rows = raster_rows([int(c) for c in args.channels.split(",")], args.arch) if "raster" in wanted else []
    if "attention" in wanted:
        rows += attention_rows(args.arch)
    import triton

    print(f"\ncompiled for sm_{args.arch} by Triton {triton.__version__} ({Path(triton.__file__).parent})")
    print_table(rows, ["kernel", "C", "config", "warps", "registers", "spill_stores", "spill_loads", "shared_b", "programs_per_sm", "warps_per_sm", "sass", "bar", "shfl", "atom", "wgmma_serial"])


if __name__ == "__main__":
    main()
