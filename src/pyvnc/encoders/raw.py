"""Raw encoding (rfbproto 7.7.1): pixels in the client's format, left to right, top to bottom."""

from __future__ import annotations

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import converter_for
from ..region import Rect
from .base import EncodeJob, Encoder


class RawEncoder(Encoder):
    """Raw: the fallback every client supports."""

    encoding = Encoding.RAW

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        conv = converter_for(job.pixel_format)
        pixels = job.frame[rect.y : rect.bottom, rect.x : rect.right]
        # header and pixels joined in one copy (for the server's own format and whole rows, the only one)
        return [b"".join((rect_header(*rect, Encoding.RAW), conv.convert_buffer(pixels).data))]

    def encode_fill(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        conv = converter_for(job.pixel_format)
        pixel = conv.convert(job.frame[rect.y : rect.y + 1, rect.x : rect.x + 1])
        return [rect_header(*rect, Encoding.RAW) + pixel * rect.area]
