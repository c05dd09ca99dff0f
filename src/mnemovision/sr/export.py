"""Compressed SR model files: safetensors with pruned weights stored as a bitmask plus their nonzero
values, and sparse CPU inference through CSR convolutions.

Layout of a file (every tensor little-endian, as safetensors stores them):
- a dense tensor ``<name>`` for each parameter that is not worth storing sparse;
- for each sparse weight: ``<name>.__bitmask`` (uint8, ``numpy.packbits`` of the flattened
  ``weight != 0`` in C order, big-endian bit order) and ``<name>.__values`` (the nonzero values in the
  same order, original dtype);
- metadata: ``format`` = ``mnemovision-sr/1``, ``arch``, ``size``, ``scale``, ``method``,
  ``sparsity`` and ``shapes`` (JSON: name -> shape of each sparse weight).
A weight is stored sparse when at most 95% of it is nonzero (then mask + values are smaller).
Loading rebuilds exactly the same tensors, so outputs are bit-identical to the saved model's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnemovision.sr.models import build_sr_model
from mnemovision.sr.pruning import sparsity_of
from mnemovision.vision.checkpoints import load_safetensors, read_safetensors_metadata, save_safetensors
from mnemovision.vision.errors import CheckpointError

FORMAT = "mnemovision-sr/1"
SPARSE_MAX_DENSITY = 0.95


def save_sr_model(path: str | Path, model: nn.Module, arch: str, size: str, scale: int, method: str = "dense", dtype: torch.dtype | None = None) -> Path:
    """Write ``model``'s state dict to ``path`` (.safetensors), pruned weights compressed; atomic.
    ``dtype`` (e.g. ``torch.float16``) stores floating tensors in that type (loading casts back, so
    outputs then differ by the rounding); by default they are stored as they are (exact reload)."""
    tensors: dict[str, torch.Tensor] = {}
    shapes: dict[str, list[int]] = {}
    for name, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        nonzero = value != 0
        if value.ndim >= 2 and value.is_floating_point() and float(nonzero.float().mean()) <= SPARSE_MAX_DENSITY:
            bits = np.packbits(nonzero.flatten().numpy())
            tensors[f"{name}.__bitmask"] = torch.from_numpy(bits)
            tensors[f"{name}.__values"] = value.flatten()[nonzero.flatten()].contiguous()
            shapes[name] = list(value.shape)
        else:
            tensors[name] = value
    metadata = {"format": FORMAT, "dtype": str(dtype or "as saved"), "arch": arch, "size": size, "scale": str(scale), "method": method, "sparsity": f"{sparsity_of(model):.6f}", "shapes": json.dumps(shapes)}
    save_safetensors(path, tensors, metadata)
    return Path(path)


def _sparse_shapes(path: Path, text: str) -> dict[str, list[int]]:
    """The ``shapes`` metadata field: a JSON object of sparse weight names to their dense shapes."""
    try:
        shapes = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: metadata field 'shapes' is not JSON ({err})") from None
    ok = isinstance(shapes, dict) and all(
        isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape) for shape in shapes.values()
    )
    if not ok:
        raise CheckpointError(f"{path}: metadata field 'shapes' must map weight names to lists of sizes, got {text[:80]!r}")
    return shapes


def read_sr_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The dense state dict and the metadata of a file written by ``save_sr_model``.

    Raises:
        CheckpointError: not such a file, or a sparse weight whose mask/values/shape disagree (named).
    """
    path = Path(path)
    raw = load_safetensors(path)
    meta = read_safetensors_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata field 'format' is {meta.get('format')!r}, expected {FORMAT!r} (write it with save_sr_model)")
    shapes = _sparse_shapes(path, meta.get("shapes", "{}"))
    state = {k: v for k, v in raw.items() if not k.endswith((".__bitmask", ".__values"))}
    for name, shape in shapes.items():
        bits, values = raw.get(f"{name}.__bitmask"), raw.get(f"{name}.__values")
        if bits is None or values is None:
            raise CheckpointError(f"{path}: sparse weight {name!r} lacks its __bitmask or __values tensor")
        if bits.dtype != torch.uint8 or bits.ndim != 1 or values.ndim != 1:
            raise CheckpointError(f"{path}: sparse weight {name!r}: expected a 1-D uint8 __bitmask and 1-D __values, found {bits.dtype} {list(bits.shape)} and {values.dtype} {list(values.shape)}")
        numel = math.prod(shape)
        if (numel + 7) // 8 != bits.numel():  # checked first: unpackbits pads a short mask with zeros
            raise CheckpointError(f"{path}: sparse weight {name!r}: shape {shape} needs a {(numel + 7) // 8}-byte __bitmask, found {bits.numel()} bytes")
        mask = torch.from_numpy(np.unpackbits(bits.numpy(), count=numel).astype(bool))
        if int(mask.sum()) != values.numel():
            raise CheckpointError(f"{path}: sparse weight {name!r}: bitmask has {int(mask.sum())} ones for {values.numel()} values (shape {shape})")
        dense = torch.zeros(numel, dtype=values.dtype)
        dense[mask] = values
        state[name] = dense.view(shape)
    return state, meta


def load_sr_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Build the network named in the file's metadata and load it strictly; returns (model, metadata)."""
    from mnemovision.vision.checkpoints import load_state_dict_strict

    state, meta = read_sr_file(path)
    try:
        model = build_sr_model(meta["arch"], meta["size"], int(meta["scale"]))
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: metadata does not name a buildable model (arch/size/scale): {err}") from err
    load_state_dict_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, source=str(path))
    return model.eval(), meta


class SparseConv2d(nn.Module):
    """A stride-1 Conv2d computed as a CSR matrix [C_out, C_in*k*k] times unfolded patches."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or not isinstance(conv.padding, tuple):
            raise ValueError(f"SparseConv2d supports stride 1, dilation 1, groups 1 and numeric padding, got {conv}")
        self.kernel_size, self.padding, self.out_channels = conv.kernel_size, conv.padding, conv.out_channels
        self.weight = conv.weight.detach().flatten(1).to_sparse_csr()
        self.bias = None if conv.bias is None else conv.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, padding=self.padding)  # [B, C_in*k*k, H*W]
        out = torch.stack([self.weight @ cols[i] for i in range(b)])  # [B, C_out, H*W]
        if self.bias is not None:
            out = out + self.bias[None, :, None]
        return out.view(b, self.out_channels, h, w)


def to_sparse_inference(model: nn.Module, max_density: float = 0.5) -> nn.Module:
    """Replace (in place) every Conv2d at most ``max_density`` nonzero by a ``SparseConv2d``."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and float((child.weight != 0).float().mean()) <= max_density:
                setattr(module, child_name, SparseConv2d(child))
    return model
