"""mnemovision: vision and 3D perception built around memory.

Importing the package has no side effects: no device queries, no environment reads, no downloads.
Subpackages: ``kernels`` (rasterizer and memory attention ops), ``vision`` (cameras, IO, metrics,
checkpoints), ``splatting``, ``vos``, ``sr``, ``motion`` (methods) and ``engine`` (mmengine glue).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
