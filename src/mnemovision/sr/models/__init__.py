"""SR networks: EDSR and SwinIR-light, one builder per family, plus ``build_sr_model`` by name."""

from torch import nn

from mnemovision.sr.models.edsr import EDSR, build_edsr, convert_official_edsr
from mnemovision.sr.models.swinir import SwinIR, build_swinir, convert_official_swinir

ARCHS = {"edsr": build_edsr, "swinir": build_swinir}


def build_sr_model(arch: str = "edsr", size: str = "baseline", scale: int = 2) -> nn.Module:
    """``arch`` edsr (tiny | baseline | large) or swinir (tiny | light); ``scale`` 2, 3 or 4."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
    return ARCHS[arch](size, scale)


__all__ = ["ARCHS", "EDSR", "SwinIR", "build_edsr", "build_sr_model", "build_swinir", "convert_official_edsr", "convert_official_swinir"]
