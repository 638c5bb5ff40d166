"""JPEG compression shared by the Tight, TightPNG and JPEG encoders.

libjpeg-turbo through ``simplejpeg`` is used when it is installed (it reads the BGRX frame directly, with no
colour conversion pass in Python); Pillow, a hard dependency, is the fallback.

The client's JPEG Quality Level pseudo-encoding (rfbproto "JPEG Quality Level Pseudo-encoding": 0 = low,
9 = high) is only a hint; :data:`QUALITY_LEVELS` maps it to a libjpeg quality and a chrominance subsampling,
in the spirit of TigerVNC's table (low levels subsample colour more) but with 4:2:0 up to level 6 so that
a full 1080p frame of any content (even random pixels) stays inside a 20 ms encode on one core.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

if TYPE_CHECKING:
    from ..protocol.pixelformat import PixelFormat

try:  # libjpeg-turbo bindings: the fast path
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - exercised only where simplejpeg is missing
    _simplejpeg = None

__all__ = [
    "DEFAULT_QUALITY_LEVEL",
    "QUALITY_LEVELS",
    "JpegSettings",
    "Subsampling",
    "compress_jpeg",
    "is_tpixel_format",
    "settings_for_level",
]


class Subsampling(Enum):
    """Chrominance subsampling (rfbproto "JPEG Subsampling Level Pseudo-Encoding" describes the choices)."""

    S444 = "444"  # no subsampling
    S422 = "422"  # 2X: half the chroma horizontally
    S420 = "420"  # 4X: half the chroma in both directions
    GRAY = "Gray"  # chroma discarded


#: Pillow's ``subsampling`` argument for each mode (Pillow cannot write grayscale from RGB this way: the
#: fallback converts to "L" first).
_PILLOW_SUBSAMPLING = {Subsampling.S444: 0, Subsampling.S422: 1, Subsampling.S420: 2}


@dataclass(frozen=True)
class JpegSettings:
    """What to hand libjpeg: quality 1-100 and chrominance subsampling."""

    quality: int
    subsampling: Subsampling


#: quality level 0-9 → (libjpeg quality, subsampling). Qualities follow TigerVNC's curve; subsampling is
#: 4:2:0 through level 6 (a 1080p frame of random pixels costs ~23 ms at 4:4:4 q79, ~18 ms at 4:2:2 and
#: ~13 ms at 4:2:0; photo-like content stays above 40 dB PSNR at 4:2:0 q79), 4:2:2 at 7, 4:4:4 at 8-9.
QUALITY_LEVELS: tuple[JpegSettings, ...] = (
    JpegSettings(15, Subsampling.S420),
    JpegSettings(29, Subsampling.S420),
    JpegSettings(41, Subsampling.S420),
    JpegSettings(42, Subsampling.S420),
    JpegSettings(62, Subsampling.S420),
    JpegSettings(77, Subsampling.S420),
    JpegSettings(79, Subsampling.S420),
    JpegSettings(86, Subsampling.S422),
    JpegSettings(92, Subsampling.S444),
    JpegSettings(100, Subsampling.S444),
)

#: the level used by encodings that are lossy by nature (JPEG) when the client sent no quality level;
#: noVNC's default is 6 as well
DEFAULT_QUALITY_LEVEL = 6


def settings_for_level(level: int | None) -> JpegSettings:
    """The JPEG settings for a client quality level (None → :data:`DEFAULT_QUALITY_LEVEL`; clamped 0-9)."""
    if level is None:
        level = DEFAULT_QUALITY_LEVEL
    return QUALITY_LEVELS[min(9, max(0, level))]


def is_tpixel_format(pf: PixelFormat) -> bool:
    """Whether ``pf`` is a "TPIXEL" format: true colour, 32 bpp, depth 24, 8-bit channels (rfbproto "Tight
    Encoding"). Only such clients get Tight's 3-byte pixels, the gradient filter, and JPEG/PNG images.
    """
    return (
        bool(pf.true_colour)
        and pf.bits_per_pixel == 32
        and pf.depth == 24
        and pf.red_max == 255
        and pf.green_max == 255
        and pf.blue_max == 255
    )


def compress_jpeg(pixels: NDArray[np.uint8], settings: JpegSettings) -> bytes:
    """Compress a (h, w, 4) BGRX frame region (a view is fine) into a JFIF stream."""
    if _simplejpeg is not None:
        data: bytes = _simplejpeg.encode_jpeg(
            pixels,
            settings.quality,
            colorspace="BGRX",
            colorsubsampling=settings.subsampling.value,
            fastdct=True,
        )
        return data
    return _compress_jpeg_pillow(pixels, settings)


def _compress_jpeg_pillow(pixels: NDArray[np.uint8], settings: JpegSettings) -> bytes:
    """The Pillow fallback of :func:`compress_jpeg`."""
    rgb = np.ascontiguousarray(pixels[..., 2::-1])
    img = Image.fromarray(rgb, "RGB")
    opts: dict[str, Any] = {"quality": settings.quality}
    if settings.subsampling is Subsampling.GRAY:
        img = img.convert("L")
    else:
        opts["subsampling"] = _PILLOW_SUBSAMPLING[settings.subsampling]
    buf = io.BytesIO()
    img.save(buf, "JPEG", **opts)
    return buf.getvalue()
