"""Cameras: pinhole intrinsics and poses, axis conventions, transforms.json, COLMAP, camera paths."""

from mnemovision.vision.cameras.camera import (
    Cameras,
    focal_from_fov,
    fov_from_focal,
    intrinsics_matrix,
    invert_pose,
    opencv_to_opengl,
    opengl_to_opencv,
)
from mnemovision.vision.cameras.colmap import ColmapModel, model_to_cameras, read_model, write_model
from mnemovision.vision.cameras.nerf import NerfFrames, read_transforms, write_transforms
from mnemovision.vision.cameras.paths import look_at, orbit, orbit_from_cameras

__all__ = [
    "Cameras",
    "ColmapModel",
    "NerfFrames",
    "focal_from_fov",
    "fov_from_focal",
    "intrinsics_matrix",
    "invert_pose",
    "look_at",
    "model_to_cameras",
    "opencv_to_opengl",
    "opengl_to_opencv",
    "orbit",
    "orbit_from_cameras",
    "read_model",
    "read_transforms",
    "write_model",
    "write_transforms",
]
