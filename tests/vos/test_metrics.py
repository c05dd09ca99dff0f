"""DAVIS J&F as the official toolkit computes it: hand-checked cases and the protocol's rules."""

import numpy as np
import pytest

from mnemovision.vos.metrics import boundary_radius, db_eval_iou, db_statistics, disk, evaluate_sequence, f_measure, seg2bmap, summarize


def square(h=100, w=100, y=40, x=40, size=20):
    m = np.zeros((h, w), bool)
    m[y : y + size, x : x + size] = True
    return m


def test_seg2bmap_matches_a_hand_computed_boundary():
    seg = np.zeros((4, 4), bool)
    seg[1:3, 1:3] = True
    expected = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], bool)
    assert np.array_equal(seg2bmap(seg), expected)


def test_j_and_f_cases():
    gt = square()
    assert db_eval_iou(gt, gt) == 1.0 and f_measure(gt, gt) == 1.0
    assert db_eval_iou(gt, square(x=50)) == pytest.approx(200 / 600)  # 20x10 overlap of two 20x20 squares
    assert f_measure(square(x=41), gt) == 1.0  # 1 px off, inside the 2 px tolerance of a 100x100 image
    assert 0.3 < f_measure(square(x=43), gt) < 1.0  # 3 px off: the vertical edges fall outside the tolerance
    assert f_measure(square(x=43), gt, bound_th=3) == 1.0  # bound_th >= 1 is a radius in pixels
    empty = np.zeros_like(gt)
    assert db_eval_iou(empty, empty) == 1.0 and f_measure(empty, empty) == 1.0  # absent in both
    assert db_eval_iou(gt, empty) == 0.0 and f_measure(empty, gt) == 0.0  # missed: P = 1, R = 0
    assert f_measure(square(y=0, x=0, size=10), square(y=80, x=80, size=10)) == 0.0
    assert boundary_radius((480, 854)) == 8.0 and boundary_radius((480, 910)) == 9.0
    assert disk(2).sum() == 13 and disk(8).shape == (17, 17)


def test_statistics_bins_and_the_uint8_quirk():
    mean, recall, decay = db_statistics(np.arange(10) / 10)
    assert mean == pytest.approx(0.45) and recall == pytest.approx(0.4)
    assert decay == pytest.approx(0.1 - 0.8)  # bins [0:3] and [7:10]
    assert np.isnan(db_statistics(np.ones(300))[2])  # the toolkit's uint8 cast wraps past 256 frames


def test_protocol_drops_first_and_last_frames_and_pads_objects():
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 12:18, 12:18] = 2
    gt[:, 0, :] = 255  # void counts as background
    pred = gt.copy()
    pred[pred == 255] = 0
    pred[0] = 0  # the first and last frames do not count
    pred[-1] = 0
    pred[2][pred[2] == 2] = 0  # object 2 missed in frame 2
    scores = evaluate_sequence("s", gt, pred)
    assert [s.object_id for s in scores] == [1, 2]
    assert np.array_equal(scores[0].j, [1, 1, 1]) and np.array_equal(scores[1].j, [1, 0, 1])
    report = summarize(scores)
    assert report["J"] == pytest.approx((1 + 2 / 3) / 2) and report["per_sequence"]["s"]["J"] == report["J"]
    assert report["JF"] == pytest.approx((report["J"] + report["F"]) / 2)
    only_one = np.where(pred == 2, 0, pred)  # a prediction without object 2 is zero-padded
    assert np.array_equal(evaluate_sequence("s", gt, only_one)[1].j, [0, 0, 0])
    with pytest.raises(ValueError, match="object id 3"):
        evaluate_sequence("s", gt, np.full_like(gt, 3))


def test_a_radius_past_the_diagonal_is_cut_there_with_the_same_f():
    import cv2

    gt, pred = square(h=20, w=20, y=2, x=2, size=5), square(h=20, w=20, y=12, x=12, size=5)
    assert boundary_radius((20, 20), 1e9) == 29.0  # ceil(hypot(20, 20)); once a 2e9-wide disk (out of memory)
    wide = disk(60)  # any radius past the diagonal dilates a boundary over the whole image
    assert cv2.dilate(seg2bmap(gt).astype(np.uint8), wide).all()
    assert f_measure(pred, gt, bound_th=1e9) == f_measure(pred, gt, bound_th=60) == 1.0
    assert f_measure(pred, gt, bound_th=3) == 0.0
    for bad in (-1.0, float("nan"), float("inf")):  # once a negative disk or "cannot convert float NaN"
        with pytest.raises(ValueError, match="bound_th must be a finite number >= 0"):
            boundary_radius((20, 20), bad)


@pytest.mark.parametrize(
    "gt_dtype, pred, message",
    [
        (np.uint8, lambda m: m.astype(np.float32) + 0.5, "s: prediction mask must hold whole-number ids in 0..255, got dtype float32"),
        (np.uint8, lambda m: m.astype(np.int64) - 1, "s: prediction mask must hold whole-number ids .* from -1 to 0"),
        (np.int16, lambda m: m, "s: ground-truth mask must hold whole-number ids .* from 0 to 300"),
        (np.uint8, lambda m: m[0], "s: prediction masks must be \\[T, H, W\\] ids, got shape \\[20, 20\\]"),
    ],
)
def test_masks_that_are_not_ids_are_refused_by_sequence_and_role(gt_dtype, pred, message):
    """Once scored silently: fractional or negative ids matched no object (J = 0), 300 became 300 objects."""
    gt = np.zeros((4, 20, 20), gt_dtype)
    gt[:, 5:10, 5:10] = 300 if gt_dtype == np.int16 else 1
    with pytest.raises(ValueError, match=message):
        evaluate_sequence("s", gt, pred(np.where(gt > 0, 1, 0).astype(np.uint8)))
    ids = np.where(gt > 0, 1, 0)
    assert np.array_equal(evaluate_sequence("s", ids.astype(float), ids.astype(bool))[0].j, [1, 1])  # whole floats and bools are ids


def test_folders_score_and_name_what_is_missing(tmp_path):
    from mnemovision.vision.io import write_mask
    from mnemovision.vos.metrics import evaluate_folders

    for folder in ("gt", "pred"):
        (tmp_path / folder / "seq").mkdir(parents=True)
        for t in range(4):
            write_mask(tmp_path / folder / "seq" / f"{t:05d}.png", square(20, 24, 5, 5, 6).astype(np.uint8))
    assert evaluate_folders(tmp_path / "pred", tmp_path / "gt")["JF"] == 1.0
    davis = tmp_path / "davis" / "Annotations" / "480p"  # a DAVIS root: Annotations/480p/<seq>/
    davis.mkdir(parents=True)
    (tmp_path / "gt" / "seq").rename(davis / "seq")
    assert evaluate_folders(tmp_path / "pred", tmp_path / "davis")["per_sequence"] == {"seq": {"J": 1.0, "F": 1.0}}
    (davis / "seq").rename(tmp_path / "gt" / "seq")
    with pytest.raises(FileNotFoundError, match="nogt: ground-truth folder not found"):  # once a bare [Errno 2]
        evaluate_folders(tmp_path / "pred", tmp_path / "nogt")
    with pytest.raises(FileNotFoundError, match="nopred: prediction folder not found"):
        evaluate_folders(tmp_path / "nopred", tmp_path / "gt")


def test_boundaries_at_the_image_border_and_a_one_pixel_radius():
    """seg2bmap's last row and column compare only along the border, and its corner is never a
    boundary, so a mask filling the image has none; bound_th = 1 is already a radius in pixels."""
    assert not seg2bmap(np.ones((5, 6), bool)).any()
    corner = np.zeros((4, 4), bool)
    corner[2:, 2:] = True  # touches the bottom and right borders
    expected = np.array([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0]], bool)
    assert np.array_equal(seg2bmap(corner), expected)
    assert boundary_radius((20, 20), 1.0) == 1.0 and boundary_radius((20, 20), 0.5) == 15.0  # ceil(0.5 * 28.3)
    assert f_measure(square(x=42), square(), bound_th=1.0) < 1.0 == f_measure(square(x=41), square(), bound_th=1.0)


def test_objects_come_from_the_first_frame_and_three_frames_are_needed():
    gt = np.zeros((4, 20, 20), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[2:, 12:18, 12:18] = 2  # appears after the first frame: not an object of the protocol
    assert [s.object_id for s in evaluate_sequence("s", gt, np.where(gt == 2, 0, gt))] == [1]
    with pytest.raises(ValueError, match="s: 2 frames; .* at least 3"):
        evaluate_sequence("s", gt[:2], gt[:2])


def test_summary_averages_each_statistic_over_objects_and_the_csvs_hold_them(tmp_path):
    import csv

    from mnemovision.vos.metrics import ObjectScore, write_csvs

    a = ObjectScore("a", 1, j=np.array([1.0, 0.8, 0.6, 0.4]), f=np.array([0.2, 0.2, 0.9, 0.9]))
    b = ObjectScore("b", 1, j=np.array([0.0, 0.0, 0.0, 0.0]), f=np.array([1.0, 1.0, 1.0, 0.0]))
    report = summarize([a, b])
    # four frames: the toolkit's first bin is frames [0:2], its last [2:4]
    # a: J mean 0.7, recall 0.75, decay 0.9 - 0.5; F 0.55, 0.5, 0.2 - 0.9
    # b: J 0, 0, 0; F 0.75, 0.75, 1.0 - 0.5
    expected = {"J": 0.35, "J_recall": 0.375, "J_decay": 0.2, "F": 0.65, "F_recall": 0.625, "F_decay": -0.1, "JF": 0.5}
    assert {k: report[k] for k in expected} == pytest.approx(expected)
    assert report["per_sequence"]["a"] == pytest.approx({"J": 0.7, "F": 0.55})
    assert report["per_sequence"]["b"] == pytest.approx({"J": 0.0, "F": 0.75})
    global_csv, seq_csv = write_csvs(report, tmp_path)
    header, values = list(csv.reader(global_csv.open()))
    assert dict(zip(header, map(float, values))) == pytest.approx(
        {"J&F-Mean": 0.5, "J-Mean": 0.35, "J-Recall": 0.375, "J-Decay": 0.2, "F-Mean": 0.65, "F-Recall": 0.625, "F-Decay": -0.1})
    rows = list(csv.reader(seq_csv.open()))
    assert rows[0] == ["Sequence", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert rows[1][0] == "a_1" and list(map(float, rows[1][1:])) == pytest.approx([0.7, 0.75, 0.4, 0.55, 0.5, -0.7])


def test_folders_read_the_prediction_pick_sequences_and_name_empty_folders(tmp_path):
    from mnemovision.vision.io import write_mask
    from mnemovision.vos.metrics import evaluate_folders

    for seq, shift in (("good", 0), ("off", 10)):  # "off" predicts the square 10 px to the right
        for t in range(4):
            write_mask(tmp_path / "gt" / seq / f"{t:05d}.png", square(20, 24, 5, 2, 6).astype(np.uint8))
            write_mask(tmp_path / "pred" / seq / f"{t:05d}.png", square(20, 24, 5, 2 + shift, 6).astype(np.uint8))
    report = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert report["per_sequence"]["good"] == {"J": 1.0, "F": 1.0}
    assert report["per_sequence"]["off"]["J"] == 0.0 and report["per_sequence"]["off"]["F"] < 1.0
    assert report["J"] == 0.5
    assert evaluate_folders(tmp_path / "pred", tmp_path / "gt", sequences=["off"])["J"] == 0.0
    (tmp_path / "gt" / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no ground-truth masks"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match="bare: no sequence folders"):
        evaluate_folders(tmp_path / "pred", tmp_path / "bare")


def test_statistics_skip_nan_frames_and_empty_inputs_are_named():
    """The toolkit's nanmean: a frame scored NaN (an ObjectScore a user builds) does not count."""
    mean, recall, _ = db_statistics(np.array([1.0, np.nan, 0.5, 0.25]))
    assert mean == pytest.approx(1.75 / 3)
    assert recall == 0.25  # as in the toolkit: NaN > 0.5 is False, so the NaN frame counts as a miss here
    with pytest.raises(ValueError, match="no objects to summarize"):
        summarize([])
    none = np.zeros((0, 20, 20), np.uint8)  # zero frames: the frame-count rule speaks, not np.stack
    with pytest.raises(ValueError, match="s: 0 frames; .* at least 3"):
        evaluate_sequence("s", none, none)


def test_csv_values_keep_six_decimals(tmp_path):
    import csv

    from mnemovision.vos.metrics import ObjectScore, write_csvs

    third = ObjectScore("a", 1, j=np.array([1.0, 0.0, 0.0]), f=np.array([1.0, 1.0, 0.0]))
    global_csv, seq_csv = write_csvs(summarize([third]), tmp_path)
    _, values = list(csv.reader(global_csv.open()))
    assert values[1] == "0.333333" and values[4] == "0.666667"  # J-Mean, F-Mean
    assert list(csv.reader(seq_csv.open()))[1][1] == "0.333333"
