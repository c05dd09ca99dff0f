"""What every method shares: cameras, image/video/mask/PLY IO, metrics, checkpoints, progress, data paths.

Submodules: ``cameras``, ``io``, ``metrics``, ``checkpoints``, ``progress``, ``plots``, ``data``, ``errors``,
``checks`` (range checks of arguments).
``vision`` may import ``kernels``; it never imports a method package or mmengine.
"""

from mnemovision.vision import cameras, checkpoints, checks, data, errors, io, metrics, plots, progress
from mnemovision.vision.errors import CheckpointError, FileFormatError

__all__ = ["CheckpointError", "FileFormatError", "cameras", "checkpoints", "checks", "data", "errors", "io", "metrics", "plots", "progress"]
