"""COLMAP sparse models: ``cameras``, ``images`` and ``points3D`` in binary (.bin) and text (.txt).

Layouts follow COLMAP's documented model format. Image poses are world-to-camera (``qvec`` wxyz,
``tvec``) in OpenCV axes, so they map directly to ``viewmats``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnemovision.vision.cameras.camera import Cameras, intrinsics_matrix
from mnemovision.vision.errors import FileFormatError, read_utf8

_INT64 = (-(2**63), 2**63 - 1)

# model id -> (name, number of params)
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
}
_MODEL_IDS = {name: (model_id, n) for model_id, (name, n) in CAMERA_MODELS.items()}


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [P] float64, layout given by the model


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # [4] wxyz, world-to-camera rotation
    tvec: np.ndarray  # [3] world-to-camera translation
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [P, 2] keypoints
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))  # [P], -1 = none

    @property
    def viewmat(self) -> np.ndarray:
        """[4, 4] world-to-camera."""
        out = np.eye(4)
        out[:3, :3] = quat_to_rotmat(self.qvec)
        out[:3, 3] = self.tvec
        return out


@dataclass
class ColmapPoints:
    ids: np.ndarray  # [N] int64
    xyz: np.ndarray  # [N, 3] float64
    rgb: np.ndarray  # [N, 3] uint8
    error: np.ndarray  # [N] float64
    tracks: list[np.ndarray]  # N arrays [L, 2] of (image_id, point2d_idx)

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: ColmapPoints


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] of a quaternion [4] in wxyz order (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.abs(q).max()  # first to the unit box, so that the norm of huge entries stays finite
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotmat_to_quat(rot: np.ndarray) -> np.ndarray:
    """Quaternion [4] wxyz (w >= 0) of a rotation matrix [3, 3]."""
    m = np.asarray(rot, dtype=np.float64)
    # The eigenvector of the largest eigenvalue of this symmetric matrix is the quaternion (xyzw).
    k = np.array(
        [
            [m[0, 0] - m[1, 1] - m[2, 2], m[1, 0] + m[0, 1], m[2, 0] + m[0, 2], m[2, 1] - m[1, 2]],
            [m[1, 0] + m[0, 1], m[1, 1] - m[0, 0] - m[2, 2], m[2, 1] + m[1, 2], m[0, 2] - m[2, 0]],
            [m[2, 0] + m[0, 2], m[2, 1] + m[1, 2], m[2, 2] - m[0, 0] - m[1, 1], m[1, 0] - m[0, 1]],
            [m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], m[0, 0] + m[1, 1] + m[2, 2]],
        ]
    ) / 3.0
    _, vecs = np.linalg.eigh(k)
    x, y, z, w = vecs[:, -1]
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


# ----------------------------------------------------------------------------------------------
# binary


class _BinReader:
    """Reads little-endian records and reports truncation with the file name and the record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def read(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise FileFormatError(self.path, what, f"{size} more bytes", f"end of file at byte {len(self.data)} (truncated file or wrong record count in the header)")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def read_array(self, dtype: str, count: int, what: str) -> np.ndarray:
        arr_dtype = np.dtype(dtype).newbyteorder("<")
        size = arr_dtype.itemsize * count
        if self.pos + size > len(self.data):
            raise FileFormatError(self.path, what, f"{size} more bytes", f"end of file at byte {len(self.data)} (truncated file or wrong record count in the header)")
        out = np.frombuffer(self.data, dtype=arr_dtype, count=count, offset=self.pos)
        self.pos += size
        return out

    def read_cstring(self, what: str) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise FileFormatError(self.path, what, "a NUL-terminated name", "end of file")
        try:
            text = self.data[self.pos:end].decode("utf-8")
        except UnicodeDecodeError as err:
            raise FileFormatError(self.path, what, "a UTF-8 name", f"byte 0x{self.data[self.pos + err.start]:02x} at offset {self.pos + err.start}") from err
        self.pos = end + 1
        return text

    def count(self, what: str) -> int:
        (n,) = self.read("Q", what)
        # Every record takes at least 8 bytes, so a count beyond the file size is a wrong header.
        if n * 8 > len(self.data) - self.pos:
            raise FileFormatError(self.path, what, f"a record count that fits a {len(self.data)}-byte file", str(n))
        return n

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise FileFormatError(self.path, "end of data", f"{len(self.data)} bytes consumed by the header's record count", f"{len(self.data) - self.pos} trailing bytes")


def _check_finite(path: Path, what: str, values) -> None:
    if not np.isfinite(values).all():
        raise FileFormatError(path, what, "finite numbers", " ".join(map(str, values)))


def _check_pose(path: Path, what: str, qvec_tvec) -> None:
    """QW QX QY QZ TX TY TZ: finite, and a quaternion that can be normalised."""
    _check_finite(path, f"{what} QW QX QY QZ TX TY TZ", qvec_tvec)
    if not np.abs(qvec_tvec[:4]).max() > 0:  # any scale normalises (quat_to_rotmat rescales first)
        raise FileFormatError(path, f"{what} QW QX QY QZ", "a non-zero quaternion", " ".join(map(str, qvec_tvec[:4])))


def read_cameras_bin(path: str | Path) -> dict[int, ColmapCamera]:
    reader = _BinReader(Path(path))
    cameras = {}
    for i in range(reader.count("header (number of cameras)")):
        cam_id, model_id, width, height = reader.read("iiQQ", f"camera record {i}")
        if model_id not in CAMERA_MODELS:
            raise FileFormatError(path, f"camera record {i} model_id", f"one of {sorted(CAMERA_MODELS)}", str(model_id))
        name, n_params = CAMERA_MODELS[model_id]
        params = reader.read_array("f8", n_params, f"camera record {i} params").astype(np.float64)
        _check_finite(reader.path, f"camera record {i} params", params)
        cameras[cam_id] = ColmapCamera(cam_id, name, int(width), int(height), params)
    reader.finish()
    return cameras


def read_images_bin(path: str | Path) -> dict[int, ColmapImage]:
    reader = _BinReader(Path(path))
    images = {}
    for i in range(reader.count("header (number of images)")):
        values = reader.read("idddddddi", f"image record {i}")
        _check_pose(reader.path, f"image record {i}", values[1:8])
        name = reader.read_cstring(f"image record {i} name")
        (n_points,) = reader.read("Q", f"image record {i} number of 2D points")
        raw = reader.read_array("u1", 24 * n_points, f"image record {i} 2D points")
        pts = np.frombuffer(raw.tobytes(), dtype=np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]))
        images[values[0]] = ColmapImage(
            id=values[0],
            qvec=np.array(values[1:5]),
            tvec=np.array(values[5:8]),
            camera_id=values[8],
            name=name,
            xys=np.stack([pts["x"], pts["y"]], axis=-1).astype(np.float64),
            point3d_ids=pts["id"].astype(np.int64),
        )
    reader.finish()
    return images


def read_points3d_bin(path: str | Path) -> ColmapPoints:
    reader = _BinReader(Path(path))
    n = reader.count("header (number of points)")
    ids = np.zeros(n, dtype=np.int64)
    xyz = np.zeros((n, 3))
    rgb = np.zeros((n, 3), dtype=np.uint8)
    error = np.zeros(n)
    tracks = []
    for i in range(n):
        values = reader.read("QdddBBBd", f"point record {i}")
        if values[0] > _INT64[1]:
            raise FileFormatError(reader.path, f"point record {i} POINT3D_ID", "an id below 2**63", str(values[0]))
        ids[i], xyz[i], rgb[i], error[i] = values[0], values[1:4], values[4:7], values[7]
        (length,) = reader.read("Q", f"point record {i} track length")
        tracks.append(reader.read_array("i4", 2 * length, f"point record {i} track").reshape(-1, 2).astype(np.int64))
    reader.finish()
    return ColmapPoints(ids, xyz, rgb, error, tracks)


def write_cameras_bin(path: str | Path, cameras: dict[int, ColmapCamera]) -> None:
    out = [struct.pack("<Q", len(cameras))]
    for cam in cameras.values():
        model_id, n_params = _MODEL_IDS[cam.model]
        if len(cam.params) != n_params:
            raise ValueError(f"camera {cam.id}: model {cam.model} needs {n_params} params, got {len(cam.params)}")
        out.append(struct.pack("<iiQQ", cam.id, model_id, cam.width, cam.height))
        out.append(np.asarray(cam.params, dtype="<f8").tobytes())
    _write_bytes(path, b"".join(out))


def write_images_bin(path: str | Path, images: dict[int, ColmapImage]) -> None:
    out = [struct.pack("<Q", len(images))]
    for img in images.values():
        out.append(struct.pack("<idddddddi", img.id, *img.qvec, *img.tvec, img.camera_id))
        out.append(img.name.encode("utf-8") + b"\x00")
        out.append(struct.pack("<Q", len(img.xys)))
        pts = np.zeros(len(img.xys), dtype=np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]))
        pts["x"], pts["y"], pts["id"] = img.xys[:, 0], img.xys[:, 1], img.point3d_ids
        out.append(pts.tobytes())
    _write_bytes(path, b"".join(out))


def write_points3d_bin(path: str | Path, points: ColmapPoints) -> None:
    out = [struct.pack("<Q", len(points))]
    for i in range(len(points)):
        out.append(struct.pack("<QdddBBBd", points.ids[i], *points.xyz[i], *points.rgb[i], points.error[i]))
        track = np.asarray(points.tracks[i], dtype="<i4").reshape(-1, 2)
        out.append(struct.pack("<Q", len(track)))
        out.append(track.tobytes())
    _write_bytes(path, b"".join(out))


def _write_bytes(path: str | Path, data: bytes) -> None:
    from mnemovision.vision.checkpoints import atomic_write

    with atomic_write(path, "wb") as handle:
        handle.write(data)


# ----------------------------------------------------------------------------------------------
# text


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-comment, non-empty lines."""
    out = []
    for lineno, line in enumerate(read_utf8(path).splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append((lineno, stripped.split()))
    return out


def _parse(path: Path, lineno: int, what: str, tokens: list[str], kinds: str):
    """Convert tokens with kinds ('i' int64, 'f' float, 's' str); errors name the file and line."""
    if len(tokens) < len(kinds):
        raise FileFormatError(path, f"line {lineno} ({what})", f"at least {len(kinds)} fields", f"{len(tokens)}: {' '.join(tokens)!r}")
    names = {"i": "an integer", "f": "a number", "s": "text"}
    values = []
    for i, (token, kind) in enumerate(zip(tokens, kinds)):
        try:
            values.append(int(token) if kind == "i" else float(token) if kind == "f" else token)
        except ValueError:
            raise FileFormatError(path, f"line {lineno} ({what}) field {i + 1}", names[kind], repr(token)) from None
    too_big = [v for v, k in zip(values, kinds) if k == "i" and not _INT64[0] <= v <= _INT64[1]]
    if too_big:
        raise FileFormatError(path, f"line {lineno} ({what})", "integers that fit 64 bits", str(too_big[0]))
    return values


def read_cameras_txt(path: str | Path) -> dict[int, ColmapCamera]:
    path = Path(path)
    cameras = {}
    for lineno, tokens in _data_lines(path):
        cam_id, model, width, height = _parse(path, lineno, "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]", tokens, "isii")
        if model not in _MODEL_IDS:
            raise FileFormatError(path, f"line {lineno} MODEL", f"one of {sorted(_MODEL_IDS)}", repr(model))
        n_params = _MODEL_IDS[model][1]
        if len(tokens) != 4 + n_params:
            raise FileFormatError(path, f"line {lineno} PARAMS", f"{n_params} params for {model}", str(len(tokens) - 4))
        params = np.array(_parse(path, lineno, "PARAMS", tokens[4:], "f" * n_params))
        _check_finite(path, f"line {lineno} PARAMS", params)
        cameras[cam_id] = ColmapCamera(cam_id, model, width, height, params)
    return cameras


def read_images_txt(path: str | Path) -> dict[int, ColmapImage]:
    path = Path(path)
    images = {}
    # Each image takes two lines; the second (its 2D points) may be empty, so blank lines count here.
    lines = [(n, line.strip()) for n, line in enumerate(read_utf8(path).splitlines(), start=1) if not line.startswith("#")]
    i = 0
    while i < len(lines):
        lineno, header = lines[i]
        if not header:
            i += 1
            continue
        tokens = header.split()
        if len(tokens) != 10:
            raise FileFormatError(path, f"line {lineno} (IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME)", "10 fields", f"{len(tokens)}")
        values = _parse(path, lineno, "image header", tokens, "ifffffffis")
        _check_pose(path, f"line {lineno}", values[1:8])
        points_lineno, points_line = lines[i + 1] if i + 1 < len(lines) else (lineno + 1, "")
        pts = points_line.split()
        what = "POINTS2D[] as X Y POINT3D_ID"
        if len(pts) % 3:
            raise FileFormatError(path, f"line {points_lineno} ({what})", "a multiple of 3 fields", str(len(pts)))
        fields = _parse(path, points_lineno, what, pts, "ffi" * (len(pts) // 3))
        xys = np.array([fields[0::3], fields[1::3]], dtype=np.float64).T.reshape(-1, 2)
        images[values[0]] = ColmapImage(
            id=values[0],
            qvec=np.array(values[1:5]),
            tvec=np.array(values[5:8]),
            camera_id=values[8],
            name=values[9],
            xys=xys,
            point3d_ids=np.array(fields[2::3], dtype=np.int64),
        )
        i += 2
    return images


def read_points3d_txt(path: str | Path) -> ColmapPoints:
    path = Path(path)
    rows = _data_lines(path)
    n = len(rows)
    ids = np.zeros(n, dtype=np.int64)
    xyz = np.zeros((n, 3))
    rgb = np.zeros((n, 3), dtype=np.uint8)
    error = np.zeros(n)
    tracks = []
    for i, (lineno, tokens) in enumerate(rows):
        values = _parse(path, lineno, "POINT3D_ID X Y Z R G B ERROR TRACK[]", tokens, "ifffiiif")
        if not all(0 <= c <= 255 for c in values[4:7]):
            raise FileFormatError(path, f"line {lineno} R G B", "integers in 0-255", " ".join(map(str, values[4:7])))
        track = tokens[8:]
        if len(track) % 2:
            raise FileFormatError(path, f"line {lineno} TRACK[]", "pairs of IMAGE_ID POINT2D_IDX", f"{len(track)} fields")
        ids[i], xyz[i], rgb[i], error[i] = values[0], values[1:4], values[4:7], values[7]
        tracks.append(np.array(_parse(path, lineno, "TRACK[]", track, "i" * len(track)), dtype=np.int64).reshape(-1, 2))
    return ColmapPoints(ids, xyz, rgb, error, tracks)


def write_cameras_txt(path: str | Path, cameras: dict[int, ColmapCamera]) -> None:
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    for cam in cameras.values():
        lines.append(" ".join([str(cam.id), cam.model, str(cam.width), str(cam.height)] + [repr(float(p)) for p in cam.params]))
    _write_bytes(path, ("\n".join(lines) + "\n").encode())


def write_images_txt(path: str | Path, images: dict[int, ColmapImage]) -> None:
    lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for img in images.values():
        lines.append(" ".join([str(img.id)] + [repr(float(v)) for v in (*img.qvec, *img.tvec)] + [str(img.camera_id), img.name]))
        lines.append(" ".join(f"{x!r} {y!r} {int(pid)}" for (x, y), pid in zip(img.xys.tolist(), img.point3d_ids)))
    _write_bytes(path, ("\n".join(lines) + "\n").encode())


def write_points3d_txt(path: str | Path, points: ColmapPoints) -> None:
    lines = ["# 3D point list with one line of data per point:", "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
    for i in range(len(points)):
        fields = [str(int(points.ids[i]))] + [repr(float(v)) for v in points.xyz[i]] + [str(int(c)) for c in points.rgb[i]]
        fields.append(repr(float(points.error[i])))
        fields += [str(int(v)) for v in np.asarray(points.tracks[i]).reshape(-1)]
        lines.append(" ".join(fields))
    _write_bytes(path, ("\n".join(lines) + "\n").encode())


# ----------------------------------------------------------------------------------------------
# models


def read_model(folder: str | Path) -> ColmapModel:
    """Read ``cameras``, ``images`` and ``points3D`` from a sparse model folder (.bin preferred, else .txt)."""
    folder = Path(folder)
    for ext, readers in ((".bin", (read_cameras_bin, read_images_bin, read_points3d_bin)), (".txt", (read_cameras_txt, read_images_txt, read_points3d_txt))):
        files = [folder / f"{name}{ext}" for name in ("cameras", "images", "points3D")]
        if all(f.exists() for f in files):
            model = ColmapModel(*(reader(f) for reader, f in zip(readers, files)))
            for image in model.images.values():
                if image.camera_id not in model.cameras:
                    raise FileFormatError(files[1], f"image {image.id} CAMERA_ID", f"one of the ids in {files[0]} {sorted(model.cameras)}", str(image.camera_id))
            return model
    raise FileNotFoundError(f"{folder}: no COLMAP model (cameras, images, points3D as .bin or .txt)")


def write_model(folder: str | Path, model: ColmapModel, ext: str = ".bin") -> None:
    """Write a model as .bin or .txt files into ``folder`` (created if needed)."""
    if ext not in (".bin", ".txt"):
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers = (write_cameras_bin, write_images_bin, write_points3d_bin) if ext == ".bin" else (write_cameras_txt, write_images_txt, write_points3d_txt)
    writers[0](folder / f"cameras{ext}", model.cameras)
    writers[1](folder / f"images{ext}", model.images)
    writers[2](folder / f"points3D{ext}", model.points)


def camera_intrinsics(cam: ColmapCamera) -> tuple[np.ndarray, np.ndarray]:
    """(K [3, 3], dist [4] as k1 k2 p1 p2) of a perspective COLMAP camera.

    Raises:
        ValueError: fisheye and thin-prism models, which a pinhole with k1 k2 p1 p2 cannot express.
    """
    p = cam.params
    if cam.model == "SIMPLE_PINHOLE":
        return intrinsics_matrix(p[0], p[0], p[1], p[2]), np.zeros(4)
    if cam.model == "PINHOLE":
        return intrinsics_matrix(p[0], p[1], p[2], p[3]), np.zeros(4)
    if cam.model == "SIMPLE_RADIAL":
        return intrinsics_matrix(p[0], p[0], p[1], p[2]), np.array([p[3], 0.0, 0.0, 0.0])
    if cam.model == "RADIAL":
        return intrinsics_matrix(p[0], p[0], p[1], p[2]), np.array([p[3], p[4], 0.0, 0.0])
    if cam.model == "OPENCV":
        return intrinsics_matrix(p[0], p[1], p[2], p[3]), np.array(p[4:8])
    raise ValueError(f"camera {cam.id}: model {cam.model} is not supported (use PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV)")


def model_to_cameras(model: ColmapModel) -> Cameras:
    """All registered images as one ``Cameras`` set, sorted by image name (all must share one size)."""
    images = sorted(model.images.values(), key=lambda im: im.name)
    if not images:
        raise ValueError("COLMAP model has no registered images")
    missing = sorted({im.camera_id for im in images} - set(model.cameras))
    if missing:
        raise ValueError(f"COLMAP images refer to cameras {missing} that the model lacks")
    sizes = {(model.cameras[im.camera_id].width, model.cameras[im.camera_id].height) for im in images}
    if len(sizes) != 1:
        raise ValueError(f"COLMAP images have several sizes {sorted(sizes)}; one Cameras set needs one size")
    intr = [camera_intrinsics(model.cameras[im.camera_id]) for im in images]
    (width, height), = sizes
    return Cameras(
        viewmats=np.stack([im.viewmat for im in images]),
        Ks=np.stack([k for k, _ in intr]),
        width=width,
        height=height,
        dist=np.stack([d for _, d in intr]),
        names=tuple(im.name for im in images),
    )
