"""Shared kernels: the Gaussian rasterizer and memory attention (torch and triton only).

``rasterize_gaussians`` (``gaussians``) and ``memory_attention`` (``attention``).

Each op has a readable PyTorch path (the CPU path and the test oracle) and a Triton path for GPUs.
Importing this package queries no device; backends are resolved per call (see ``_backend``).
"""

from mnemovision.kernels._backend import (
    BACKENDS,
    backend_report,
    cuda_available,
    resolve_backend,
    triton_importable,
    triton_interpreter_enabled,
)
from mnemovision.kernels.attention import AttentionOutput, memory_attention
from mnemovision.kernels.gaussians import RENDER_MODES, rasterize_gaussians

__all__ = [
    "AttentionOutput",
    "BACKENDS",
    "memory_attention",
    "RENDER_MODES",
    "rasterize_gaussians",
    "backend_report",
    "cuda_available",
    "resolve_backend",
    "triton_importable",
    "triton_interpreter_enabled",
]
