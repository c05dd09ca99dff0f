"""The ``mnemovision`` command line: ``info``, ``train``, ``test``, ``demo``.

Each command imports what it needs when it runs, so ``mnemovision --help`` stays fast and
``mnemovision info`` works without mmengine or gradio being importable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

    import mnemovision
    from mnemovision.kernels import backend_report

    report = {"mnemovision": mnemovision.__version__, "python": platform.python_version(), **backend_report()}
    for name in ("torchvision", "numpy", "mmengine", "av", "cv2", "gradio", "open3d"):
        report[name] = _version_of(name)
    report["backends"] = {
        "torch": True,
        "triton": bool(report["triton"]) and bool(report["cuda"]),
        "triton_interpreter": bool(report["triton"]),
        "gsplat": bool(report["gsplat"]),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnemovision", show_header=True)
    table.add_column("component")
    table.add_column("status")
    for key, value in report.items():
        if key == "backends":
            continue
        table.add_row(key, "-" if value in (None, []) else str(value))
    for key, usable in report["backends"].items():
        table.add_row(f"backend: {key}", "[green]usable[/green]" if usable else "[red]not usable[/red]")
    Console().print(table)
    return 0


def _version_of(module: str) -> str | None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    dist = {"cv2": "opencv-python-headless", "mmengine": "mmengine-lite", "open3d": "open3d-cpu"}.get(module, module)
    for name in (dist, module):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "installed"


def _cmd_train(args: argparse.Namespace) -> int:
    from mnemovision.engine import build_runner, parse_cfg_options

    resume: bool | str = args.resume if args.resume not in (None, "auto") else args.resume == "auto"
    runner = build_runner(args.config, args.work_dir, resume, parse_cfg_options(args.cfg_options), args.launcher)
    try:
        runner.train()
    except BaseException:
        _finish_distributed(synchronize=False)
        raise
    del runner  # release DDP's reducer and its pending gloo work before the group goes
    _finish_distributed()
    return 0


def _finish_distributed(synchronize: bool = True) -> None:
    """Tear the process group down before exit: a live gloo group aborts the interpreter at exit, and
    one rank destroying it while another still uses it does too, hence the barrier on success."""
    import torch.distributed as dist

    import gc

    gc.collect()
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def _cmd_test(args: argparse.Namespace) -> int:
    from mnemovision.engine import build_runner, parse_cfg_options

    options = parse_cfg_options(args.cfg_options)
    options["load_from"] = args.checkpoint
    runner = build_runner(args.config, args.work_dir, False, options, args.launcher)
    try:
        metrics = runner.test()
    except BaseException:
        _finish_distributed(synchronize=False)
        raise
    del runner
    _finish_distributed()
    print(json.dumps({k: float(v) if isinstance(v, (int, float)) else str(v) for k, v in metrics.items()}, indent=2))
    return 0


def _cmd_make_scene(args: argparse.Namespace) -> int:
    from mnemovision.splatting.data.synthetic import SceneSpec, make_scene

    path = make_scene(args.out, SceneSpec(n_views=args.views, size=args.size, seed=args.seed))
    print(path)
    return 0


def _cmd_splat_fit(args: argparse.Namespace) -> int:
    from mnemovision.splatting.engine import fit_scene

    resume: bool | str = args.resume if args.resume not in (None, "auto") else args.resume == "auto"
    fit_overrides = {"lpips_weights": args.lpips_weights, "lpips_backbone": args.lpips_backbone} if args.lpips_weights else {}
    result = fit_scene(args.data, args.out, args.iterations, args.downscale, fit=fit_overrides, orbit_frames=args.orbit_frames, resume=resume)
    print(json.dumps(result.metrics, indent=2))
    return 0


def _cmd_splat_render(args: argparse.Namespace) -> int:
    from mnemovision.splatting.gaussians import load_ply
    from mnemovision.splatting.render import render_orbit_video

    model = load_ply(args.ply)
    print(render_orbit_video(model, args.out, n_frames=args.frames, size=(args.width, args.height)))
    return 0


def _cmd_sr_upscale(args: argparse.Namespace) -> int:
    from mnemovision.sr.api import load_upscaler
    from mnemovision.sr.data import IMAGE_SUFFIXES
    from mnemovision.vision.io import read_image, write_image

    upscaler = load_upscaler(args.model, args.scale, sparse=args.sparse)
    src, dst = Path(args.input), Path(args.output)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{src}: no image files")
        targets = [(f, dst / f"{f.stem}.png") for f in files]
    else:
        targets = [(src, dst)]
    for file, out in targets:
        write_image(out, upscaler(read_image(file, mode="keep"), str(file)))
        print(out)
    return 0


def _cmd_sr_eval(args: argparse.Namespace) -> int:
    from mnemovision.sr.api import evaluate_folder, load_upscaler
    from mnemovision.vision.checkpoints import atomic_write

    report = evaluate_folder(load_upscaler(args.model, args.scale), args.data, args.scale)
    if args.json:
        with atomic_write(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    print(json.dumps({k: report[k] for k in ("model", "scale", "psnr_y", "ssim_y")}, indent=2))
    return 0


def _cmd_vos_run(args: argparse.Namespace) -> int:
    from mnemovision.vision.progress import track
    from mnemovision.vos.api import load_model
    from mnemovision.vos.run import run_sequence, sequences_in

    options = {} if args.adapt_steps is None else {"adapt_steps": args.adapt_steps}
    try:
        model = load_model(args.model, **options)
    except TypeError as err:  # the only option given here is adapt_steps
        raise ValueError(f"--adapt-steps applies to JointFormer models: {err}") from None
    for seq in track(sequences_in(args.frames, args.masks), "segmenting sequences"):
        run_sequence(model, seq, args.out)
        print(Path(args.out) / seq.name)
    return 0


def _cmd_vos_eval(args: argparse.Namespace) -> int:
    from mnemovision.vision.checkpoints import atomic_write
    from mnemovision.vos.metrics import evaluate_folders, write_csvs

    report = evaluate_folders(args.pred, args.gt, args.sequences.split(",") if args.sequences else None)
    write_csvs(report, args.csv or args.pred)
    if args.json:
        with atomic_write(args.json, "w") as handle:
            json.dump({k: report[k] for k in ("J", "F", "JF", "J_recall", "J_decay", "F_recall", "F_decay", "per_sequence", "per_object")}, handle, indent=2)
    print(json.dumps({k: round(report[k], 4) for k in ("JF", "J", "F")}))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mnemovision.demos.hub import serve

    serve(host=args.host, port=args.port, open_browser=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnemovision", description="Vision and 3D perception built around memory.")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="versions and which kernel backends are usable here")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_cmd_info)

    launcher = dict(choices=["none", "pytorch"], default="none", help="'pytorch' under torchrun")
    train = sub.add_parser("train", help="train from a Python config (path or bundled name)")
    train.add_argument("config")
    train.add_argument("--work-dir", default=None)
    train.add_argument("--resume", nargs="?", const="auto", default=None, help="resume from the latest checkpoint in the work dir, or from the given one")
    train.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE", help="override config fields, e.g. train_cfg.max_iters=100")
    train.add_argument("--launcher", **launcher)
    train.set_defaults(func=_cmd_train)

    test = sub.add_parser("test", help="evaluate a checkpoint with a config's test loop")
    test.add_argument("config")
    test.add_argument("checkpoint")
    test.add_argument("--work-dir", default=None)
    test.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE")
    test.add_argument("--launcher", **launcher)
    test.set_defaults(func=_cmd_test)

    data = sub.add_parser("data", help="data utilities").add_subparsers(dest="data_command", required=True)
    make = data.add_parser("make-scene", help="write the bundled multi-view scene (transforms.json) to a folder")
    make.add_argument("out")
    make.add_argument("--views", type=int, default=50)
    make.add_argument("--size", type=int, default=128)
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(func=_cmd_make_scene)

    splat = sub.add_parser("splat", help="3D Gaussian splatting").add_subparsers(dest="splat_command", required=True)
    fit = splat.add_parser("fit", help="fit Gaussians to a transforms.json or COLMAP scene folder")
    fit.add_argument("data")
    fit.add_argument("--out", required=True)
    fit.add_argument("--iterations", type=int, default=1000)
    fit.add_argument("--downscale", type=float, default=1.0)
    fit.add_argument("--orbit-frames", type=int, default=60, help="frames of orbit.mp4 (0: no video)")
    fit.add_argument("--resume", nargs="?", const="auto", default=None, help="continue from the latest checkpoint in --out, or from the given one")
    fit.add_argument("--lpips-weights", default=None, help="local LPIPS linear weights (lpips package's weights/v0.1/alex.pth): adds LPIPS to the metrics")
    fit.add_argument("--lpips-backbone", default=None, help="local torchvision AlexNet weights for LPIPS")
    fit.set_defaults(func=_cmd_splat_fit)
    render = splat.add_parser("render", help="render an orbit video of a 3DGS PLY file")
    render.add_argument("--ply", required=True)
    render.add_argument("--orbit", action="store_true", help="orbit around the scene (the only path so far)")
    render.add_argument("--out", required=True)
    render.add_argument("--frames", type=int, default=90)
    render.add_argument("--width", type=int, default=256)
    render.add_argument("--height", type=int, default=256)
    render.set_defaults(func=_cmd_splat_render)

    sr = sub.add_parser("sr", help="super-resolution").add_subparsers(dest="sr_command", required=True)
    upscale = sr.add_parser("upscale", help="upscale an image or every image of a folder")
    upscale.add_argument("input")
    upscale.add_argument("output", help="output image (or folder, for a folder input)")
    upscale.add_argument("--model", default="shipped", help="a model file, 'shipped' (ISS-P 90%% sparse EDSR x2) or 'bicubic'")
    upscale.add_argument("--scale", type=int, default=None, help="must match the model's; required for bicubic")
    upscale.add_argument("--sparse", action="store_true", help="run pruned convolutions as sparse (CSR) matrices")
    upscale.set_defaults(func=_cmd_sr_upscale)
    sr_eval = sr.add_parser("eval", help="PSNR-Y / SSIM-Y of a model on a folder of HR images (BasicSR convention)")
    sr_eval.add_argument("--model", default="shipped")
    sr_eval.add_argument("--data", required=True, help="folder with HR/ (and optionally LR_bicubic/X<s>/), or of HR images")
    sr_eval.add_argument("--scale", type=int, default=None)
    sr_eval.add_argument("--json", default=None)
    sr_eval.set_defaults(func=_cmd_sr_eval)

    vos = sub.add_parser("vos", help="video object segmentation").add_subparsers(dest="vos_command", required=True)
    vos_run = vos.add_parser("run", help="segment videos from their annotated frames")
    vos_run.add_argument("--frames", required=True, help="a folder of frames, or of sequence folders")
    vos_run.add_argument("--masks", required=True, help="annotation masks named like the frames (per sequence folder)")
    vos_run.add_argument("--out", required=True)
    vos_run.add_argument("--model", default="flow", help="'copy-first', 'flow', 'jointformer' (the shipped tiny model) or a JointFormer .safetensors file")
    vos_run.add_argument("--adapt-steps", type=int, default=None, help="JointFormer: first-frame adaptation steps (0: none; default: the file's, 150 for the shipped model)")
    vos_run.set_defaults(func=_cmd_vos_run)
    vos_eval = vos.add_parser("eval", help="DAVIS J&F exactly as the official toolkit")
    vos_eval.add_argument("--pred", required=True, help="results: <seq>/<frame>.png")
    vos_eval.add_argument("--gt", required=True, help="a DAVIS root (Annotations/) or a folder of <seq>/ masks")
    vos_eval.add_argument("--sequences", default=None, help="comma-separated subset")
    vos_eval.add_argument("--csv", default=None, help="folder for the CSVs (default: --pred)")
    vos_eval.add_argument("--json", default=None)
    vos_eval.set_defaults(func=_cmd_vos_eval)

    demo = sub.add_parser("demo", help="serve the Gradio demo hub on this machine")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; never shared publicly)")
    demo.add_argument("--port", type=int, default=7860)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Bad input (a missing file, a malformed file, a wrong value, a result too large
    for memory) ends with a one-line ``mnemovision: error: ...`` and exit status 2;
    ``MNEMOVISION_DEBUG=1`` shows the traceback."""
    import os

    from mnemovision.vision.errors import CheckpointError, FileFormatError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, FileFormatError, CheckpointError, MemoryError) as err:
        if os.environ.get("MNEMOVISION_DEBUG"):
            raise
        reason = f"out of memory ({err or 'no details'}): ask for a smaller result" if isinstance(err, MemoryError) else err
        print(f"mnemovision: error: {reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
