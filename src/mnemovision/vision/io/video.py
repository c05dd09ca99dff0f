"""H.264 MP4 video through PyAV (OpenCV's VideoWriter cannot write H.264 with the headless wheels).

Frames are uint8 RGB ``[T, H, W, 3]``; float frames in [0, 1] are converted on write.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from mnemovision.vision.checks import check_int, check_real
from mnemovision.vision.errors import FileFormatError
from mnemovision.vision.io.image import to_uint8


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 25.0, crf: int = 18) -> int:
    """Encode frames to an H.264 (libx264, yuv420p) MP4, written atomically.

    Odd widths or heights are padded by one pixel (edge-replicated), since yuv420p needs even sizes.

    Args:
        frames: iterable of [H, W, 3] uint8 or float frames, all of one size.
        fps: frame rate. crf: x264 quality (0 lossless .. 51 worst; 18 is visually lossless).

    Returns:
        The number of frames written.
    """
    import av

    from mnemovision.vision.checkpoints import atomic_write

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{path}: write_video writes .mp4 files")
    check_real(f"{path}: fps", fps, 0, low_open=True)
    check_int(f"{path}: crf", crf, 0, 51)
    count = 0
    with atomic_write(path, "wb") as handle:
        container = av.open(handle, mode="w", format="mp4")
        stream = None
        size = None
        for frame in frames:
            frame = to_uint8(np.asarray(frame))
            if frame.ndim != 3 or frame.shape[-1] != 3:
                raise ValueError(f"frame {count} must be [H, W, 3], got {frame.shape}")
            if stream is None:
                size = frame.shape[:2]
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width = size[1] + size[1] % 2
                stream.height = size[0] + size[0] % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            elif frame.shape[:2] != size:
                raise ValueError(f"frame {count} has size {frame.shape[:2]}, expected {size} like frame 0")
            if size[0] % 2 or size[1] % 2:
                frame = np.pad(frame, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is None:
            container.close()
            raise ValueError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    return count


def _open_video(path: Path):
    """An open PyAV container with at least one video stream; errors name the file."""
    import av

    if not path.exists():
        raise FileNotFoundError(f"{path}: video not found")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:  # PyAV decodes metadata as UTF-8
        raise FileFormatError(path, "container", "a video file FFmpeg can open", str(err)) from err
    if not container.streams.video:
        container.close()
        raise FileFormatError(path, "streams", "a video stream", "none")
    return container


def iter_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode a video file frame by frame as [H, W, 3] uint8 RGB."""
    import av

    path = Path(path)
    with _open_video(path) as container:
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            raise FileFormatError(path, "video data", "decodable frames", str(err)) from err


def video_fps(path: str | os.PathLike) -> float:
    """Average frame rate of the first video stream."""
    with _open_video(Path(path)) as container:
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else 0.0


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a whole video: ``([T, H, W, 3] uint8 RGB, fps)``; at most ``max_frames`` frames."""
    frames = []
    for frame in iter_video(path):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise FileFormatError(path, "frames", "at least one frame", "none")
    return np.stack(frames), video_fps(path)
