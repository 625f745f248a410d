"""Conversions between the job's images (H x W x 3 uint8 sRGB, row 0 at the top) and tensors.

Pixels for the VAE are in [-1, 1]; ControlNet conditioning images are in [0, 1] (as ControlNets were
trained); masks are in [0, 1] with 1 = repaint.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def is_grey_view(image: np.ndarray) -> bool:
    """Whether ``image`` is one plane seen as three channels (``jobs.images.grey_view``)."""
    return image.ndim == 3 and image.shape[2] == 3 and image.strides[2] == 0


def fit(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, bool]:
    """``image`` at width x height (area filter when shrinking, bilinear when growing); True if resized.
    A grey view stays one plane (resized as one)."""
    if image.ndim == 2:
        image = np.broadcast_to(image[:, :, None], image.shape + (3,))
    if is_grey_view(image):
        plane = image[:, :, 0]
        h, w = plane.shape
        if (w, h) != (width, height):
            interp = cv2.INTER_AREA if w * h > width * height else cv2.INTER_LINEAR
            plane = cv2.resize(np.ascontiguousarray(plane, dtype=np.uint8), (width, height), interpolation=interp)
        resized = (w, h) != (width, height)
        return np.broadcast_to(plane.astype(np.uint8, copy=False)[:, :, None], (height, width, 3)), resized
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image, False
    interp = cv2.INTER_AREA if w * h > width * height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp), True


def _chw(image: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 -> 3 x H x W uint8 tensor sharing the array's memory; a grey view's one plane
    (copied once, 1 byte a pixel, since torch wants writable memory) is expanded without a copy."""
    if is_grey_view(image):
        return torch.from_numpy(np.array(image[:, :, 0])).expand(3, -1, -1)
    return torch.from_numpy(image).permute(2, 0, 1)


def to_pixels(image: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 H x W x 3 -> 1 x 3 x H x W in [-1, 1]."""
    t = _chw(image)[None].float().div(127.5).sub(1.0)
    return t.to(device=device, dtype=dtype)


def to_control(image: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 H x W x 3 -> 1 x 3 x H x W in [0, 1]."""
    t = _chw(image)[None].float().div(255.0)
    return t.to(device=device, dtype=dtype)


def to_mask(image: np.ndarray) -> np.ndarray:
    """H x W (x 3) uint8 -> H x W float32 in [0, 1]; white (255) = repaint."""
    m = image.astype(np.float32)
    if m.ndim == 3:
        m = m[:, :, :3].mean(axis=2)
    return m / 255.0


def from_pixels(pixels: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [-1, 1] -> uint8 H x W x 3 (rounded, clipped), C-contiguous.

    Made contiguous here, on the device and in uint8, once: the raw-pixel answer, the PNG writer and
    the bake all need interleaved rows, and a strided view costs each of them a copy of its own."""
    x = pixels[0].float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round()
    return x.to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()
