"""Image metrics: PSNR, SSIM (torch and BasicSR-exact image versions) and LPIPS (local weights only)."""

from mnemovision.vision.metrics.compare import VideoComparison, compare_images, compare_videos
from mnemovision.vision.metrics.lpips import LPIPS
from mnemovision.vision.metrics.psnr_ssim import SSIM_WINDOW, gaussian_window, image_psnr, image_ssim, psnr, rgb_to_y, ssim

__all__ = ["LPIPS", "SSIM_WINDOW", "VideoComparison", "compare_images", "compare_videos", "gaussian_window", "image_psnr", "image_ssim", "psnr", "rgb_to_y", "ssim"]
