"""Backend capability checks for the kernels package.

Every check is a function evaluated when called, never at import: importing ``mnemovision.kernels``
queries no device and reads no environment variable.
"""

from __future__ import annotations

import functools
import importlib.util
import os

BACKENDS = ("auto", "torch", "triton")


@functools.cache
def triton_importable() -> bool:
    """True when the ``triton`` package can be imported on this machine. Looked up once per process:
    until something imports triton, the lookup searches ``sys.path`` (about 30 us here), and
    ``resolve_backend`` runs at every op call (the CPU path never imports triton)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET`` is set to a value the installed Triton reads as on, so Triton
    kernels run on CPU through the interpreter.

    The variable is read by Triton when ``@triton.jit`` decorates a kernel, so it must be set before a
    kernel module is imported; this function only reports the current setting, read the way Triton
    reads it: through ``triton.knobs`` in the releases that have them (Triton 3.8 takes ``1``,
    ``true``, ``on``, ``yes`` and ``y`` in any case), else as older Triton did (``1`` only). A
    stricter reading here than Triton's would refuse ``backend="triton"`` on CPU and autotune
    without a GPU driver while the kernels themselves are interpreted.
    """
    value = os.environ.get("TRITON_INTERPRET")
    if not value:
        return False
    if not triton_importable():
        return value == "1"
    import triton

    knobs = getattr(triton, "knobs", None)
    return bool(knobs.runtime.interpret) if knobs is not None else value == "1"


def triton_autotune_enabled() -> bool:
    """False when ``MNEMOVISION_TRITON_AUTOTUNE=0``: autotuned Triton kernels then launch one fixed
    configuration (each candidate costs a compilation, which parity tests on a GPU do not need).
    Read at every launch; autotuning is always off under the interpreter."""
    return os.environ.get("MNEMOVISION_TRITON_AUTOTUNE", "1") != "0" and not triton_interpreter_enabled()


def cuda_available() -> bool:
    """True when torch sees at least one CUDA device (this queries the driver, so call it lazily)."""
    import torch

    return torch.cuda.is_available()


def resolve_backend(backend: str, device_type: str) -> str:
    """Pick the concrete backend for an op call.

    Args:
        backend: one of ``auto``, ``torch``, ``triton``.
        device_type: the ``device.type`` of the op's input tensors (``cpu``, ``cuda``, ...).

    Returns:
        ``torch`` or ``triton``. ``auto`` picks triton for CUDA tensors when triton is importable,
        else torch. ``triton`` on CPU tensors is allowed only under the Triton interpreter
        (``TRITON_INTERPRET=1``), which is how the kernels are tested without a GPU.

    Raises:
        ValueError: unknown backend name, or ``triton`` asked for where it cannot run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if backend == "triton":
        if not ((device_type == "cuda" or triton_interpreter_enabled()) and triton_importable()):
            raise ValueError(
                f"backend='triton' needs triton and CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors); "
                f"got tensors on {device_type!r}, triton importable={triton_importable()}"
            )
        return "triton"
    return "triton" if (device_type == "cuda" and triton_importable()) else "torch"


def backend_report() -> dict[str, object]:
    """What ``mnemovision info`` prints: which kernel backends are usable here."""
    import torch

    report: dict[str, object] = {
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "triton": None,
        "triton_interpreter": triton_interpreter_enabled(),
        "gsplat": None,
    }
    if triton_importable():
        import triton

        report["triton"] = triton.__version__
    if importlib.util.find_spec("gsplat") is not None:
        from importlib.metadata import version

        report["gsplat"] = version("gsplat")
    return report
