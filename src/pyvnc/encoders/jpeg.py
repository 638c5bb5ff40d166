"""JPEG encoding (rfbproto "JPEG Encoding", encoding 21): each rectangle is one complete JFIF image.

The image carries RGB whatever the client's pixel format, so the encoder serves TPIXEL-capable clients only
(32 bpp, depth 24, 8-bit channels), as Tight's JpegCompression does. Every image carries its own
quantisation and Huffman tables. Quality comes from the client's JPEG Quality Level pseudo-encoding, level
:data:`~.jpegutil.DEFAULT_QUALITY_LEVEL` when it sent none.
"""

from __future__ import annotations

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import PixelFormat
from ..region import Rect
from .base import EncodeJob, Encoder
from .jpegutil import compress_jpeg, is_tpixel_format, settings_for_level

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
        data = compress_jpeg(pixels, settings_for_level(job.quality))
        return [rect_header(*rect, self.encoding) + data]
