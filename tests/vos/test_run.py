"""Running a model over sequence folders (what ``mnemovision vos run`` does): objects join at the frame
whose annotation first shows them, void pixels are background, and the masks and overlay video
written are the ones returned. The copy-first baseline makes every output frame known in advance."""

import numpy as np
import pytest

from mnemovision.vision.io import overlay_mask, read_image, read_mask, read_video, write_image, write_mask
from mnemovision.vos.api import load_model
from mnemovision.vos.baselines import CopyFirst
from mnemovision.vos.run import run_sequence, sequences_in

H, W, T = 32, 48, 5


def _box(mask, value, y0, y1, x0, x1):
    mask[y0:y1, x0:x1] = value
    return mask


def write_video_folders(root, name="clip", annotated=(0, 2)):
    """``root/frames/<name>/0000t.png`` (smooth colour ramps, which video coding keeps) and ``root/masks/<name>/`` with the annotations:
    frame 0 has object 1 and a void (255) band; frame 2 has object 1 moved and new object 2."""
    y, x = np.mgrid[0:H, 0:W]
    for t in range(T):
        frame = np.stack([4 * x + 10 * t, 6 * y + 20, np.full_like(x, 120 + 10 * t)], axis=-1)
        write_image(root / "frames" / name / f"{t:05d}.png", frame.astype(np.uint8))
    first = _box(_box(np.zeros((H, W), np.uint8), 1, 4, 12, 4, 20), 255, 20, 24, 0, W)
    later = _box(_box(np.zeros((H, W), np.uint8), 1, 16, 28, 30, 44), 2, 8, 16, 14, 26)
    masks_dir = root / "masks" / name
    masks_dir.mkdir(parents=True)
    for t, mask in ((0, first), (2, later)):
        if t in annotated:
            write_mask(masks_dir / f"{t:05d}.png", mask)
    return root / "frames" / name, masks_dir


def test_objects_join_where_first_annotated_and_the_outputs_match_what_is_returned(tmp_path):
    frames_dir, masks_dir = write_video_folders(tmp_path)
    (seq,) = sequences_in(frames_dir, masks_dir)
    assert seq.name == "clip" and sorted(seq.annotations) == [0, 2]
    masks = run_sequence(load_model("copy-first"), seq, tmp_path / "out", fps=10)
    # Frames 0-1: object 1 as first given; the void band is background.
    expected_early = _box(np.zeros((H, W), np.uint8), 1, 4, 12, 4, 20)
    # From frame 2: object 2 joins; object 1 is already tracked, so frame 2's mask of it is not
    # applied (only objects not seen before are added) and copy-first keeps its first mask.
    expected_late = _box(expected_early.copy(), 2, 8, 16, 14, 26)
    assert masks.shape == (T, H, W) and masks.dtype == np.uint8
    for t in range(T):
        assert np.array_equal(masks[t], expected_early if t < 2 else expected_late), t
    written = sorted((tmp_path / "out" / "clip").iterdir())
    assert [p.name for p in written] == [f"{t:05d}.png" for t in range(T)]
    for t, path in enumerate(written):
        assert np.array_equal(read_mask(path), masks[t])
    video, fps = read_video(tmp_path / "out" / "clip.mp4")
    assert video.shape == (T, H, W, 3) and fps == pytest.approx(10)
    for t in range(T):
        frame = read_image(seq.frames[t])
        error = np.abs(video[t] - overlay_mask(frame, masks[t]).astype(float)).mean()
        # H.264 at crf 18 keeps these ramps to about 3 levels; the bare frame is off by 6-9.
        assert error < 4 and error < 0.6 * np.abs(video[t] - frame.astype(float)).mean(), t


def test_without_an_output_folder_nothing_is_written(tmp_path, monkeypatch):
    frames_dir, masks_dir = write_video_folders(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    masks = run_sequence(load_model("copy-first"), sequences_in(frames_dir, masks_dir)[0])
    assert masks.shape == (T, H, W) and sorted(tmp_path.rglob("*")) == before


def test_objects_first_given_after_frame_zero_start_there(tmp_path):
    frames_dir, masks_dir = write_video_folders(tmp_path, annotated=(2,))
    masks = run_sequence(load_model("copy-first"), sequences_in(frames_dir, masks_dir)[0])
    assert not masks[:2].any()
    assert sorted(np.unique(masks[2])) == [0, 1, 2] and all(np.array_equal(masks[t], masks[2]) for t in range(3, T))


def test_a_sequence_without_annotations_is_refused_by_name(tmp_path):
    frames_dir, masks_dir = write_video_folders(tmp_path, annotated=())
    with pytest.raises(FileNotFoundError, match="clip: no annotation masks to start from"):
        run_sequence(load_model("copy-first"), sequences_in(frames_dir, masks_dir)[0])


def test_a_folder_of_folders_is_one_sequence_per_subfolder_in_name_order(tmp_path):
    names = ["delta", "bravo", "echo", "alpha", "charlie"]  # made out of order
    for i, name in enumerate(names):
        write_video_folders(tmp_path, name, annotated=(0,) if i % 2 else (2,))
    (tmp_path / "frames" / "notes.txt").write_text("not a sequence")
    sequences = sequences_in(tmp_path / "frames", tmp_path / "masks")
    assert [s.name for s in sequences] == sorted(names)
    assert [sorted(s.annotations) for s in sequences] == [[0], [0], [2], [2], [2]]  # each with its own masks
    assert all(len(s) == T for s in sequences)


class RecordingCopyFirst(CopyFirst):
    """Copy-first that records which frames it was told were annotated."""

    def __init__(self):
        self.annotated = []

    def memorize(self, state, frame, frame_index, masks, annotated):
        self.annotated.append(annotated)
        super().memorize(state, frame, frame_index, masks, annotated)


def test_only_frames_whose_annotation_adds_objects_are_memorized_as_annotated(tmp_path):
    frames_dir, masks_dir = write_video_folders(tmp_path)
    repeat = _box(np.zeros((H, W), np.uint8), 2, 0, 4, 0, 4)  # frame 3 shows only object 2, already tracked
    write_mask(masks_dir / "00003.png", repeat)
    model = RecordingCopyFirst()
    masks = run_sequence(model, sequences_in(frames_dir, masks_dir)[0])
    # Frame 3's mask would move object 2; it is not applied, so frame 3 is a prediction, not ground truth.
    assert model.annotated == [True, False, True, False, False]
    assert np.array_equal(masks[3], masks[2])


def test_outputs_are_named_like_the_frames_and_a_mask_a_pixel_off_is_resized(tmp_path):
    y, x = np.mgrid[0:H, 0:W]
    names = ["shot_a", "shot_b", "shot_c"]  # not 00000, 00001, ...
    for t, name in enumerate(names):
        write_image(tmp_path / "frames" / f"{name}.png", np.stack([4 * x + 10 * t, 6 * y, np.full_like(x, 100)], -1).astype(np.uint8))
    given = _box(np.zeros((H + 1, W), np.uint8), 1, 4, 12, 4, 20)  # one row more than the frames
    write_mask(tmp_path / "masks" / "shot_a.png", given)
    (seq,) = sequences_in(tmp_path / "frames", tmp_path / "masks")
    with pytest.warns(UserWarning, match="shot_a.png: mask is 48x33, its frame 48x32; resized"):
        masks = run_sequence(CopyFirst(), seq, tmp_path / "out")
    assert masks.shape == (3, H, W) and masks[0, 4:12, 4:20].all() and masks[0].sum() == 8 * 16
    assert sorted(p.name for p in (tmp_path / "out" / "frames").iterdir()) == [f"{name}.png" for name in names]
