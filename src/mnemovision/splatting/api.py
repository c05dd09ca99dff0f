"""What applications (the demo hub, scripts) use: make or find a scene, fit it, load a PLY, orbit it.

    from mnemovision.splatting import api
    result = api.fit_scene("my_scene", "out", iterations=1000)     # mmengine run, results in out/
    frame = api.orbit_frame(result.model, 90.0, cameras=api.scene_cameras_of("my_scene"))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnemovision.splatting.data.scene import read_scene_cameras
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene
from mnemovision.splatting.engine import fit_scene
from mnemovision.splatting.gaussians import GaussianModel, load_ply, save_ply
from mnemovision.splatting.render import orbit_frame, render_orbit_video


def find_scene_root(folder: str | Path) -> Path:
    """The folder inside ``folder`` (itself or the shallowest below it) that holds a transforms.json
    or a COLMAP model, e.g. in an unpacked zip whose files sit under one top-level directory."""
    folder = Path(folder)
    candidates = sorted(
        (p.parent for p in folder.rglob("*") if p.name == "transforms.json" or (p.name in ("cameras.bin", "cameras.txt"))),
        key=lambda p: len(p.parts),
    )
    if not candidates:
        raise FileNotFoundError(f"{folder}: no transforms.json or COLMAP cameras.bin/cameras.txt inside")
    root = candidates[0]
    while root.name in ("0", "sparse") and root != folder:  # COLMAP: <scene>/sparse/0/cameras.bin
        root = root.parent
    return root


def scene_cameras_of(folder: str | Path) -> np.ndarray:
    """World-to-camera [V, 4, 4] of every camera of the scene in ``folder`` (OpenCV axes); no image is read."""
    return np.asarray(read_scene_cameras(folder).cameras.viewmats, dtype=np.float64)


def bundled_scene(folder: str | Path, spec: SceneSpec = SceneSpec()) -> Path:
    """The bundled scene in ``folder``, generated there (deterministically, no network) if absent."""
    folder = Path(folder)
    if not (folder / "transforms.json").exists():
        make_scene(folder, spec)
    return folder


__all__ = ["GaussianModel", "bundled_scene", "find_scene_root", "fit_scene", "load_ply", "orbit_frame", "render_orbit_video", "save_ply", "scene_cameras_of"]
