"""DAVIS-format folders on small files the tests write: frame and mask discovery, the 480p layout,
sparse annotations, masks of another size, and the mask readers and writers."""

import numpy as np
import pytest

from mnemovision.vision.errors import FileFormatError
from mnemovision.vision.io import read_mask, write_image, write_mask
from mnemovision.vos.data import davis_sequence, frame_files, list_sequences, load_sequence, read_masks, write_masks


def write_davis_video(root, name, frames, masks, resolution=""):
    """``frames`` ([H, W, 3] uint8 each) as ``JPEGImages[/480p]/<name>/0000t.jpg`` and ``masks``
    ({t: [H, W] ids}) as ``Annotations[/480p]/<name>/0000t.png``; returns the two folders."""
    images, annotations = root / "JPEGImages" / resolution / name, root / "Annotations" / resolution / name
    for t, frame in enumerate(frames):
        write_image(images / f"{t:05d}.jpg", frame, quality=95)
    for t, mask in masks.items():
        write_mask(annotations / f"{t:05d}.png", mask)
    return images, annotations


def write_video_folder(root, name, frames=4, size=(6, 8), annotated=(0, 2), resolution=""):
    """A DAVIS-format video of flat grey frames (level 10 t) with masks for the ``annotated`` frames
    (object 1 at row t)."""
    masks = {t: np.zeros(size, np.uint8) for t in annotated}
    for t, mask in masks.items():
        mask[t] = 1
    return write_davis_video(root, name, [np.full((*size, 3), 10 * t, np.uint8) for t in range(frames)], masks, resolution)


def test_sequences_map_sparse_annotations_to_their_frames(tmp_path):
    images, annotations = write_video_folder(tmp_path, "walk", annotated=(0, 2))
    (images / "notes.txt").write_text("not a frame")
    (images / "00004.JPG").write_bytes((images / "00003.jpg").read_bytes())  # suffixes in any case
    seq = load_sequence(images, annotations)
    assert seq.name == "walk" and len(seq) == 5 and [p.name for p in seq.frames][-1] == "00004.JPG"
    assert sorted(seq.annotations) == [0, 2]
    assert seq.frame(2).mean() == pytest.approx(20, abs=2) and seq.mask(2)[2].all() and seq.mask(2).sum() == 8
    assert load_sequence(images, None).annotations == {} and load_sequence(images, tmp_path / "none").annotations == {}
    assert load_sequence(images, None, name="walk-2").name == "walk-2"  # a name other than the folder's
    write_mask(annotations / "00009.png", np.zeros((6, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"00009.png: no frame named 00009 in .*walk"):
        load_sequence(images, annotations)
    with pytest.raises(FileNotFoundError, match=r"empty: no frames \(.jpg, .jpeg, .png\)"):
        frame_files(tmp_path / "empty")


def test_davis_roots_with_and_without_the_480p_level(tmp_path):
    write_video_folder(tmp_path / "flat", "b")
    write_video_folder(tmp_path / "flat", "a")
    (tmp_path / "flat" / "JPEGImages" / "README").write_text("a file, not a sequence")
    assert list_sequences(tmp_path / "flat") == ["a", "b"]
    write_video_folder(tmp_path / "release", "c", resolution="480p")
    assert list_sequences(tmp_path / "release") == ["c"]
    seq = davis_sequence(tmp_path / "release", "c")
    assert seq.name == "c" and len(seq) == 4 and sorted(seq.annotations) == [0, 2]
    with pytest.raises(FileNotFoundError, match="no JPEGImages folder"):
        list_sequences(tmp_path / "nothing")


def test_a_mask_a_pixel_off_its_frame_is_resized_nearest_with_a_warning(tmp_path):
    images, annotations = write_video_folder(tmp_path, "v", annotated=())
    mask = np.zeros((3, 4), np.uint8)
    mask[:, 2:] = 7
    write_mask(annotations / "00000.png", mask)
    seq = load_sequence(images, annotations)
    with pytest.warns(UserWarning, match=r"00000.png: mask is 4x3, its frame 8x6; resized \(nearest\)"):
        resized = seq.mask(0, (6, 8))
    expected = np.zeros((6, 8), np.uint8)
    expected[:, 4:] = 7  # ids stay ids: no blend of 0 and 7
    np.testing.assert_array_equal(resized, expected)
    np.testing.assert_array_equal(seq.mask(0), mask)


def test_mask_folders_read_and_write_every_frame(tmp_path):
    masks = np.zeros((2, 6, 8), np.uint8)
    masks[0, 1], masks[1, 2:4] = 3, 1
    write_masks(tmp_path / "out", ["f0", "f1"], masks)
    np.testing.assert_array_equal(read_mask(tmp_path / "out" / "f1.png"), masks[1])
    np.testing.assert_array_equal(read_masks(tmp_path / "out", ["f0", "f1"], (6, 8)), masks)
    with pytest.raises(FileNotFoundError, match=r"f2.png: mask missing \(every frame needs one\)"):
        read_masks(tmp_path / "out", ["f0", "f2"], (6, 8))
    with pytest.raises(FileFormatError, match=r"f0.png: size: expected 9x6"):
        read_masks(tmp_path / "out", ["f0"], (6, 9))
