import numpy as np
import pytest

from mnemovision.vision.errors import FileFormatError
from mnemovision.vision.io import (
    composite_alpha,
    davis_palette,
    iter_video,
    mask_ids,
    overlay_mask,
    read_image,
    read_mask,
    read_ply,
    read_video,
    to_float,
    to_uint8,
    video_fps,
    write_image,
    write_mask,
    write_ply,
    write_video,
)
from tests.vision.mutation import refusals


def photo():
    import skimage.data

    return skimage.data.astronaut()[::4, ::4].copy()  # real photo, 128x128


# ---------------------------------------------------------------------------------------------
# images


def test_uint8_float_round_trip_is_exact():
    img = photo()
    f = to_float(img)
    assert f.dtype == np.float32 and f.max() <= 1.0
    np.testing.assert_array_equal(to_uint8(f), img)
    np.testing.assert_array_equal(to_uint8(np.array([-0.5, 0.5 / 255, 1.5 / 255, 2.0])), [0, 0, 2, 255])  # clip, round half to even
    with pytest.raises(ValueError, match="dtype"):
        to_float(np.zeros(3, dtype=np.int32))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".PNG"])
def test_image_write_read_lossless(tmp_path, suffix):
    img = photo()
    write_image(tmp_path / f"a{suffix}", img)
    np.testing.assert_array_equal(read_image(tmp_path / f"a{suffix}"), img)


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    img = np.zeros((20, 40, 3), dtype=np.uint8)
    img[:, :20] = 255  # white left half, stored landscape 40x20
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    pil.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "rot.jpg")
    assert out.shape == (40, 20, 3)  # displayed portrait
    assert out[:15].mean() > 200 and out[-15:].mean() < 50  # the white half is now on top


def test_read_image_modes_and_errors(tmp_path):
    rgba = np.dstack([photo(), np.full((128, 128), 128, np.uint8)])
    write_image(tmp_path / "a.png", rgba)
    assert read_image(tmp_path / "a.png").shape == (128, 128, 3)
    assert read_image(tmp_path / "a.png", mode="keep").shape == (128, 128, 4)
    assert read_image(tmp_path / "a.png", mode="L").shape == (128, 128)
    over = composite_alpha(read_image(tmp_path / "a.png", mode="RGBA"), background=(0, 0, 0))
    np.testing.assert_allclose(over, to_float(photo()) * (128 / 255), atol=1e-6)
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(FileFormatError, match="bad.png"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    # 16-bit values over the full range, a third of them past a half step (v / 257 rounds up there)
    red = np.minimum(photo()[..., 0], 254).astype(np.uint16)
    gray = red * 257 + np.array([0, 100, 200], np.uint16)[np.arange(red.shape[1]) % 3]
    Image.fromarray(gray).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode == "I;16"
    expected = np.round(gray / 257.0).astype(np.uint8)  # before, Pillow's convert clipped at 255
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png", mode="L"), expected)
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png"), np.repeat(expected[..., None], 3, -1))
    assert read_image(tmp_path / "g16.png", mode="keep").shape == gray.shape
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(FileFormatError, match=r"f.tiff: mode: expected an 8- or 16-bit image, found F"):
        read_image(tmp_path / "f.tiff")


# ---------------------------------------------------------------------------------------------
# video


def moving_frames(n=12, h=64, w=96):
    base = photo()
    frames = []
    for t in range(n):
        frames.append(np.ascontiguousarray(np.roll(base, 4 * t, axis=1)[:h, :w]))
    return np.stack(frames)


def test_h264_mp4_round_trip(tmp_path):
    import av

    frames = moving_frames()
    path = tmp_path / "clip.mp4"
    assert write_video(path, frames, fps=24, crf=12) == len(frames)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (96, 64)
    back, fps = read_video(path)
    assert back.shape == frames.shape and fps == pytest.approx(24.0)
    from mnemovision.vision.metrics import image_psnr

    # Luma is near-lossless at crf 12 (measured 43 dB); RGB pays for yuv420p's half-resolution chroma (34 dB).
    assert min(image_psnr(a, b, y_channel=True) for a, b in zip(back, frames)) > 40.0
    assert min(image_psnr(a, b) for a, b in zip(back, frames)) > 32.0


def test_odd_sized_video_is_padded_to_even(tmp_path):
    frames = moving_frames(n=3, h=33, w=51)
    write_video(tmp_path / "odd.mp4", frames, fps=10)
    back, _ = read_video(tmp_path / "odd.mp4")
    assert back.shape == (3, 34, 52, 3)


def test_video_errors(tmp_path):
    with pytest.raises(ValueError, match="mp4"):
        write_video(tmp_path / "a.avi", moving_frames(2))
    with pytest.raises(ValueError, match="frame 1"):
        write_video(tmp_path / "a.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((10, 8, 3), np.uint8)])
    assert not (tmp_path / "a.mp4").exists()  # nothing half-written is left behind
    for fps in (0, float("nan"), float("inf")):  # 0 once wrote a file, NaN failed in Fraction
        with pytest.raises(ValueError, match="a.mp4: fps must be a positive finite number"):
            write_video(tmp_path / "a.mp4", moving_frames(2), fps=fps)
    with pytest.raises(ValueError, match="a.mp4: crf must be an int in 0..51, got 52"):
        write_video(tmp_path / "a.mp4", moving_frames(2), crf=52)
    assert not (tmp_path / "a.mp4").exists()
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(FileFormatError, match="junk.mp4"):
        next(iter_video(tmp_path / "junk.mp4"))
    for reader in (read_video, video_fps):
        with pytest.raises(FileNotFoundError, match="missing.mp4: video not found"):
            reader(tmp_path / "missing.mp4")
    assert write_video(tmp_path / "upper.MP4", moving_frames(2)) == 2  # the extension in any case
    assert read_video(tmp_path / "upper.MP4")[0].shape[0] == 2


def test_video_metadata_that_is_not_utf8_names_the_file(tmp_path):
    # Found by random byte mutation: PyAV decodes the encoder tag as UTF-8 and raised
    # UnicodeDecodeError from av.open, naming no file.
    path = tmp_path / "tag.mp4"
    write_video(path, moving_frames(2))
    data = path.read_bytes()
    tag = data.find(b"Lavf")
    assert tag > 0
    path.write_bytes(data[:tag] + b"\xad" + data[tag + 1 :])
    for reader in (read_video, video_fps):
        with pytest.raises(FileFormatError, match="container") as info:
            reader(path)
        assert str(path) in str(info.value)


def test_reads_the_real_driving_video(shared_data):
    frames, fps = read_video(shared_data("talking", "tpsmm", "driving.mp4"), max_frames=10)
    assert frames.shape == (10, 412, 410, 3) or frames.shape[1:3] in ((412, 410), (410, 412))
    assert fps == pytest.approx(25.0)
    assert frames.std() > 10  # real content, not a blank decode


# ---------------------------------------------------------------------------------------------
# masks


def test_palette_mask_round_trip(tmp_path):
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:10, 5:15], mask[20:25, 10:30], mask[0, 0] = 1, 2, 7
    write_mask(tmp_path / "m.png", mask)
    from PIL import Image

    with Image.open(tmp_path / "m.png") as img:
        assert img.mode == "P"
        assert img.getpalette()[3:6] == [128, 0, 0]
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)


@pytest.mark.parametrize("mask, message", [
    (np.full((3, 4), 1.5), "whole-number ids in 0..255, got dtype float64 with values from 1.5 to 1.5"),  # once truncated to 1
    (np.full((3, 4), -1), "values from -1 to -1"),
    (np.zeros((3, 4, 3), np.uint8), "mask must be \\[H, W\\] ids, got shape \\[3, 4, 3\\]"),
    (np.ones((3, 4), np.complex64), "whole-number ids in 0..255, got dtype complex64"),
])
def test_mask_writers_refuse_values_that_are_not_ids(tmp_path, mask, message):
    with pytest.raises(ValueError, match=message):
        write_mask(tmp_path / "m.png", mask)
    with pytest.raises(ValueError, match=message):
        overlay_mask(np.zeros((3, 4, 3), np.uint8), mask)
    assert not (tmp_path / "m.png").exists()


def test_writers_refuse_what_they_would_silently_change(tmp_path):
    with pytest.raises(ValueError, match="m.jpg: write_mask writes palette PNGs"):  # once a PNG named .jpg
        write_mask(tmp_path / "m.jpg", np.zeros((3, 4), np.uint8))
    write_mask(tmp_path / "upper.PNG", np.ones((3, 4), np.uint8))  # the extension in any case
    np.testing.assert_array_equal(read_mask(tmp_path / "upper.PNG"), np.ones((3, 4), np.uint8))
    (tmp_path / "upper.PNG").unlink()
    with pytest.raises(ValueError, match="n.png: image holds NaN in 12 of 36 values"):  # once written as black
        write_image(tmp_path / "n.png", np.where(np.arange(36).reshape(3, 4, 3) % 3 == 0, np.nan, 0.5))
    with pytest.raises(ValueError, match="e.png: image is empty, shape \\[0, 4, 3\\]"):  # once Pillow's message, no file named
        write_image(tmp_path / "e.png", np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="s.png: image must be \\[H, W\\], \\[H, W, 3\\] or \\[H, W, 4\\], got \\[4, 4, 2\\]"):
        write_image(tmp_path / "s.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="r.jpg: JPEG has no alpha channel"):  # once Pillow's OSError, no file named
        write_image(tmp_path / "r.jpg", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="image must be \\[H, W, 3\\] uint8, got shape \\[3, 4, 3\\] dtype float64"):  # once [0, 1] floats read as 0..255
        overlay_mask(np.full((3, 4, 3), 0.5), np.ones((3, 4), np.uint8))
    with pytest.raises(ValueError, match="alpha must be a number in \\[0, 1\\], got 2.0"):
        overlay_mask(np.zeros((3, 4, 3), np.uint8), np.ones((3, 4), np.uint8), alpha=2.0)
    assert list(tmp_path.iterdir()) == []


def test_binary_and_rgb_masks(tmp_path):
    from PIL import Image

    binary = np.zeros((10, 10), np.uint8)
    binary[2:5, 2:5] = 255
    Image.fromarray(binary, mode="L").save(tmp_path / "bin.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "bin.png"), (binary > 0).astype(np.uint8))
    indices = np.array([[0, 1, 2], [3, 2, 1]], dtype=np.uint8)
    Image.fromarray(davis_palette()[indices]).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), indices)
    odd = davis_palette()[indices].copy()
    odd[0, 0] = [1, 2, 3]
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(FileFormatError, match="#010203"):
        read_mask(tmp_path / "odd.png")
    rgba = np.dstack([davis_palette()[indices], np.full(indices.shape, 200, np.uint8)])  # alpha ignored
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgba.png"), indices)
    many = np.arange(1, 9, dtype=np.uint8).reshape(2, 4, 1).repeat(3, -1)  # eight unknown greys
    Image.fromarray(many).save(tmp_path / "many.png")
    with pytest.raises(FileFormatError, match=r"found #010101, #020202, #030303, #040404, #050505$"):  # the first five
        read_mask(tmp_path / "many.png")


def test_damaged_png_data_is_read_or_reported_with_the_file(tmp_path):
    # Five bytes inserted near the end of the IDAT data: Pillow then raises OSError or, where the
    # next chunk header is misread, SyntaxError, which read_mask let through (found by mutation).
    mask = np.zeros((24, 32), np.uint8)
    mask[4:10, 3:20], mask[12:20, 5:9] = 1, 2
    write_mask(tmp_path / "m.png", mask)
    data = (tmp_path / "m.png").read_bytes()
    start = data.find(b"IDAT")
    end = start + 4 + int.from_bytes(data[start - 4 : start], "big")
    reported = 0
    for back in range(16):
        path = tmp_path / f"damaged{back}.png"
        path.write_bytes(data[: end - back] + b"I;\xce\x02\x04" + data[end - back :])
        for reader in (read_mask, read_image):
            try:
                reader(path)
            except FileFormatError as err:
                assert str(path) in str(err)
                reported += 1
    assert reported >= 4  # with this Pillow, 26 of the 32 reads fail


def test_mask_of_the_wrong_size_names_the_file(tmp_path):
    write_mask(tmp_path / "m.png", np.zeros((30, 40), np.uint8))
    with pytest.raises(FileFormatError, match=r"m\.png: size: expected 64x48") as info:
        read_mask(tmp_path / "m.png", expected_shape=(48, 64))
    assert "40x30" in str(info.value)


def test_real_davis_annotation(shared_data):
    from mnemovision.vision.io import read_image

    seq = shared_data("vos", "davis2016", "Annotations", "blackswan")
    frame = read_image(shared_data("vos", "davis2016", "JPEGImages", "blackswan") / "00000.jpg")
    mask = read_mask(seq / "00000.png", expected_shape=frame.shape[:2])
    assert set(np.unique(mask).tolist()) == {0, 1}
    assert 0.02 < mask.mean() < 0.5  # the swan covers a real part of the frame
    over = overlay_mask(frame, mask)
    assert over.shape == frame.shape and not np.array_equal(over, frame)


# ---------------------------------------------------------------------------------------------
# PLY


def gaussian_props(n=50, seed=0):
    rng = np.random.default_rng(seed)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return {name: rng.standard_normal(n).astype(np.float32) for name in names}


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip_with_arbitrary_properties(tmp_path, binary):
    props = gaussian_props()
    props["label"] = np.arange(50, dtype=np.uint8)
    write_ply(tmp_path / "g.ply", props, binary=binary)
    back = read_ply(tmp_path / "g.ply")
    assert list(back) == list(props)  # file order kept
    for name in props:
        if binary:
            np.testing.assert_array_equal(back[name], props[name])
        else:
            np.testing.assert_allclose(back[name], props[name], rtol=1e-6)
    assert back["label"].dtype == np.uint8


def test_truncated_ply_names_the_file(tmp_path):
    write_ply(tmp_path / "g.ply", gaussian_props(n=200))
    raw = (tmp_path / "g.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="cut.ply"):
        read_ply(tmp_path / "cut.ply")
    (tmp_path / "notply.ply").write_bytes(b"hello\nworld\n")
    with pytest.raises(FileFormatError, match="notply.ply"):
        read_ply(tmp_path / "notply.ply")
    with pytest.raises(FileFormatError, match="face"):
        read_ply(tmp_path / "g.ply", element="face")


def test_ascii_ply_value_outside_its_type_names_the_file(tmp_path):
    write_ply(tmp_path / "a.ply", {"x": np.zeros(3), "label": np.arange(3, dtype=np.uint8)}, binary=False)
    data = (tmp_path / "a.ply").read_bytes()
    assert data.endswith(b"0 2\n")
    (tmp_path / "a.ply").write_bytes(data[:-4] + b"0 -1\n")  # -1 in a uchar property: OverflowError before
    with pytest.raises(FileFormatError, match="a.ply: PLY data") as info:
        read_ply(tmp_path / "a.ply")
    assert "-1" in str(info.value)


def test_write_ply_validates(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        write_ply(tmp_path / "a.ply", {"x": np.zeros(3), "y": np.zeros(4)})
    with pytest.raises(ValueError, match="1-D"):
        write_ply(tmp_path / "a.ply", {"x": np.zeros((3, 2))})


@pytest.mark.parametrize("kind", ["binary.ply", "ascii.ply", "video.mp4", "mask.png", "photo.jpg"])
def test_mutated_files_load_or_name_the_file(tmp_path, kind):
    # random edits (tests/vision/mutation.py) found the PLY, PNG and video cases above
    path = tmp_path / kind
    if kind.endswith(".ply"):
        write_ply(path, {"x": np.linspace(0, 1, 6), "label": np.arange(6, dtype=np.uint8)}, binary=kind.startswith("binary"))
        reader = read_ply
    elif kind.endswith(".mp4"):
        write_video(path, moving_frames(3, 32, 32))
        reader = read_video
    elif kind.endswith(".png"):
        mask = np.zeros((24, 32), np.uint8)
        mask[4:10, 3:20] = 1
        write_mask(path, mask)
        reader = read_mask
    else:
        write_image(path, photo()[:32, :32])
        reader = read_image
    assert refusals(path, lambda: reader(path), FileFormatError, 60) >= 5  # the edits do reach the checks


# ---------------------------------------------------------------------------------------------
# what the round trips above leave open (found by source mutation)


def test_grayscale_masks_binary_indices_and_too_large_values(tmp_path):
    from PIL import Image

    binary = np.array([[0, 1, 255, 0]], np.uint8)  # 0/1/255: a binary mask, any value > 0 is the object
    Image.fromarray(binary, mode="L").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png"), [[0, 1, 1, 0]])
    Image.fromarray(binary).convert("1").save(tmp_path / "bit.png")  # a 1-bit PNG
    np.testing.assert_array_equal(read_mask(tmp_path / "bit.png"), [[0, 0, 1, 0]])  # Pillow thresholds at 128
    indices = np.array([[0, 1, 2, 3, 200]], np.uint8)  # several values: indices, also above 127
    Image.fromarray(indices, mode="L").save(tmp_path / "i.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "i.png"), indices)
    Image.fromarray(np.array([[0, 2, 300]], np.uint16)).save(tmp_path / "w.png")  # 16-bit
    with pytest.raises(FileFormatError, match=r"w.png: pixel values: expected indices below 256, found max 300"):
        read_mask(tmp_path / "w.png")
    Image.fromarray(np.zeros((2, 3, 2), np.uint8), mode="LA").save(tmp_path / "la.png")
    with pytest.raises(FileFormatError, match=r"la.png: mode: expected P, L or RGB, found LA"):
        read_mask(tmp_path / "la.png")


def test_mask_ids_refuse_256_and_write_mask_keeps_a_given_palette(tmp_path):
    from PIL import Image

    assert len(np.unique(davis_palette(), axis=0)) == 256  # one index per colour, so RGB masks read back
    with pytest.raises(ValueError, match="values from 0 to 256"):
        write_mask(tmp_path / "m.png", np.array([[0, 256]]))  # a cast would wrap it to 0
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = (10, 20, 30)
    write_mask(tmp_path / "m.png", np.array([[0, 1]], np.uint8), palette=palette)
    with Image.open(tmp_path / "m.png") as img:
        assert img.getpalette()[3:6] == [10, 20, 30]
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), [[0, 1]])
    # bool masks are ids 0/1 and an empty float mask is an empty id map (min() of nothing fails)
    np.testing.assert_array_equal(mask_ids(np.array([[True, False]])), np.array([[1, 0]], np.uint8))
    empty = mask_ids(np.zeros((0, 4), np.float32))
    assert empty.shape == (0, 4) and empty.dtype == np.uint8


def test_overlay_blends_object_pixels_only_and_rounds():
    image = np.full((2, 2, 3), 102, np.uint8)
    mask = np.array([[0, 1], [2, 0]], np.uint8)
    out = overlay_mask(image, mask, alpha=0.3)
    np.testing.assert_array_equal(out[0, 0], [102, 102, 102])  # background untouched
    np.testing.assert_array_equal(out[0, 1], [110, 71, 71])  # 0.7 x 102 + 0.3 x (128, 0, 0) = (109.8, 71.4, 71.4)
    np.testing.assert_array_equal(out[1, 0], [71, 110, 71])  # object 2 is green
    with pytest.raises(ValueError, match=r"image \(2, 2\) and mask \(2, 3\) sizes differ"):
        overlay_mask(image, np.zeros((2, 3), np.uint8))


def test_video_keeps_fractional_frame_rates_pads_by_the_edge_and_stops_at_max_frames(tmp_path):
    frames = np.full((4, 33, 51, 3), 200, np.uint8)
    write_video(tmp_path / "ntsc.mp4", frames, fps=30000 / 1001)
    assert video_fps(tmp_path / "ntsc.mp4") == pytest.approx(30000 / 1001, rel=1e-6)
    back, _ = read_video(tmp_path / "ntsc.mp4")
    assert np.abs(back[:, 33].astype(int) - 200).max() <= 6 and np.abs(back[:, :, 51].astype(int) - 200).max() <= 6  # edge-replicated
    short, _ = read_video(tmp_path / "ntsc.mp4", max_frames=2)
    assert short.shape == (2, 34, 52, 3)


def test_a_still_gif_reads_as_one_frame_at_no_frame_rate(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(tmp_path / "still.gif")  # FFmpeg knows no average rate for it
    frames, fps = read_video(tmp_path / "still.gif")
    assert frames.shape == (1, 6, 8, 3) and fps == 0.0


def test_video_writer_refuses_frames_without_three_channels_and_no_frames(tmp_path):
    with pytest.raises(ValueError, match=r"frame 0 must be \[H, W, 3\], got \(8, 8, 4\)"):
        write_video(tmp_path / "a.mp4", [np.zeros((8, 8, 4), np.uint8)])
    with pytest.raises(ValueError, match="a.mp4: no frames to write"):
        write_video(tmp_path / "a.mp4", [])
    assert not (tmp_path / "a.mp4").exists()


def test_image_keep_mode_and_conversions_as_documented(tmp_path):
    from PIL import Image

    floats = to_float(np.array([-0.5, 1.5]))  # float64 in: the values unchanged, as float32
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, np.array([-0.5, 1.5], np.float32))
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(tmp_path / "p.png", transparency=0)
    assert read_image(tmp_path / "p.png", mode="keep").shape == (2, 2, 4)  # a transparent palette keeps alpha
    Image.fromarray(np.zeros((2, 3, 2), np.uint8), mode="LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png", mode="keep").shape == (2, 3, 4)
    with pytest.raises(ValueError, match="mode must be RGB, RGBA, L or keep, got 'CMYK'"):
        read_image(tmp_path / "la.png", mode="CMYK")
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "i32.tiff")
    with pytest.raises(FileFormatError, match=r"i32.tiff: mode: expected an 8- or 16-bit image, found I with values 0..70000"):
        read_image(tmp_path / "i32.tiff")
    rgba = np.zeros((1, 2, 4), np.float32)
    rgba[..., 3] = 0.25
    np.testing.assert_allclose(composite_alpha(rgba), np.full((1, 2, 3), 0.75))  # 0 x 0.25 + white x 0.75
    with pytest.raises(ValueError, match=r"rgba must be \[H, W, 4\]"):
        composite_alpha(np.zeros((1, 2, 3), np.float32))


def test_image_writer_single_channel_quality_and_refusals(tmp_path):
    write_image(tmp_path / "g.png", np.full((4, 5, 1), 9, np.uint8))
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", mode="keep"), np.full((4, 5), 9, np.uint8))  # [H, W, 1] is grey
    write_image(tmp_path / "lo.jpg", photo(), quality=30)
    write_image(tmp_path / "hi.jpg", photo(), quality=95)
    assert (tmp_path / "lo.jpg").stat().st_size < 0.6 * (tmp_path / "hi.jpg").stat().st_size
    rgb = photo()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    write_image(tmp_path / "a.webp", rgba)  # WebP: lossy colour at the quality given, with alpha
    back = read_image(tmp_path / "a.webp", mode="keep")
    assert back.shape == rgba.shape and np.abs(back[..., 3].astype(int) - 77).max() <= 1
    assert np.abs(back[..., :3].astype(int) - rgb).mean() < 4.0
    with pytest.raises(ValueError, match=r"a.gif: unsupported image suffix '.gif'"):
        write_image(tmp_path / "a.gif", photo())
    with pytest.raises(ValueError, match="b.bmp: BMP has no alpha channel"):
        write_image(tmp_path / "b.bmp", np.zeros((3, 4, 4), np.uint8))
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "b.bmp").exists()


def test_ply_keeps_wide_types_and_refuses_nothing_and_missing_files(tmp_path):
    # float32 would flush 1e-300 to zero and round the wide integers
    props = {"x": np.array([0.1, 1e-300], np.float64), "i": np.array([-5, 2**31 - 1], np.int32), "u": np.array([1, 2**32 - 1], np.uint32)}
    write_ply(tmp_path / "w.ply", props)
    back = read_ply(tmp_path / "w.ply")
    for name, values in props.items():
        assert back[name].dtype == values.dtype, name
        np.testing.assert_array_equal(back[name], values)
    with pytest.raises(ValueError, match="properties must not be empty"):
        write_ply(tmp_path / "e.ply", {})
    write_ply(tmp_path / "p.ply", props, element="point")  # an element of another name
    assert list(read_ply(tmp_path / "p.ply", element="point")) == list(props)
    with pytest.raises(FileFormatError, match="p.ply: elements: expected an element named 'vertex', found \\['point'\\]"):
        read_ply(tmp_path / "p.ply")
    with pytest.raises(FileNotFoundError, match="missing.ply: PLY file not found"):
        read_ply(tmp_path / "missing.ply")
