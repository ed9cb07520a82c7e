"""Pixel work of the converter: read an image and its mask, make them nnU-Net's NaturalImage2DIO files.

Each channel is written as its own 2D PNG (``<case>_0000.png`` ...), the label map as ``<case>.png``
with values {0, 1}. PNG is lossless, so a JPEG source is decoded once here and never re-compressed.
"""
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from nnunetv2_tevia.errors import ConversionError

FOREGROUND_THRESHOLD = 127   # masks saved as {0, 255}: anything brighter than mid-grey is foreground
_MULTI_CHANNEL_MODES = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


@dataclass(frozen=True)
class CaseJob:
    case_id: str
    image: str
    mask: str | None
    images_dir: str             # destination folders, absolute
    labels_dir: str | None
    rgb: bool                   # dataset-wide channel decision
    size: int | None


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    channels_changed: bool      # image had to be turned into the dataset's channel layout
    unexpected_mask_values: bool  # mask held values other than {0, 255} / {0, 1}


def read_channels(path: str) -> np.ndarray:
    """(C, H, W) array: C = 1 for greyscale, 3 for colour (alpha and palettes resolved)."""
    try:
        with Image.open(path) as im:
            if im.mode in _MULTI_CHANNEL_MODES:
                return np.moveaxis(np.asarray(im.convert("RGB")), -1, 0)
            if im.mode == "LA":
                im = im.convert("L")
            arr = np.asarray(im)
    except (OSError, ValueError) as e:
        raise ConversionError(f"{path} cannot be read as an image ({e}): replace or remove the file") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.int32 and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        arr = arr.astype(np.uint16)  # PIL opens some 16-bit PNGs in 32-bit "I" mode
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def is_colour(channels: np.ndarray) -> bool:
    """Three channels that differ somewhere; a grey picture saved as RGB is not colour."""
    return channels.shape[0] == 3 and not (np.array_equal(channels[0], channels[1])
                                           and np.array_equal(channels[0], channels[2]))


def to_layout(channels: np.ndarray, rgb: bool) -> tuple[np.ndarray, bool]:
    """Channels in the dataset's layout (3 if ``rgb`` else 1), and whether a real conversion happened."""
    if rgb:
        if channels.shape[0] == 3:
            return channels, False
        return np.repeat(channels[:1], 3, axis=0), True
    if channels.shape[0] == 1:
        return channels, False
    if not is_colour(channels):
        return channels[:1], False
    # ITU-R 601 luma, as PIL's convert("L") does.
    grey = channels[0] * 0.299 + channels[1] * 0.587 + channels[2] * 0.114
    return np.round(grey).astype(channels.dtype)[None], True


def mask_to_labels(mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """{0, 255} (or already {0, 1}) mask -> uint8 labels {0, 1}; flag values outside those two sets."""
    mask = mask.max(axis=0)  # a colour mask marks foreground in any channel
    values = np.unique(mask)
    if np.all(np.isin(values, (0, 1))):
        return mask.astype(np.uint8), False
    unexpected = not np.all(np.isin(values, (0, 255)))
    return (mask > FOREGROUND_THRESHOLD).astype(np.uint8), unexpected


def resize_channel(channel: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    if channel.shape == (size, size):
        return channel
    if nearest:
        return np.asarray(Image.fromarray(channel).resize((size, size), Image.NEAREST))
    # Float mode keeps 16-bit sources exact and lets PIL's antialiased bilinear filter average freely.
    resized = np.asarray(Image.fromarray(channel.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
    info = np.iinfo(channel.dtype) if np.issubdtype(channel.dtype, np.integer) else None
    if info is None:
        return resized.astype(channel.dtype)
    return np.clip(np.round(resized), info.min, info.max).astype(channel.dtype)


def _save_png(arr: np.ndarray, path: str) -> None:
    if arr.dtype not in (np.uint8, np.uint16):
        raise ConversionError(f"{path}: source pixels are {arr.dtype}; only 8- and 16-bit images can be stored "
                              f"as PNG: convert the source images to 8 or 16 bit first")
    Image.fromarray(arr).save(path, optimize=False, compress_level=1)


def convert_case(job: CaseJob) -> CaseResult:
    channels, changed = to_layout(read_channels(job.image), job.rgb)
    unexpected = False
    labels = None
    if job.mask is not None:
        mask = read_channels(job.mask)
        if mask.shape[1:] != channels.shape[1:]:
            raise ConversionError(f"case {job.case_id}: mask {job.mask} is {mask.shape[2]}x{mask.shape[1]} but image "
                                  f"{job.image} is {channels.shape[2]}x{channels.shape[1]}: fix the pair, or "
                                  f"remove it from the source folder")
        labels, unexpected = mask_to_labels(mask)
    if job.size is not None:
        channels = np.stack([resize_channel(c, job.size, nearest=False) for c in channels])
        if labels is not None:
            labels = resize_channel(labels, job.size, nearest=True)
    for i, channel in enumerate(channels):
        _save_png(channel, os.path.join(job.images_dir, f"{job.case_id}_{i:04d}.png"))
    if labels is not None:
        _save_png(labels, os.path.join(job.labels_dir, f"{job.case_id}.png"))
    return CaseResult(job.case_id, changed, unexpected)
