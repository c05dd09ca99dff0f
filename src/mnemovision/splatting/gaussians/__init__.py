"""The Gaussian scene model, its PLY interop and adaptive density control."""

from mnemovision.splatting.gaussians.model import GaussianModel, knn_scales, rgb_to_sh_dc
from mnemovision.splatting.gaussians.ply import load_ply, save_ply

__all__ = ["GaussianModel", "knn_scales", "load_ply", "rgb_to_sh_dc", "save_ply"]
