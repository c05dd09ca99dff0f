"""bench/targets.py: the kernel issues' GPU targets evaluated from benchmark JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import targets  # noqa: E402

GPU = "NVIDIA H100 80GB HBM3"


def attention_row(case, backend, top_k, fwd, fwd_bwd, device=GPU):
    return {"case": case, "backend": backend, "top_k": top_k, "fwd_ms": fwd, "fwd_bwd_ms": fwd_bwd, "device": device}


def test_attention_targets_compare_triton_with_its_peer():
    rows = [
        attention_row("mcnet", "sdpa", None, 0.05, 1.25),
        attention_row("mcnet", "triton", None, 0.125, 1.1),
        attention_row("mcnet", "naive", None, 0.4, 0.9),  # not dense's peer
        attention_row("vos_T20", "naive", 30, 0.9, 1.5),
        attention_row("vos_T20", "triton", 30, 0.3, 0.6),
        attention_row("vos_T2", "triton", 30, 0.2, 0.5),  # no naive row: nothing to compare
        attention_row("vos_T5", "naive", 30, 0.9, 1.5, device="cpu"),
        attention_row("vos_T5", "triton", 30, 0.1, 0.1),  # its naive row is another device's
        attention_row("m3", "sdpa", None, 0.5, 2.0),
        attention_row("m3", "triton", None, 0.625, 2.5 + 2**-20),  # exactly 1.25x is met; a hair more is not
        attention_row("vos_T1", "naive", 30, 0.75, 0.75),
        attention_row("vos_T1", "triton", 30, 0.25, 0.25 + 2**-20),  # exactly 3x is met; a hair less is not
    ]
    checks = {(c["case"], c["part"]): c for c in targets.attention_checks(rows)}
    assert set(checks) == {(case, part) for case in ("mcnet", "vos_T20", "m3", "vos_T1") for part in ("fwd", "fwd_bwd")}
    assert [checks[case, part]["met"] for case in ("m3", "vos_T1") for part in ("fwd", "fwd_bwd")] == [True, False, True, False]
    assert checks["mcnet", "fwd"]["ratio"] == pytest.approx(2.5) and not checks["mcnet", "fwd"]["met"]
    assert checks["mcnet", "fwd_bwd"]["ratio"] == pytest.approx(0.88) and checks["mcnet", "fwd_bwd"]["met"]
    # exactly 3x is met; 2.5x is not
    assert checks["vos_T20", "fwd"]["ratio"] == pytest.approx(3.0) and checks["vos_T20", "fwd"]["met"]
    assert checks["vos_T20", "fwd_bwd"]["ratio"] == pytest.approx(2.5) and not checks["vos_T20", "fwd_bwd"]["met"]


def test_raster_targets_by_channel_count():
    rows = [
        {"backend": b, "scene": "garden", "channels": c, "fwd_ms": 1.0, "fwd_bwd_ms": t, "device": GPU}
        for b, c, t in (("triton", 3, 2.5), ("gsplat", 3, 1.43), ("triton", 160, 5.6), ("gsplat", 160, 12.4), ("torch", 3, 900.0),
                        ("triton", 32, 1.0), ("gsplat", 32, 9.0))  # no target at C = 32
    ]
    rows += [{"backend": b, "scene": "bicycle", "channels": 3, "fwd_ms": 1.0, "fwd_bwd_ms": 1.0, "device": d}
             for b, d in (("triton", GPU), ("gsplat", "NVIDIA A100"))]  # peers on two devices: not compared
    checks = {(c["target"], c["case"]): c for c in targets.raster_checks(rows)}
    assert set(checks) == {("raster C=3", "garden"), ("raster C=160", "garden")}
    checks = {target: c for (target, _), c in checks.items()}
    assert not checks["raster C=3"]["met"] and checks["raster C=3"]["ratio"] == pytest.approx(0.572)
    assert checks["raster C=160"]["met"] and checks["raster C=160"]["ratio"] == pytest.approx(2.214)
    exact = [{"backend": b, "scene": "garden", "channels": c, "fwd_ms": 1.0, "fwd_bwd_ms": t, "device": GPU}
             for b, c, t in (("triton", 3, 1.5), ("gsplat", 3, 1.5), ("triton", 160, 1.0), ("gsplat", 160, 2.0))]
    assert [c["met"] for c in targets.raster_checks(exact)] == [True, True]  # exactly 1x and 2x are met


def test_cli_reads_a_folder_and_names_a_bad_file(tmp_path):
    (tmp_path / "attention_gpu.json").write_text(json.dumps({"results": [
        attention_row("m3", "sdpa", None, 0.6, 8.4), attention_row("m3", "triton", None, 0.4, 2.5)]}))
    out = subprocess.run([sys.executable, str(BENCH / "targets.py"), "--dir", str(tmp_path), "--json", str(tmp_path / "t.json")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert [c["met"] for c in json.loads((tmp_path / "t.json").read_text())["results"]] == [True, True]
    (tmp_path / "raster_gpu.json").write_text(json.dumps([1, 2]))
    bad = subprocess.run([sys.executable, str(BENCH / "targets.py"), "--dir", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "raster_gpu.json" in bad.stderr and "'results'" in bad.stderr
    (tmp_path / "raster_gpu.json").write_text(json.dumps({"results": 5}))
    bad = subprocess.run([sys.executable, str(BENCH / "targets.py"), "--dir", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "expected a JSON object with a list 'results'" in bad.stderr
    empty = subprocess.run([sys.executable, str(BENCH / "targets.py"), "--dir", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert empty.returncode != 0 and "no comparable rows in" in empty.stderr
