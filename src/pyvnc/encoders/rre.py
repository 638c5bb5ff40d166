"""RRE encoding (rfbproto 7.7.3): a background colour and a list of single-colour subrectangles.

The background is the most common colour of the rectangle (of a sample of it, for big ones); the other
pixels are covered by rectangles found with :func:`.classify.runs_subrects` (horizontal runs of one
colour extended down the rows, all vectorised). When the result would be larger than Raw (photos, noise), a
Raw rectangle is sent instead — the client listed RRE, and every client accepts Raw. For a big rectangle
that is decided first from pairs of rows every 16 rows: photographs and noise go as Raw without the pixels
of the whole rectangle ever being converted or compared.
"""

from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import converter_for
from ..region import Rect
from .base import EncodeJob, Encoder
from .classify import PixelLayout, Values, chain_heads, client_values, layout_for, runs_subrects, tile_colours
from .hextile import raw_rect
from .raw import RawEncoder

#: the background is the most common colour of about this many sampled pixels
BACKGROUND_SAMPLE = 16384
#: rows of a big rectangle are sampled in pairs, one pair every this many rows, to estimate its chain heads
PAIR_STEP = 16
#: a sampled estimate of at least this many times the chain heads Raw can afford means Raw at once; one of
#: at most :data:`CLEARLY_FEW` times means the exact count is skipped (either way the result is still checked)
CLEARLY_MANY = 1.25
CLEARLY_FEW = 0.5
#: RRE header: number-of-subrectangles (rfbproto 7.7.3); the background PIXEL follows
RRE_COUNT = struct.Struct(">I")
#: RRE subrectangle after its PIXEL: x, y, width, height (big-endian CARD16s)
RRE_GEOMETRY = [("x", ">u2"), ("y", ">u2"), ("w", ">u2"), ("h", ">u2")]
RRE_SUBRECT = np.dtype(RRE_GEOMETRY)


@lru_cache(maxsize=8)
def _record_dtype(pixel: np.dtype[np.unsignedinteger]) -> np.dtype[np.void]:
    """A whole RRE subrectangle: its PIXEL in the client's byte order, then x, y, width, height (packed)."""
    return np.dtype([("pixel", pixel), *RRE_GEOMETRY])


class RREEncoder(Encoder):
    """RRE (encoding 2). Stateless."""

    encoding = Encoding.RRE

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        layout = layout_for(job.pixel_format)
        sample = _sampled_heads(job, rect)
        bg: Values | None = None
        estimate: float | None = None
        if sample is not None:
            bg, estimate = sample
            if estimate >= CLEARLY_MANY * _affordable(rect.h, rect.w, layout.bpp):
                # photos and noise: decided from an eighth of the pixels, sent with one copy of the frame
                return RawEncoder().encode_rect(job, rect)
        values = client_values(job, rect)
        body = encode_rre(values, layout, bg, estimate)
        if body is None:
            return [raw_rect(rect, values, layout)]
        return [rect_header(*rect, Encoding.RRE) + body]

    def encode_fill(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """The background colour and no subrectangles."""
        pixel = layout_for(job.pixel_format).pixel_bytes(client_values(job, rect._replace(w=1, h=1))[0])
        return [rect_header(*rect, Encoding.RRE) + RRE_COUNT.pack(0) + pixel.tobytes()]


def encode_rre(
    values: Values, layout: PixelLayout, bg: Values | None = None, estimate: float | None = None
) -> bytes | None:
    """The RRE data of (h, w) pixel values, or None when it would not be smaller than Raw.

    ``bg`` is the background colour (shape (1,)); by default the most common colour of a sample of
    ``values``. ``estimate``, from :func:`_sampled_heads`, may spare the exact count of chain heads.
    """
    h, w = values.shape
    bpp = layout.bpp
    if bg is None:
        bg = _most_common(values.reshape(-1)[:: _sample_stride(h * w)])
    affordable = _affordable(h, w, bpp)
    if estimate is None or estimate > CLEARLY_FEW * affordable:
        # photos and noise: a rectangle must start at every chain head of another colour than the background
        need = int(np.count_nonzero(chain_heads(values.reshape(1, h, w)) & (values != bg[0])))
        if need >= affordable:
            return None
    sub = runs_subrects(values.reshape(1, h, w), bg)
    n = len(sub)
    if n >= affordable:
        return None
    # one packed record per subrectangle, every field converted to its wire byte order as it is stored
    out = np.empty(n, dtype=_record_dtype(layout.wire_dtype))
    out["pixel"], out["x"], out["y"], out["w"], out["h"] = sub.colour, sub.x, sub.y, sub.w, sub.h
    return RRE_COUNT.pack(n) + layout.pixel_bytes(bg).tobytes() + out.tobytes()


def _affordable(h: int, w: int, bpp: int) -> float:
    """How many subrectangles an RRE rectangle of h × w pixels can hold and still be smaller than Raw."""
    return (h * w * bpp - RRE_COUNT.size - bpp) / (bpp + RRE_SUBRECT.itemsize)


def _sample_stride(pixels: int) -> int:
    return max(1, pixels // BACKGROUND_SAMPLE)


def _most_common(sample: Values) -> Values:
    bg: Values = tile_colours(sample.reshape(1, -1), None).bg
    return bg


def _sampled_heads(job: EncodeJob, rect: Rect) -> tuple[Values, float] | None:
    """A background colour for ``rect`` and its chain heads of other colours, estimated from pairs of rows
    every :data:`PAIR_STEP` rows (an eighth of the pixels); None for a rectangle too short to sample."""
    if rect.h < 4 * PAIR_STEP:
        return None
    conv = converter_for(job.pixel_format)
    cols = slice(rect.x, rect.right)
    upper = conv.convert_array(job.frame[rect.y : rect.bottom - 1 : PAIR_STEP, cols])
    lower = conv.convert_array(job.frame[rect.y + 1 : rect.bottom : PAIR_STEP, cols])
    bg = _most_common(lower.reshape(-1)[:: _sample_stride(lower.size)])
    heads = int(np.count_nonzero(chain_heads(np.stack((upper, lower), axis=1))[:, 1] & (lower != bg[0])))
    return bg, heads * rect.h / int(lower.shape[0])
