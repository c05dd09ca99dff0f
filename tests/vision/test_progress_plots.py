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


def test_track_counts_to_the_length_of_what_it_iterates_and_stops_its_bar(monkeypatch):
    import io

    from rich.console import Console

    import mnemovision.vision.progress as progress_module

    made = []
    original = progress_module.make_progress

    def recording(transient=False):
        made.append(original(transient))
        return made[-1]

    monkeypatch.setattr(progress_module, "make_progress", recording)
    assert list(track([3, 1, 4, 1, 5], "counting", transient=True)) == [3, 1, 4, 1, 5]
    (bar,) = made
    (task,) = bar.tasks
    assert (task.description, task.total, task.completed) == ("counting", 5, 5)
    assert bar.live.transient and not bar.live.is_started
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(bar.make_tasks_table(bar.tasks))
    row = console.file.getvalue()
    assert "counting" in row and "5/5" in row and "0:00:00" in row  # description, counts, time
    # Without a length the total stays unknown; a loop left early still stops the bar.
    for _ in track(iter(range(10)), "unsized"):
        break
    assert made[1].tasks[0].total is None and made[1].tasks[0].completed == 0
    import gc

    gc.collect()  # the abandoned generator is closed, which runs its finally
    assert not made[1].live.is_started and not made[1].live.transient


def test_the_package_logger_logs_info_through_one_rich_handler_only(monkeypatch, caplog):
    import io

    from rich.console import Console

    root = logging.getLogger("mnemovision")
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process; restored afterwards
    monkeypatch.setattr(root, "propagate", True)
    monkeypatch.setattr(root, "level", logging.NOTSET)
    assert get_logger() is root and get_logger("") is root
    assert get_logger("vos").name == "mnemovision.vos" and get_logger("mnemovision.vos") is get_logger("vos")
    (handler,) = root.handlers
    handler.console = Console(file=io.StringIO(), width=200, color_system=None)
    caplog.set_level(logging.DEBUG)
    logger = get_logger("vos")
    logger.info("fitted 12 frames")
    logger.debug("not shown at the default level")
    shown = handler.console.file.getvalue()
    assert "fitted 12 frames" in shown and "not shown" not in shown
    assert root.level == logging.INFO
    assert caplog.records == []  # not propagated to the root logger's handlers, so never printed twice


def _saved_figure(monkeypatch):
    """Records the figure ``save_curve`` writes, with what it showed at that moment."""
    from matplotlib.figure import Figure

    seen = {}
    original = Figure.savefig

    def recording(fig, *args, **kwargs):
        (ax,) = fig.axes
        seen.update(
            title=ax.get_title(), xlabel=ax.get_xlabel(), ylabel=ax.get_ylabel(), legend=ax.get_legend(),
            lines=[(line.get_label(), list(line.get_xdata()), list(line.get_ydata()), line.get_marker()) for line in ax.get_lines()],
        )
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return seen


def test_save_curve_draws_each_series_with_its_labels_and_closes_its_figures(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    seen = _saved_figure(monkeypatch)
    open_before = plt.get_fignums()
    save_curve(tmp_path / "two.png", {"psnr": ([0, 10, 20], [20.0, 25.5, 27.0]), "ssim": ([0, 10], [0.5, 0.7])}, "step", "dB", "fit")
    assert (seen["title"], seen["xlabel"], seen["ylabel"]) == ("fit", "step", "dB")
    assert seen["lines"] == [("psnr", [0, 10, 20], [20.0, 25.5, 27.0], "."), ("ssim", [0, 10], [0.5, 0.7], ".")]
    assert [t.get_text() for t in seen["legend"].get_texts()] == ["psnr", "ssim"]
    many = list(range(60))
    save_curve(tmp_path / "one.png", {"loss": (many, many)}, "step", "loss")
    assert seen["title"] == "" and seen["legend"] is None  # one series needs no legend
    assert seen["lines"][0][3] == "None"  # 60 points and more are drawn without markers
    with pytest.raises(ValueError, match="series must not be empty"):
        save_curve(tmp_path / "empty.png", {}, "x", "y")
    with pytest.raises(ValueError, match="'a': 3 x values but 2 y values"):
        save_curve(tmp_path / "bad.png", {"a": ([1, 2, 3], [1, 2])}, "x", "y")
    assert plt.get_fignums() == open_before  # no figure left open, after a failure either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "two.png"]
