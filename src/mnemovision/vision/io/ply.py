"""PLY point files with arbitrary per-vertex properties (binary or ASCII), through plyfile.

Properties are returned as a dict of 1-D arrays keyed by property name, in file order, which is
what the 3D Gaussian splatting layout (``x y z nx ny nz f_dc_0 ... rot_3``) needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mnemovision.vision.errors import FileFormatError


def read_ply(path: str | os.PathLike, element: str = "vertex") -> dict[str, np.ndarray]:
    """Read every property of ``element`` as ``{name: [N] array}`` (dtypes as stored).

    Raises:
        FileFormatError: not a PLY file, truncated data, or no such element.
    """
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: PLY file not found")
    try:
        with open(path, "rb") as handle:
            ply = PlyData.read(handle)
    except PlyParseError as err:
        raise FileFormatError(path, "PLY data", "a well-formed PLY file", str(err)) from err
    except (ValueError, EOFError, IndexError, OverflowError, UnicodeDecodeError) as err:
        raise FileFormatError(path, "PLY data", "values for every property and row the header declares", f"{type(err).__name__}: {err}") from err
    names = [el.name for el in ply.elements]
    if element not in names:
        raise FileFormatError(path, "elements", f"an element named {element!r}", f"{names}")
    data = ply[element].data
    out = {name: np.asarray(data[name]) for name in data.dtype.names}
    declared = ply[element].count
    if any(len(v) != declared for v in out.values()):
        raise FileFormatError(path, element, f"{declared} rows", "fewer (truncated file)")
    return out


def write_ply(path: str | os.PathLike, properties: Mapping[str, np.ndarray], binary: bool = True, element: str = "vertex") -> None:
    """Write ``{name: [N] array}`` as one PLY element, atomically (float32 unless given uint8/int)."""
    from plyfile import PlyData, PlyElement

    from mnemovision.vision.checkpoints import atomic_write

    if not properties:
        raise ValueError("properties must not be empty")
    lengths = {k: len(np.asarray(v)) for k, v in properties.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"all properties need the same length, got {lengths}")
    n = next(iter(lengths.values()))
    dtypes = []
    for name, values in properties.items():
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"property {name!r} must be 1-D, got shape {values.shape}")
        kind = values.dtype if values.dtype in (np.uint8, np.int32, np.uint32, np.float64) else np.float32
        dtypes.append((name, kind))
    table = np.empty(n, dtype=dtypes)
    for name, values in properties.items():
        table[name] = np.asarray(values)
    ply = PlyData([PlyElement.describe(table, element)], text=not binary)
    with atomic_write(path, "wb") as handle:
        ply.write(handle)
