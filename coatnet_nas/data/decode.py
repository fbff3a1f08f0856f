"""Decode one image file into a fixed-size RGB array: the only place that opens image files.

Every image becomes ``(3, H, W)`` uint8 the same way: resized (bilinear, antialiased) so that it
*covers* ``H x W`` while keeping its aspect (for a square size: the shorter side becomes ``S``),
then centre-cropped. Nothing is distorted; the long side's margins are lost, as in the usual
ImageNet evaluation crop.

The expensive part of preparing a folder of photos is the JPEG decode, and most of it is wasted
when a 224+ px photo becomes a 64 px proxy image. Two decoders scale inside the JPEG decoder
(libjpeg's DCT scaling, which skips most of the inverse transform) to the smallest size that still
covers the target, and only the small remainder is resampled:

* ``simplejpeg`` — ``decode_jpeg(min_height=, min_width=)``: libjpeg-turbo scaling factors in
  eighths (e.g. 3/8), so the decoded image is close to the target;
* ``draft`` — Pillow's ``Image.draft()``: factors 1/2, 1/4, 1/8 only.

``pillow`` decodes at full size and resizes (the reference, and the path for every non-JPEG file
and every JPEG a fast decoder refuses). ``benchmarks/bench_data.py`` measures all three;
:func:`default_decoder` picks the fastest one installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["DECODERS", "UnreadableImage", "decode_fitted", "default_decoder"]

DECODERS = ("simplejpeg", "draft", "pillow")
_JPEG_MAGIC = b"\xff\xd8\xff"


class UnreadableImage(Exception):
    """A file that no decoder can read; the message says why (it goes into the manifest)."""


def default_decoder() -> str:
    """``simplejpeg`` when installed (fastest in ``bench_data.py``), else Pillow's ``draft``."""
    try:
        import simplejpeg  # noqa: F401
    except ImportError:
        return "draft"
    return "simplejpeg"


def _fit(img, size: tuple[int, int]):
    from PIL import Image, ImageOps

    h, w = size
    return ImageOps.fit(img, (w, h), Image.Resampling.BILINEAR)


def _pillow(data: bytes, size: tuple[int, int], draft: bool) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if draft and img.format == "JPEG":
            h, w = size
            scale = max(h / img.height, w / img.width)  # the covering size, not the target box
            img.draft("RGB", (max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        rgb = img.convert("RGB")
    return np.asarray(_fit(rgb, size), dtype=np.uint8)


def _simplejpeg(data: bytes, size: tuple[int, int]) -> np.ndarray:
    import simplejpeg
    from PIL import Image

    h, w = size
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    scale = max(h / height, w / width)
    pixels = simplejpeg.decode_jpeg(
        data, colorspace="RGB", min_height=round(height * scale), min_width=round(width * scale)
    )
    return np.asarray(_fit(Image.fromarray(pixels), size), dtype=np.uint8)


def decode_fitted(path: str | Path, size: tuple[int, int], decoder: str = "pillow") -> np.ndarray:
    """``path`` as ``(3, H, W)`` uint8 (see the module docstring); raises :class:`UnreadableImage`.

    A fast ``decoder`` is only tried on JPEG data (by its magic bytes, not the suffix); anything
    it refuses falls back to plain Pillow, so the result never depends on which one succeeded
    except for the resampling path.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableImage(f"cannot read file ({exc.strerror or exc})") from None
    if decoder != "pillow" and data.startswith(_JPEG_MAGIC):
        try:
            if decoder == "simplejpeg":
                out = _simplejpeg(data, size)
            else:
                out = _pillow(data, size, draft=True)
            return np.ascontiguousarray(out.transpose(2, 0, 1))
        except (ValueError, OSError):
            pass  # e.g. CMYK or a damaged stream: let Pillow decide, and say why if it can't
    try:
        out = _pillow(data, size, draft=False)
    except Exception as exc:  # Pillow raises many types for bad files; all mean "unreadable"
        # No object addresses: the reason goes into the manifest, which must be reproducible.
        text = re.sub(r"\s*<[^>]* at 0x[0-9a-f]+>", "", str(exc)).splitlines()
        reason = text[0][:160] if text and text[0] else type(exc).__name__
        raise UnreadableImage(f"cannot read image ({reason})") from None
    return np.ascontiguousarray(out.transpose(2, 0, 1))
