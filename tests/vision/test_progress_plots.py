import logging

import pytest

from mnemovision.vision.io import read_image
from mnemovision.vision.plots import save_curve
from mnemovision.vision.progress import get_logger, make_progress, track


def test_track_yields_every_item_and_reports_progress():
    assert list(track(range(5), "counting")) == [0, 1, 2, 3, 4]
    assert list(track(iter("abc"), "letters", total=3)) == ["a", "b", "c"]
    with make_progress() as progress:
        task = progress.add_task("work", total=4, status="")
        progress.advance(task, 4)
        assert progress.tasks[0].completed == 4 and progress.finished


def test_nested_tracks_yield_everything_even_where_rich_refuses_a_second_bar(monkeypatch):
    pairs = [(i, j) for i in track(range(3), "outer") for j in track(range(2), "inner", transient=True)]
    assert pairs == [(i, j) for i in range(3) for j in range(2)]
    from rich.errors import LiveError
    from rich.progress import Progress

    def refuse(self, *args, **kwargs):  # what older rich does when a live display is already active
        raise LiveError("Only one live display may be active at once")

    monkeypatch.setattr(Progress, "start", refuse)
    assert list(track(range(4), "no bar")) == [0, 1, 2, 3]


def test_loggers_share_one_rich_handler():
    a = get_logger("mnemovision.vision")
    b = get_logger("splatting")
    root = logging.getLogger("mnemovision")
    assert a.parent is root and b.parent is root
    get_logger()
    assert len(root.handlers) == 1 and type(root.handlers[0]).__name__ == "RichHandler"


def test_save_curve_writes_a_png(tmp_path):
    xs = list(range(10))
    save_curve(tmp_path / "curve.png", {"psnr": (xs, [20 + x for x in xs]), "ssim": (xs, [0.5] * 10)}, "iteration", "value", "title")
    image = read_image(tmp_path / "curve.png")
    assert image.shape[0] > 100 and image.std() > 5
    with pytest.raises(ValueError, match="2 y values"):
        save_curve(tmp_path / "bad.png", {"a": ([1, 2, 3], [1, 2])}, "x", "y")
    assert not (tmp_path / "bad.png").exists()
