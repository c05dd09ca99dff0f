"""The SR command line as a user runs it: eval a folder, upscale an image and a folder."""

import json
import subprocess
import sys

import pytest

from mnemovision.sr.export import save_sr_model
from mnemovision.sr.models import build_sr_model
from mnemovision.vision.io import read_image, write_image


def run(*args, cwd, ok=True):
    out = subprocess.run([sys.executable, "-m", "mnemovision", "sr", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert (out.returncode == 0) == ok, out.stderr[-3000:]
    return out


@pytest.fixture
def photos(tmp_path):
    import skimage.data

    write_image(tmp_path / "hr" / "HR" / "astronaut.png", skimage.data.astronaut()[::4, ::4])
    write_image(tmp_path / "hr" / "HR" / "coffee.png", skimage.data.coffee()[::4, ::4])
    return tmp_path


def test_eval_upscale_and_bad_input(photos):
    model = save_sr_model(photos / "tiny.safetensors", build_sr_model("edsr", "tiny", 3), "edsr", "tiny", 3)
    run("eval", "--model", "bicubic", "--data", str(photos / "hr"), "--scale", "3", "--json", str(photos / "b.json"), cwd=photos)
    report = json.loads((photos / "b.json").read_text())
    assert set(report["per_image"]) == {"astronaut.png", "coffee.png"} and 20 < report["psnr_y"] < 40
    run("eval", "--model", str(model), "--data", str(photos / "hr"), "--json", str(photos / "m.json"), cwd=photos)
    assert json.loads((photos / "m.json").read_text())["scale"] == 3
    run("upscale", str(photos / "hr" / "HR" / "coffee.png"), str(photos / "up.png"), "--model", str(model), cwd=photos)
    assert read_image(photos / "up.png").shape == (300, 450, 3)
    run("upscale", str(photos / "hr" / "HR"), str(photos / "out"), "--model", str(model), "--sparse", cwd=photos)
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["astronaut.png", "coffee.png"]
    bad = run("upscale", str(photos / "hr" / "HR" / "coffee.png"), str(photos / "x.png"), "--model", str(model), "--scale", "2", cwd=photos, ok=False)
    assert "upscales x3, asked for x2" in bad.stderr
    bad = run("eval", "--model", "bicubic", "--data", str(photos / "nothing"), "--scale", "2", cwd=photos, ok=False)
    assert "nothing: no image files" in bad.stderr


@pytest.mark.parametrize("scale", [0, -1, 2.5, True, "2", 17])
def test_a_scale_that_is_not_a_sensible_int_is_refused(scale):
    from mnemovision.sr.api import load_upscaler

    with pytest.raises(ValueError, match="scale"):
        load_upscaler("bicubic", scale)
    if scale in (2.5, "2"):  # 2.5 once passed the shipped x2 model's check as int(2.5) == 2
        with pytest.raises(ValueError, match="scale must be an int >= 1"):
            load_upscaler("shipped", scale)


def test_bicubic_takes_numpy_ints_up_to_the_largest_scale():
    import numpy as np

    from mnemovision.sr.api import MAX_BICUBIC_SCALE, load_upscaler

    assert load_upscaler("bicubic", np.int64(3))(np.zeros((4, 5, 3), np.uint8)).shape == (12, 15, 3)
    assert load_upscaler("bicubic", MAX_BICUBIC_SCALE)(np.zeros((1, 2, 3), np.uint8)).shape == (16, 32, 3)


def test_running_out_of_memory_is_a_one_line_error(photos, monkeypatch, capsys):
    import mnemovision.sr.api
    from mnemovision.cli import main

    def too_large(image, scale):
        raise MemoryError("Unable to allocate 655. TiB for an array")

    monkeypatch.setattr(mnemovision.sr.api, "imresize", too_large)
    args = ["sr", "upscale", str(photos / "hr" / "HR" / "coffee.png"), str(photos / "x.png"), "--model", "bicubic", "--scale", "4"]
    assert main(args) == 2
    assert capsys.readouterr().err == "mnemovision: error: out of memory (Unable to allocate 655. TiB for an array): ask for a smaller result\n"
    assert not (photos / "x.png").exists()
