"""Curves saved as PNG (training curves, per-frame metrics), with matplotlib's headless backend."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence


def save_curve(
    path: str | os.PathLike,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> None:
    """Plot each ``name -> (xs, ys)`` as a line and write the figure to ``path`` (PNG), atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from mnemovision.vision.checkpoints import atomic_write

    if not series:
        raise ValueError("series must not be empty")
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    try:
        for name, (xs, ys) in series.items():
            if len(xs) != len(ys):
                raise ValueError(f"series {name!r}: {len(xs)} x values but {len(ys)} y values")
            ax.plot(list(xs), list(ys), label=name, marker="." if len(xs) < 60 else None)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend()
        fig.tight_layout()
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
