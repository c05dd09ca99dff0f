"""The standard 3D Gaussian splatting PLY layout, as written by the original 3DGS code and read by the
common web viewers: x y z, nx ny nz, f_dc_0..2, f_rest_0..(3K'-1) (channel-major: all coefficients of
red, then green, then blue), opacity (logit), scale_0..2 (log), rot_0..3 (wxyz quaternion)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from mnemovision.splatting.gaussians.model import GaussianModel
from mnemovision.vision.errors import FileFormatError
from mnemovision.vision.io import read_ply, write_ply


def save_ply(path: str | os.PathLike, model: GaussianModel) -> None:
    """Write ``model`` in the 3DGS layout (binary little-endian float32), atomically."""
    n = len(model)
    rest = model.sh_rest.detach().cpu().transpose(1, 2).reshape(n, -1).numpy()  # [N, 3 * K'] channel-major
    props = {
        "x": model.means[:, 0], "y": model.means[:, 1], "z": model.means[:, 2],
        "nx": torch.zeros(n), "ny": torch.zeros(n), "nz": torch.zeros(n),
    }
    props = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in props.items()}
    dc = model.sh_dc.detach().cpu()[:, 0, :].numpy()
    for c in range(3):
        props[f"f_dc_{c}"] = dc[:, c]
    for i in range(rest.shape[1]):
        props[f"f_rest_{i}"] = rest[:, i]
    props["opacity"] = model.opacity_logits.detach().cpu().numpy()
    for i in range(3):
        props[f"scale_{i}"] = model.log_scales.detach().cpu()[:, i].numpy()
    for i in range(4):
        props[f"rot_{i}"] = model.quats.detach().cpu()[:, i].numpy()
    write_ply(path, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in props.items()})


def load_ply(path: str | os.PathLike) -> GaussianModel:
    """Read a 3DGS PLY (any SH degree 0-3, inferred from the number of f_rest fields).

    Raises:
        FileFormatError: a field is missing, the f_rest count matches no SH degree, or a value is not
            finite.
    """
    props = read_ply(path)
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [name for name in required if name not in props]
    if missing:
        raise FileFormatError(path, "vertex properties", "the 3D Gaussian splatting layout (x y z f_dc_* f_rest_* opacity scale_* rot_*)", f"missing {missing}")
    n_rest = sum(1 for name in props if name.startswith("f_rest_"))
    k = n_rest // 3 + 1
    degree = int(round(math.sqrt(k))) - 1
    if n_rest % 3 or (degree + 1) ** 2 != k or degree > 3:
        raise FileFormatError(path, "f_rest_*", "3 x ((d + 1)^2 - 1) fields for an SH degree d in 0..3", f"{n_rest} fields")
    gaps = [f"f_rest_{i}" for i in range(n_rest) if f"f_rest_{i}" not in props]
    if gaps:
        raise FileFormatError(path, "f_rest_*", f"f_rest_0 to f_rest_{n_rest - 1}", f"{gaps[0]} missing")
    fields = required + [f"f_rest_{i}" for i in range(n_rest)]
    bad_rows = np.zeros(len(props["x"]), dtype=bool)
    for name in fields:  # one field at a time: a [fields, N] array would be 0.5 GB at a million Gaussians
        bad_rows |= ~np.isfinite(props[name])
    if bad_rows.any():
        raise FileFormatError(path, "vertex values", "finite numbers", f"NaN or infinity in {int(bad_rows.sum())} Gaussians, the first at row {int(np.argmax(bad_rows))}")

    def col(*names):
        return torch.from_numpy(np.stack([np.asarray(props[n], dtype=np.float32) for n in names], -1))

    n = len(props["x"])
    rest = col(*[f"f_rest_{i}" for i in range(n_rest)]) if n_rest else torch.zeros(n, 0)
    model = GaussianModel(
        means=col("x", "y", "z"),
        quats=col("rot_0", "rot_1", "rot_2", "rot_3"),
        log_scales=col("scale_0", "scale_1", "scale_2"),
        opacity_logits=col("opacity")[:, 0],
        sh_dc=col("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
        sh_rest=rest.reshape(n, 3, k - 1).transpose(1, 2).contiguous(),
        max_sh_degree=degree,
    )
    model.active_sh_degree = degree
    return model
