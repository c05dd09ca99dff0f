"""The splatting command line, as a user runs it: make the bundled scene, fit it, render a PLY orbit."""

import json
import subprocess
import sys

import av


def run(*args, cwd):
    out = subprocess.run([sys.executable, "-m", "mnemovision", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_make_scene_fit_and_render(tmp_path):
    run("data", "make-scene", str(tmp_path / "scene"), "--views", "12", "--size", "32", cwd=tmp_path)
    run("splat", "fit", str(tmp_path / "scene"), "--out", str(tmp_path / "fit"), "--iterations", "20", "--orbit-frames", "6", cwd=tmp_path)
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["iterations"] == 20 and metrics["psnr"] > 5
    with av.open(str(tmp_path / "fit" / "orbit.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 6
    run("splat", "render", "--ply", str(tmp_path / "fit" / "point_cloud.ply"), "--orbit", "--out", str(tmp_path / "o.mp4"), "--frames", "4", "--width", "48", "--height", "32", cwd=tmp_path)
    with av.open(str(tmp_path / "o.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (48, 32)
