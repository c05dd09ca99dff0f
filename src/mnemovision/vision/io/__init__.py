"""Image, video, mask and PLY input/output."""

from mnemovision.vision.io.image import composite_alpha, read_image, to_float, to_uint8, write_image
from mnemovision.vision.io.masks import davis_palette, mask_ids, overlay_mask, read_mask, write_mask
from mnemovision.vision.io.ply import read_ply, write_ply
from mnemovision.vision.io.video import iter_video, read_video, video_fps, write_video

__all__ = [
    "composite_alpha",
    "davis_palette",
    "iter_video",
    "mask_ids",
    "overlay_mask",
    "read_image",
    "read_mask",
    "read_ply",
    "read_video",
    "to_float",
    "to_uint8",
    "video_fps",
    "write_image",
    "write_mask",
    "write_ply",
    "write_video",
]
