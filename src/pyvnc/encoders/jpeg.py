"""JPEG encoding (rfbproto "JPEG Encoding", encoding 21): each rectangle is one complete JFIF image.

The image carries RGB whatever the client's pixel format, so the encoder serves TPIXEL-capable clients only
(32 bpp, depth 24, 8-bit channels), as Tight's JpegCompression does. Every image carries its own
quantisation and Huffman tables. Quality comes from the client's JPEG Quality Level pseudo-encoding, level
:data:`~.jpegutil.DEFAULT_QUALITY_LEVEL` when it sent none; from level 6 up, rough content that the level's
settings would return below 30 dB (:func:`~.jpegutil.keeps_quality`) is sent at a higher quality.
"""

from __future__ import annotations

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import PixelFormat
from ..region import Rect
from .base import EncodeJob, Encoder
from .jpegutil import (
    DEFAULT_QUALITY_LEVEL,
    JPEG_FLOOR_LEVEL,
    QUALITY_LEVELS,
    compress_jpeg,
    is_tpixel_format,
    keeps_quality,
    settings_for_level,
)

__all__ = ["JPEGEncoder"]


class JPEGEncoder(Encoder):
    """JPEG (encoding 21): stateless, one image per rectangle."""

    encoding = Encoding.JPEG

    @classmethod
    def supports(cls, pixel_format: PixelFormat) -> bool:
        """Whether JPEG can serve a client of ``pixel_format``: TPIXEL formats only."""
        return is_tpixel_format(pixel_format)

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """The rectangle header followed by a JFIF stream of the rectangle."""
        if rect.is_empty():
            return []
        pixels = job.frame[rect.y : rect.bottom, rect.x : rect.right]
        level = DEFAULT_QUALITY_LEVEL if job.quality is None else job.quality
        settings = settings_for_level(level)
        if level >= JPEG_FLOOR_LEVEL and not keeps_quality(pixels, settings):
            # rough content (noise) would fall below 30 dB: this encoding has no lossless way, so JPEG goes
            # up to 4:4:4 at quality 92 (level 8; random pixels come back at 31.5 dB), or 100 from level 8
            settings = QUALITY_LEVELS[9 if level >= 8 else 8]
        data = compress_jpeg(pixels, settings)
        return [rect_header(*rect, self.encoding) + data]
