"""RRE encoding (rfbproto 7.7.3): a background colour and a list of single-colour subrectangles.

The background is the most common colour of the rectangle (of a sample of it, for big ones); the other
pixels are covered by rectangles found with :func:`.classify.find_subrects` (horizontal runs merged across
rows, all vectorised). When the result would be larger than Raw (photos, noise), a Raw rectangle is sent
instead — the client listed RRE, and every client accepts Raw.
"""

from __future__ import annotations

import struct

import numpy as np

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..region import Rect
from .base import EncodeJob, Encoder
from .classify import PixelLayout, Values, chain_heads, client_values, find_subrects, layout_for, tile_colours
from .hextile import raw_rect

#: the background is the most common colour of about this many sampled pixels
BACKGROUND_SAMPLE = 16384
#: RRE header: number-of-subrectangles (rfbproto 7.7.3); the background PIXEL follows
RRE_COUNT = struct.Struct(">I")
#: RRE subrectangle after its PIXEL: x, y, width, height
RRE_SUBRECT = np.dtype([("x", ">u2"), ("y", ">u2"), ("w", ">u2"), ("h", ">u2")])


class RREEncoder(Encoder):
    """RRE (encoding 2). Stateless."""

    encoding = Encoding.RRE

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        layout = layout_for(job.pixel_format)
        values = client_values(job, rect)
        body = encode_rre(values, layout)
        if body is None:
            return [raw_rect(rect, values, layout)]
        return [rect_header(*rect, Encoding.RRE) + body]

    def encode_fill(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """The background colour and no subrectangles."""
        pixel = layout_for(job.pixel_format).pixel_bytes(client_values(job, rect._replace(w=1, h=1))[0])
        return [rect_header(*rect, Encoding.RRE) + RRE_COUNT.pack(0) + pixel.tobytes()]


def encode_rre(values: Values, layout: PixelLayout) -> bytes | None:
    """The RRE data of (h, w) pixel values, or None when it would not be smaller than Raw."""
    h, w = values.shape
    bpp = layout.bpp
    raw_size = h * w * bpp
    record = bpp + RRE_SUBRECT.itemsize
    # the background: the most common colour of a sample (sorting a whole big rectangle would cost more than
    # the rest of the encode; any background gives a correct encoding)
    flat = values.reshape(-1)
    bg = tile_colours(flat[:: max(1, flat.size // BACKGROUND_SAMPLE)].reshape(1, -1), None).bg
    # photos and noise: a rectangle must start at every chain head of another colour than the background
    need = int(np.count_nonzero(chain_heads(values.reshape(1, h, w)) & (values != bg[0])))
    if 4 + bpp + need * record >= raw_size:
        return None
    sub = find_subrects(values.reshape(1, h, w), bg)
    n = len(sub)
    if 4 + bpp + n * record >= raw_size:
        return None
    out = np.empty((n, record), dtype=np.uint8)
    out[:, :bpp] = layout.pixel_bytes(sub.colour)
    geom = np.empty(n, dtype=RRE_SUBRECT)
    geom["x"], geom["y"], geom["w"], geom["h"] = sub.x, sub.y, sub.w, sub.h
    out[:, bpp:] = geom.view(np.uint8).reshape(n, RRE_SUBRECT.itemsize)
    return RRE_COUNT.pack(n) + layout.pixel_bytes(bg).tobytes() + out.tobytes()
