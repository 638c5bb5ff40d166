"""Tight encoding (rfbproto "Tight Encoding", encoding 7).

A rectangle is cut into subrectangles no wider than 2048 pixels (the spec's limit) and of at most 65,536
pixels (TigerVNC's and libvncserver's limit; it also keeps every compact length far below its 22-bit
maximum). Each subrectangle is classified with vectorised numpy and sent as:

- **FillCompression** when it has one colour (vertically adjacent solid strips of one colour merge into one
  fill rectangle);
- **BasicCompression + PaletteFilter** when it has few colours: 2 colours as a 1-bit bitmap (rows padded to
  a byte), 3-256 colours as 8-bit indices;
- **JpegCompression** when it has many colours, the client sent a JPEG quality level and its pixel format
  has 3-byte TPIXELs (adjacent JPEG strips merge into bigger images) — except, from quality level 6 up, rough
  strips that JPEG would return below 30 dB (noise; see :func:`.jpegutil.keeps_quality`), which stay lossless;
- otherwise **BasicCompression** with the **CopyFilter**, or the **GradientFilter** for photo-like content
  (TPIXEL formats only, as noVNC and libvncserver assume 3-byte pixels there).

Filtered data shorter than 12 bytes is sent as is; longer data goes through one of four persistent zlib
streams (0: copy, 1: palettes, 2: stored copy data of noise-like strips, 3: gradient), preceded by its compact
length. The streams live as long as the session's encoder, because the client's inflaters must stay in step
with ours.

A big update (:data:`.parallel.SPLIT_PIXELS` or more) uses both cores: while the caller classifies strips,
the pool compresses the JPEG images and filters the full-colour strips; then the BasicCompression data of
the whole update is deflated at once, each big stream in runs side by side (:mod:`.tightzlib`). Control
bytes and their stream-reset bits are settled in order as the strips are cut out, so the client reads the
update as if one thread had made it (JPEG and fills byte for byte the same; deflated data differs in its
bytes, not in what it inflates to).

:class:`TightPNGEncoder` (in :mod:`.tightpng`) shares everything here except BasicCompression, which it
replaces with PNG images.
"""

from __future__ import annotations

import abc
import importlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..capture.base import FrameArray
from ..errors import EncoderError
from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import PixelConverter, PixelFormat, converter_for
from ..region import Rect
from . import parallel
from .base import EncodeJob, Encoder
from .jpegutil import (
    JPEG_FLOOR_LEVEL,
    ROUGH_SHARE,
    JpegSettings,
    band_keeps_quality,
    compress_jpeg,
    is_tpixel_format,
    settings_for_level,
)
from .tightclassify import (
    JPEG_MIN_CHANGE,
    MAX_PALETTE,
    MAX_PALETTE_WITH_JPEG,
    MIN_SOLID_AREA,
    MIN_SOLID_MARGIN,
    Full,
    Kind,
    Palette,
    Solid,
    classify,
    many_colour_strips,
    solid_margins,
)
from .tightzlib import ZStreams

_isal_zlib: ModuleType | None
try:  # ISA-L's deflate: 5-10x faster than stdlib zlib at similar ratios, output readable by any inflater
    _isal_zlib = importlib.import_module("isal.isal_zlib")
except ImportError:  # pragma: no cover - depends on the environment
    _isal_zlib = None

#: the faster deflater in use when installed (``isal.isal_zlib``), else None: stdlib zlib is the fallback
FAST_DEFLATE: ModuleType | None = _isal_zlib

__all__ = [
    "FAST_DEFLATE",
    "MAX_RECT_PIXELS",
    "MAX_RECT_WIDTH",
    "MIN_TO_COMPRESS",
    "TightEncoder",
    "compact_length",
    "split_rect",
]

# --- wire constants (rfbproto "Tight Encoding") ---------------------------------------------------------

#: the widest rectangle Tight may carry
MAX_RECT_WIDTH = 2048
#: the largest subrectangle we send with BasicCompression (as TigerVNC and libvncserver do)
MAX_RECT_PIXELS = 65536
#: filtered data shorter than this is sent uncompressed, without a length
MIN_TO_COMPRESS = 12
#: the largest value a compact length can hold (22 bits)
MAX_COMPACT_LENGTH = 4194303
#: adjacent JPEG strips merge up to this many pixels (a q100 4:4:4 image of noise stays under 4 MiB)
MAX_JPEG_PIXELS = 1 << 19

CTL_FILL = 0x80  # compression-control 1000xxxx: FillCompression
CTL_JPEG = 0x90  # 1001xxxx: JpegCompression
CTL_PNG = 0xA0  # 1010xxxx: TightPNG's PngCompression
CTL_READ_FILTER = 0x40  # BasicCompression bit 6: a filter-id byte follows

FILTER_COPY = 0
FILTER_PALETTE = 1
FILTER_GRADIENT = 2

STREAM_COPY = 0  # CopyFilter data
STREAM_PALETTE = 1  # PaletteFilter data: bitmaps and indices
STREAM_STORED = 2  # incompressible CopyFilter data, deflated at level 0 (stored blocks)
STREAM_GRADIENT = 3  # GradientFilter data

#: the compress level used when the client sent none (TigerVNC's and noVNC's default)
DEFAULT_COMPRESS_LEVEL = 2

#: client compress level 0-9 → (stdlib zlib level for palette data, for full-colour data). Full-colour data
#: gains almost nothing from higher levels on screen content but costs several times the CPU.
_ZLIB_LEVELS: tuple[tuple[int, int], ...] = (
    (1, 1),
    (1, 1),
    (3, 1),
    (4, 1),
    (5, 1),
    (6, 2),
    (6, 3),
    (7, 4),
    (8, 5),
    (9, 6),
)
#: the same for ISA-L (levels 0-3; its level 0 can expand photographs, its level 3 is 10x slower than 2)
_ISAL_LEVELS: tuple[tuple[int, int], ...] = ((1, 1),) * 2 + ((2, 1),) * 3 + ((2, 2),) * 4 + ((3, 2),)

# --- classification thresholds ----------------------------------------------------------------------------

#: a full-colour strip's data is sent stored (deflate level 0, stream 2) when a trial compression of a sample
#: saves less than this fraction: noise-like content costs the deflater most and gains nothing
_STORE_BELOW_RATIO = 1.08
#: the trial sample: this many rows of at most this many pixels
_TRIAL_ROWS = 2
_TRIAL_WIDTH = 512


def compact_length(n: int) -> bytes:
    """A length in Tight's compact representation: 1-3 bytes, 7 bits per byte, low bits first."""
    if n < 0 or n > MAX_COMPACT_LENGTH:
        raise EncoderError(f"Tight data of {n} bytes does not fit a compact length")
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))


def split_rect(rect: Rect, max_width: int = MAX_RECT_WIDTH, max_pixels: int = MAX_RECT_PIXELS) -> list[Rect]:
    """Cut ``rect`` into column chunks of at most ``max_width`` and strips of at most ``max_pixels`` pixels.

    Strip heights are multiples of 16 when possible, so JPEG strips meet on MCU boundaries. The result is in
    column-major order: each column chunk top to bottom.
    """
    out: list[Rect] = []
    for x0 in range(rect.x, rect.right, max_width):
        w = min(max_width, rect.right - x0)
        rows = max(1, max_pixels // w)
        if rows >= 16:
            rows -= rows % 16
        for y0 in range(rect.y, rect.bottom, rows):
            out.append(Rect(x0, y0, w, min(rows, rect.bottom - y0)))
    return out


@dataclass(frozen=True)
class _Context:
    """Per-job settings, worked out once per :class:`EncodeJob`."""

    pixel_format: PixelFormat
    tpixel: bool
    converter: PixelConverter | None  # None for TPIXEL formats: values come straight from the frame
    jpeg: JpegSettings | None  # None: JpegCompression not allowed
    jpeg_floor: bool  # JPEG must keep 30 dB (quality level JPEG_FLOOR_LEVEL and up): see _strip_keeps_quality
    compress: int
    palette_level: int
    full_level: int


#: strips waiting to be merged into one rectangle: tag ("jpeg" or "solid:<value>"), their union, fill colour
_Run = tuple[str, Rect, NDArray[Any] | None]


# --- pixel data ---------------------------------------------------------------------------------------------


def _rgb_bytes_of_values(values: NDArray[Any]) -> bytes:
    """TPIXELs (R, G, B bytes) of 0x00RRGGBB values."""
    return values.astype(">u4").view(np.uint8).reshape(-1, 4)[:, 1:].tobytes()


def _gradient(pixels: FrameArray) -> bytes:
    """GradientFilter (rfbproto "Tight Encoding") of a BGRX region: per component, the difference between
    the value and the prediction left + up - upper-left clamped to 0..255 (outside pixels count as 0),
    modulo 256, as R, G, B bytes.
    """
    return _gradient_array(pixels).tobytes()


def _gradient_array(pixels: FrameArray) -> NDArray[np.uint8]:
    """:func:`_gradient` as an (h, w, 3) array."""
    v = np.empty((*pixels.shape[:2], 3), dtype=np.int16)
    for c in range(3):  # one plain copy per channel: much faster than a reversed-stride gather
        v[..., c] = pixels[..., 2 - c]
    p = np.zeros_like(v)
    p[:, 1:] = v[:, :-1]
    p[1:] += v[:-1]
    p[1:, 1:] -= v[:-1, :-1]
    np.clip(p, 0, 255, out=p)
    np.subtract(v, p, out=v)
    return v.astype(np.uint8)


#: BasicCompression data before deflating: (stream, filter id and parameters, data, deflate level, whether
#: the filter id is sent)
_Plan = tuple[int, bytes, bytes, int, bool]


@dataclass(frozen=True)
class _Basic:
    """A BasicCompression rectangle of a spread update whose data is still to be filtered (``plan``, perhaps
    on the pool) and deflated (with the update's others, :meth:`_TightBase._deflate_all`). Its reset bits
    were taken in order when it was cut out."""

    header: bytes
    reset_bits: int
    plan: _Plan | parallel.Deferred[_Plan]


#: a Tight rectangle, or one still being made (:meth:`_TightBase._emit_run`, :meth:`_TightBase._lossless_piece`)
_Piece = bytes | parallel.Deferred[bytes] | _Basic


def _jpeg_rect(encoding: int, rect: Rect, pixels: FrameArray, settings: JpegSettings, ctl: int) -> bytes:
    """JpegCompression: header, control byte ``ctl``, a compact length and a JFIF stream of the region."""
    data = compress_jpeg(pixels, settings)
    if len(data) > MAX_COMPACT_LENGTH and rect.h > 1:
        # too big for a compact length (huge rectangles at quality 100): halve it (the reset bits, if any,
        # go with the first half)
        top = Rect(rect.x, rect.y, rect.w, rect.h // 2)
        bottom = Rect(rect.x, top.bottom, rect.w, rect.h - top.h)
        return _jpeg_rect(encoding, top, pixels[: top.h], settings, ctl) + _jpeg_rect(
            encoding, bottom, pixels[top.h :], settings, CTL_JPEG
        )
    return rect_header(*rect, encoding) + bytes((ctl,)) + compact_length(len(data)) + data


class _TightBase(Encoder):
    """What Tight and TightPNG share: splitting, classification, fill and JPEG, the zlib streams."""

    def __init__(self, zlib_backend: ModuleType | None = None) -> None:
        self._streams = ZStreams(zlib_backend if zlib_backend is not None else (_isal_zlib or zlib))

    @classmethod
    def supports(cls, pixel_format: PixelFormat) -> bool:
        """Whether this encoding can serve a client of ``pixel_format``."""
        return bool(pixel_format.true_colour)

    def reset(self) -> None:
        """Restart the zlib streams; the next rectangle tells the client to reset its inflaters too.

        Call it when encoded output is thrown away instead of sent (e.g. the pixel format changed while the
        encode ran): the streams advanced over data the client will never see. From then on every
        rectangle is deflated on its own (Z_FULL_FLUSH; see :class:`.tightzlib.ZStreams`), a little less compact.
        """
        self._streams.reset()

    # --- job level -----------------------------------------------------------------------------------------

    def _context(self, job: EncodeJob) -> _Context:
        pf = job.pixel_format
        tpixel = is_tpixel_format(pf)
        compress = DEFAULT_COMPRESS_LEVEL if job.compress is None else min(9, max(0, job.compress))
        table = _ISAL_LEVELS if self._streams.backend is _isal_zlib else _ZLIB_LEVELS
        palette_level, full_level = table[compress]
        return _Context(
            pixel_format=pf,
            tpixel=tpixel,
            converter=None if tpixel else converter_for(pf),
            jpeg=settings_for_level(job.quality) if (job.quality is not None and tpixel) else None,
            jpeg_floor=job.quality is not None and job.quality >= JPEG_FLOOR_LEVEL,
            compress=compress,
            palette_level=palette_level,
            full_level=full_level,
        )

    def encode(self, job: EncodeJob) -> list[bytes]:
        """Encode every rectangle of ``job`` (the per-job settings are worked out once)."""
        ctx = self._context(job)
        spread = parallel.worth_spreading(sum(r.area for r in job.rects))
        out: list[_Piece] = []
        for rect in job.rects:
            out.extend(self._encode(ctx, job.frame, rect, spread))
        return self._resolved(out)

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """Encode one rectangle: one or more Tight rectangles, each with its header."""
        return self.encode(replace(job, rects=(rect,)))

    def _resolved(self, pieces: list[_Piece]) -> list[bytes]:
        """The rectangles of ``pieces``: the caller takes up work no pool thread has started (from the last
        piece back, :func:`.parallel.settle`), then BasicCompression data is deflated, all of it at once."""
        waiting: list[parallel.Deferred[Any]] = []
        for p in pieces:
            if isinstance(p, parallel.Deferred):
                waiting.append(p)
            elif isinstance(p, _Basic) and isinstance(p.plan, parallel.Deferred):
                waiting.append(p.plan)
        parallel.settle(waiting)
        basics = [p for p in pieces if isinstance(p, _Basic)]
        deflated = iter(self._deflate_all(basics) if basics else [])
        return [p if isinstance(p, bytes) else next(deflated) if isinstance(p, _Basic) else p.result() for p in pieces]

    def _deflate_all(self, basics: list[_Basic]) -> list[bytes]:
        """The rectangles of ``basics``, their data deflated on every core (:meth:`.ZStreams.compress_many`)."""
        plans = [b.plan.result() if isinstance(b.plan, parallel.Deferred) else b.plan for b in basics]
        big = [i for i, plan in enumerate(plans) if len(plan[2]) >= MIN_TO_COMPRESS]
        zs: list[bytes | None] = [None] * len(plans)
        deflated = self._streams.compress_many([(plans[i][0], plans[i][2], plans[i][3]) for i in big])
        for i, z in zip(big, deflated, strict=True):
            zs[i] = z
        return [
            _basic_rect(b.header, b.reset_bits, stream, head, data, filtered, z)
            for b, (stream, head, data, _, filtered), z in zip(basics, plans, zs, strict=True)
        ]

    def encode_fill(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """FillCompression, in pieces no wider than Tight's limit."""
        ctx = self._context(job)
        colour = self._values(ctx, job.frame[rect.y : rect.y + 1, rect.x : rect.x + 1])[0]
        return [self._fill_rect(ctx, piece, colour) for piece in split_rect(rect, max_pixels=rect.area)]

    # --- rectangle level -----------------------------------------------------------------------------------

    def _values(self, ctx: _Context, pixels: FrameArray) -> NDArray[Any]:
        """(h, w) pixel values to classify on: for TPIXEL formats the BGRX words (0xXXRRGGBB), else the
        client's pixels.

        Where the rows are contiguous (full-width rectangles) the words are a read-only view of the frame: no
        pass over the pixels (0.3-0.8 ms a 1080p frame). The X byte then rides along in the top byte. Sources
        keep it constant (the fill search assumes so too), and where one does not, colours that differ only in
        it are merely told apart (an extra palette entry, a fill not merged): what the client sees is the same,
        as TPIXELs carry R, G and B only."""
        if ctx.tpixel:
            words: NDArray[np.uint32] = pixels.view("<u4")[..., 0]
            if words.flags.c_contiguous:
                view = words.view()
                view.flags.writeable = False
                return view
            return words & np.uint32(0xFFFFFF)
        assert ctx.converter is not None
        return ctx.converter.convert_array(pixels)

    def _encode(self, ctx: _Context, frame: FrameArray, rect: Rect, spread: bool = False) -> Iterator[_Piece]:
        if rect.is_empty():
            return
        pixels = frame[rect.y : rect.bottom, rect.x : rect.right]
        values = self._values(ctx, pixels)
        max_colours = MAX_PALETTE_WITH_JPEG if ctx.jpeg is not None else MAX_PALETTE
        # strips waiting to be merged into one rectangle: (tag, their union, fill colour)
        run: _Run | None = None
        # JPEG round-trip verdicts of rough strips of this rectangle, by roughness (see _strip_keeps_quality)
        verdicts: list[tuple[float, bool]] = []
        for sub, kind in self._pieces(rect, values, max_colours, ctx.jpeg is not None):
            ox, oy = sub.x - rect.x, sub.y - rect.y
            sub_values = values[oy : oy + sub.h, ox : ox + sub.w]
            sub_pixels = pixels[oy : oy + sub.h, ox : ox + sub.w]
            tag: str | None = None
            if isinstance(kind, Solid):
                tag = f"solid:{int(kind.colour[0])}"
            elif (
                isinstance(kind, Full)
                and ctx.jpeg is not None
                and kind.change >= JPEG_MIN_CHANGE
                and (not ctx.jpeg_floor or _strip_keeps_quality(sub_pixels, ctx.jpeg, kind, verdicts))
            ):
                tag = "jpeg"
            if run is not None:
                rtag, first, colour = run
                merged = Rect(first.x, first.y, first.w, first.h + sub.h)
                fits = rtag != "jpeg" or merged.area <= MAX_JPEG_PIXELS
                if tag == rtag and sub.x == first.x and sub.y == first.bottom and fits:
                    run = (rtag, merged, colour)
                    continue
                yield self._emit_run(ctx, frame, run, spread)
                run = None
            if tag is not None:
                run = (tag, sub, kind.colour if isinstance(kind, Solid) else None)
                continue
            yield self._lossless_piece(ctx, sub, sub_pixels, sub_values, kind, spread)
        if run is not None:
            yield self._emit_run(ctx, frame, run, spread)

    @staticmethod
    def _pieces(rect: Rect, values: NDArray[Any], max_colours: int, jpeg: bool) -> Iterator[tuple[Rect, Kind]]:
        """The classified subrectangles of ``rect``: its strips, with a solid margin on the left or right
        of a strip (the empty part of text lines, page margins) carved off as a fill of its own.
        """
        strips = split_rect(rect)
        many = many_colour_strips(rect, values, strips, MAX_PALETTE if jpeg else max_colours)
        for i, sub in enumerate(strips):
            ox, oy = sub.x - rect.x, sub.y - rect.y
            v = values[oy : oy + sub.h, ox : ox + sub.w]
            left = right = 0
            if sub.w >= 2 * MIN_SOLID_MARGIN and sub.w * sub.h >= MIN_SOLID_AREA:
                left, right = solid_margins(v)
            if left == sub.w:  # solid strip
                yield sub, Solid(v[0, :1].copy())
                continue
            left = left if left >= MIN_SOLID_MARGIN else 0
            right = right if right >= MIN_SOLID_MARGIN else 0
            if not (left or right):
                kind = many.get(i)
                yield sub, kind if kind is not None else classify(v, max_colours, jpeg, sampled=i in many)
                continue
            if left:
                yield Rect(sub.x, sub.y, left, sub.h), Solid(v[0, :1].copy())
            mid = Rect(sub.x + left, sub.y, sub.w - left - right, sub.h)
            if mid.w > 0:
                yield mid, classify(v[:, left : sub.w - right], max_colours, jpeg)
            if right:
                yield Rect(sub.right - right, sub.y, right, sub.h), Solid(v[0, -1:].copy())

    def _emit_run(self, ctx: _Context, frame: FrameArray, run: _Run, spread: bool) -> _Piece:
        """A run of fills or JPEG strips as one rectangle; with ``spread``, a JPEG image is compressed on the
        pool while the caller goes on with the next strips (its control byte, and so its share of the stream
        reset bits, is settled here, in order)."""
        _, r, colour = run
        if colour is None:
            assert ctx.jpeg is not None
            pixels = frame[r.y : r.bottom, r.x : r.right]
            ctl = CTL_JPEG | self._streams.take_reset_bits()
            if spread:
                return parallel.Deferred(_jpeg_rect, self.encoding, r, pixels, ctx.jpeg, ctl)
            return _jpeg_rect(self.encoding, r, pixels, ctx.jpeg, ctl)
        return self._fill_rect(ctx, r, colour)

    # --- compression methods -------------------------------------------------------------------------------

    def _header(self, rect: Rect) -> bytes:
        return rect_header(*rect, self.encoding)

    def _fill_rect(self, ctx: _Context, rect: Rect, colour: NDArray[Any]) -> bytes:
        """FillCompression: the control byte and one TPIXEL."""
        ctl = CTL_FILL | self._streams.take_reset_bits()
        return self._header(rect) + bytes((ctl,)) + _tpixels(ctx, colour)

    @abc.abstractmethod
    def _lossless(self, ctx: _Context, rect: Rect, pixels: FrameArray, values: NDArray[Any], kind: Kind) -> bytes:
        """A subrectangle that is neither a fill nor JPEG (zlib for Tight, PNG for TightPNG)."""

    def _lossless_piece(
        self, ctx: _Context, rect: Rect, pixels: FrameArray, values: NDArray[Any], kind: Kind, spread: bool
    ) -> _Piece:
        """:meth:`_lossless`, or with ``spread`` the same made on the pool where the encoding allows it."""
        return self._lossless(ctx, rect, pixels, values, kind)


class TightEncoder(_TightBase):
    """Tight (encoding 7). Keep one per session: it holds the four zlib streams."""

    encoding = Encoding.TIGHT

    def _lossless(self, ctx: _Context, rect: Rect, pixels: FrameArray, values: NDArray[Any], kind: Kind) -> bytes:
        """BasicCompression with the palette, gradient or copy filter."""
        if isinstance(kind, Solid):  # only when a caller bypasses merging; still a fill
            return self._fill_rect(ctx, rect, kind.colour)
        return self._basic(rect, *_basic_plan(ctx, pixels, values, kind))

    def _lossless_piece(
        self, ctx: _Context, rect: Rect, pixels: FrameArray, values: NDArray[Any], kind: Kind, spread: bool
    ) -> _Piece:
        """With ``spread``, a full-colour strip's filter is chosen and applied on the pool, and every strip's
        data waits to be deflated with the update's others (:meth:`_deflate_all`)."""
        if not spread or isinstance(kind, Solid):
            return self._lossless(ctx, rect, pixels, values, kind)
        plan: _Plan | parallel.Deferred[_Plan]
        if isinstance(kind, Full):
            plan = parallel.Deferred(_basic_plan, ctx, pixels, values, kind)
        else:
            plan = _basic_plan(ctx, pixels, values, kind)
        return _Basic(self._header(rect), self._streams.take_reset_bits(), plan)

    def _basic(self, rect: Rect, stream: int, head: bytes, data: bytes, level: int, filtered: bool) -> bytes:
        """BasicCompression: control byte, filter id and parameters (in ``head``), then the data — as is
        when shorter than 12 bytes, else deflated on ``stream`` behind a compact length.
        """
        z = self._streams.compress(stream, data, level) if len(data) >= MIN_TO_COMPRESS else None
        return _basic_rect(self._header(rect), self._streams.take_reset_bits(), stream, head, data, filtered, z)


def _tpixels(ctx: _Context, values: NDArray[Any]) -> bytes:
    """Pixel values as TPIXELs: R, G, B for TPIXEL formats, else full client pixels."""
    if ctx.tpixel:
        return _rgb_bytes_of_values(values)
    assert ctx.converter is not None
    return ctx.converter.to_bytes(values.reshape(1, -1) if values.ndim == 1 else values)


def _basic_plan(ctx: _Context, pixels: FrameArray, values: NDArray[Any], kind: Palette | Full) -> _Plan:
    """The stream, filter and data of a BasicCompression strip (palette, or full colour with the gradient
    filter, the copy filter or stored)."""
    if isinstance(kind, Palette):
        n = kind.colours.size
        head = bytes((FILTER_PALETTE, n - 1)) + _tpixels(ctx, kind.colours)
        # 2 colours: 1 bit per pixel, most significant bit leftmost, each row padded to a byte
        data = np.packbits(kind.indices, axis=1).tobytes() if n == 2 else kind.indices.tobytes()
        return STREAM_PALETTE, head, data, ctx.palette_level, True
    choice = _trial(ctx, pixels, values, kind.change)
    if choice == FILTER_GRADIENT:
        return STREAM_GRADIENT, bytes((FILTER_GRADIENT,)), _gradient(pixels), ctx.full_level, True
    data = _tpixels(ctx, values) if not ctx.tpixel else _rgb_of_bgrx(pixels)
    if choice == _STORED:
        return STREAM_STORED, b"", data, 0, False
    return STREAM_COPY, b"", data, ctx.full_level, False


def _basic_rect(
    header: bytes, reset_bits: int, stream: int, head: bytes, data: bytes, filtered: bool, z: bytes | None
) -> bytes:
    """A BasicCompression rectangle: control byte, filter id and parameters (``head``), then the deflated data
    ``z`` behind a compact length, or ``data`` as is when it is too short to deflate (``z`` None)."""
    ctl = (stream << 4) | (CTL_READ_FILTER if filtered else 0) | reset_bits
    body = data if z is None else compact_length(len(z)) + z
    return header + bytes((ctl,)) + head + body


#: rough strips of one rectangle whose roughness differs by at most this share the JPEG round trip's verdict
ROUGH_REUSE = 0.05


def _strip_keeps_quality(
    pixels: FrameArray, settings: JpegSettings, kind: Full, verdicts: list[tuple[float, bool]]
) -> bool:
    """Whether a many-colour strip keeps :data:`.jpegutil.JPEG_MIN_PSNR` as JPEG: at once unless it is rough
    (:data:`.jpegutil.ROUGH_SHARE`); then the verdict of an earlier strip of the same rectangle with about
    the same roughness (:data:`ROUGH_REUSE`), else a round trip of a sample band of its own (a 1080p frame
    of noise: one round trip instead of 34, 4 ms less at quality level 8)."""
    if kind.rough < ROUGH_SHARE:
        return True
    for rough, verdict in verdicts:
        if abs(rough - kind.rough) <= ROUGH_REUSE:
            return verdict
    verdict = band_keeps_quality(pixels, settings)
    verdicts.append((kind.rough, verdict))
    return verdict


#: full-colour strips whose pixels differ from their right-hand neighbour less often than this go with the copy
#: filter without a trial: on such strips the few sampled rows chose the gradient filter wrongly now and then
#: (1080p, compression level 2: lossless terminal 4.7 -> 4.1 ms and 4 % smaller, web page at q6 6.7 -> 5.6 ms
#: and 2 % smaller; photographs and noise are never below it)
_COPY_BELOW_CHANGE = 0.3
#: :func:`_trial`'s answer for incompressible data
_STORED = -1


def _trial(ctx: _Context, pixels: FrameArray, values: NDArray[Any], change: float) -> int:
    """How to send a full-colour strip: :data:`FILTER_GRADIENT`, :data:`FILTER_COPY` or :data:`_STORED`.

    A strip of long horizontal runs (``change``, the share of pixels that differ from their right-hand
    neighbour, below :data:`_COPY_BELOW_CHANGE`: anti-aliased text, user interface) goes with the copy
    filter at once. Otherwise it is decided by deflating (level 1; ISA-L when installed, 3-4 times faster
    than stdlib zlib) a sample of a few rows both ways: the gradient filter halves photographs but loses on
    text, and noise is cheapest sent stored.
    """
    h, w = values.shape
    if h * w < 256 or change < _COPY_BELOW_CHANGE:
        return FILTER_COPY
    x0 = max(0, (w - _TRIAL_WIDTH) // 2)
    x1 = min(w, x0 + _TRIAL_WIDTH)
    k = min(h, _TRIAL_ROWS)
    first = 1 if h > 1 else 0
    # k rows spread from the second to the last (each has the row above it as gradient context)
    rows = [first + (h - 1 - first) * i // (k - 1) for i in range(k)] if k > 1 else [first]
    if ctx.tpixel:
        copy = _rgb_of_bgrx(pixels[rows, x0:x1])
    else:
        copy = ctx.converter.to_bytes(values[rows, x0:x1]) if ctx.converter is not None else b""
    deflater = FAST_DEFLATE or zlib
    copy_size = len(deflater.compress(copy, 1))
    best, best_size = FILTER_COPY, copy_size
    if ctx.tpixel and h > 1:
        # gradient residuals of the sampled rows, with their upper neighbours as context: the pairs of rows
        # stacked into one image, of whose gradient every second row is kept
        pairs = np.concatenate([pixels[r - 1 : r + 1, x0:x1] for r in rows])
        grad = _gradient_array(pairs)[1::2].tobytes()
        grad_size = len(deflater.compress(grad, 1))
        if grad_size < copy_size * 0.9:
            best, best_size = FILTER_GRADIENT, grad_size
    if len(copy) < best_size * _STORE_BELOW_RATIO:
        return _STORED
    return best


def _rgb_of_bgrx(pixels: FrameArray) -> bytes:
    """R, G, B bytes of a BGRX region."""
    out = np.empty((*pixels.shape[:-1], 3), dtype=np.uint8)
    for c in range(3):  # one plain copy per channel: much faster than a reversed-stride gather
        out[..., c] = pixels[..., 2 - c]
    return out.tobytes()
