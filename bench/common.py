"""Shared benchmark plumbing: timing, peak memory, tables and JSON output.

CPU peak memory: the growth of the process's peak resident set (VmHWM, reset after a warm-up call)
over the resident set the call starts with, in a fresh subprocess per measurement; GPU peak memory
with torch's allocator statistics.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def max_rss_mb() -> float:
    """Peak resident set size (VmHWM) since the last ``reset_peak_rss``, in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _release_free_heap() -> None:
    """Hand memory freed by the warm-up back to the OS, so the measured call's growth is visible."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], object], device: str, warmup: int, repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds (synchronising the GPU around each call)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def peak_mb(fn: Callable[[], object], device: str) -> float:
    """Extra memory ``fn`` needs at its peak, in MB, beyond what is allocated before it runs."""
    if device.startswith("cuda"):
        fn()  # warm up: autotuning and compilation buffers are not the op's memory
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    fn()  # warm up: thread pools and one-time buffers are not the op's memory
    _release_free_heap()
    reset_peak_rss()
    base = rss_mb()
    fn()
    return max(0.0, max_rss_mb() - base)


def print_kernel_profile(title: str, call: Callable[[], object], device: str, calls: int, rows: int = 15, warmup: int = 2) -> None:
    """Wall time of ``call`` and a torch.profiler table of the kernels it runs (CUDA kernels on a
    GPU, CPU ops otherwise), with their total time and count per call, printed under ``title``."""
    from torch.profiler import ProfilerActivity, profile

    wall = time_ms(call, device, warmup, calls)
    cuda = device == "cuda"
    with profile(activities=[ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            call()
        sync(device)
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    busy = sum(getattr(e, key) for e in events) / 1000.0 / calls
    launches = sum(e.count for e in events if getattr(e, key) > 0) / calls
    what = ("GPU kernels", "kernel launches") if cuda else ("CPU ops", "op calls (nested included)")
    print(f"== {title}: wall {wall:.3f} ms/call, {what[0]} {busy:.3f} ms and {launches:.0f} {what[1]} per call")
    print(events.table(sort_by=key, row_limit=rows, max_name_column_width=60))


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def write_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
