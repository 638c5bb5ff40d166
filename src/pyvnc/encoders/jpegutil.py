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
    "JPEG_FLOOR_LEVEL",
    "JPEG_MIN_PSNR",
    "QUALITY_LEVELS",
    "JpegSettings",
    "Subsampling",
    "band_keeps_quality",
    "compress_jpeg",
    "is_tpixel_format",
    "jpeg_psnr",
    "keeps_quality",
    "rough_counts",
    "rough_share",
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


#: from this quality level up, JPEG must keep at least :data:`JPEG_MIN_PSNR` dB (:func:`keeps_quality`)
JPEG_FLOOR_LEVEL = 6
JPEG_MIN_PSNR = 30.0
#: a neighbouring pixel pair is rough when some channel differs by more than this; a region is rough when at
#: least ROUGH_SHARE of its sampled pairs are (noise, dithering: on the corpus's photograph, desktop and text
#: a tenth at most)
ROUGH_STEP = 12
ROUGH_SHARE = 0.3
#: the trial band of rough regions: this many rows (a 4:2:0 MCU), at most this many pixels wide
_TRIAL_ROWS = 16
_TRIAL_WIDTH = 256


def jpeg_psnr(pixels: NDArray[np.uint8], settings: JpegSettings) -> float:
    """The PSNR (dB over R, G and B) a (h, w, 4) BGRX region comes back with after a round trip through JPEG
    with ``settings``."""
    data = compress_jpeg(pixels, settings)
    if _simplejpeg is not None:
        back = _simplejpeg.decode_jpeg(data, colorspace="BGRX")[..., :3]
    else:
        back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[..., ::-1]
    diff = back.astype(np.int32) - pixels[..., :3]
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def rough_share(a: NDArray[np.uint32], b: NDArray[np.uint32]) -> float:
    """The fraction of pixel pairs (0x00RRGGBB values ``a[i]``, ``b[i]``) that differ by more than
    :data:`ROUGH_STEP` in some channel."""
    if a.size == 0:
        return 0.0
    return int(rough_counts(a.reshape(1, -1), b.reshape(1, -1))[0]) / a.size


def rough_counts(a: NDArray[np.uint32], b: NDArray[np.uint32]) -> NDArray[np.intp]:
    """For each row of (k, n) 0x00RRGGBB values: how many pairs ``a[r, i]``, ``b[r, i]`` differ by more than
    :data:`ROUGH_STEP` in some channel."""
    k, n = a.shape
    da = np.ascontiguousarray(a, dtype="<u4").view(np.uint8)
    db = np.ascontiguousarray(b, dtype="<u4").view(np.uint8)
    diff = np.maximum(da, db)
    diff -= np.minimum(da, db)  # |a - b| per channel, in bytes
    # a pair is rough when any channel differs by more than ROUGH_STEP: its 4 flags, read as one word, not 0
    rough = (diff > ROUGH_STEP).view(np.uint32).reshape(k, n)
    counts: NDArray[np.intp] = np.count_nonzero(rough, axis=1)
    return counts


def band_keeps_quality(pixels: NDArray[np.uint8], settings: JpegSettings) -> bool:
    """Whether a JPEG round trip with ``settings`` of a sample band of a (h, w, 4) BGRX region (its middle
    16 rows, at most 256 pixels wide) comes back at :data:`JPEG_MIN_PSNR` or better."""
    h, w = pixels.shape[:2]
    y0 = max(0, (h - _TRIAL_ROWS) // 2)
    x0 = max(0, (w - _TRIAL_WIDTH) // 2)
    x0 -= x0 % 16
    return jpeg_psnr(pixels[y0 : y0 + _TRIAL_ROWS, x0 : x0 + _TRIAL_WIDTH], settings) >= JPEG_MIN_PSNR


def keeps_quality(pixels: NDArray[np.uint8], settings: JpegSettings) -> bool:
    """Whether JPEG with ``settings`` keeps a (h, w, 4) BGRX region above :data:`JPEG_MIN_PSNR`.

    Regions where few neighbouring pixels differ much (photographs, screen content) pass at once, for the
    cost of a sample of 256 pixel pairs; rough ones (noise, dithering) only when a JPEG round trip of a
    sample band does (:func:`band_keeps_quality`): random pixels come back from 4:2:0 q79 at 12.5 dB, a
    photograph with ±16 of noise added at 28.7 dB.
    """
    h, w = pixels.shape[:2]
    if w < 2:
        return True
    rows = pixels[np.linspace(0, h - 1, num=min(h, 8)).astype(np.intp)]
    cols = np.arange(0, w - 1, max(1, (w - 1) * rows.shape[0] // 256))
    words = rows.view("<u4")[..., 0] & np.uint32(0xFFFFFF)
    if rough_share(words[:, cols].reshape(-1), words[:, cols + 1].reshape(-1)) < ROUGH_SHARE:
        return True
    return band_keeps_quality(pixels, settings)
