"""Which encoder sends which part of an update: the encode manager of a session.

Within the client's preference order, every updated rectangle is cut into large one-colour areas
(:mod:`.solid`) and the rest. The one-colour areas go as fills (Tight fill, an RRE or Hextile background,
ZRLE solid tiles) with the first encoding the client listed that can fill; the rest goes to the client's
preferred encoding, which classifies its content itself and picks its subencodings per tile or rectangle:
Tight sends fills, palettes, zlib or (with a quality level) JPEG; ZRLE and Hextile solid, packed palette
and RLE tiles; RRE and Hextile fall back to Raw where that is smaller. An update that goes to Hextile or RRE as a
whole is not cut: they find one-colour areas themselves, as cheaply (:data:`SELF_FILLING`).

Where the preferred encoding is poor at a kind of content, that kind goes to the next encoding in the
client's list that suits it, as TigerVNC's encode manager does: a client that prefers RRE gets photo-like
areas with ZRLE, Tight or Hextile when it listed one of those, and one that prefers the JPEG encoding gets
text and flat areas losslessly. Whether an area is photo-like is judged by its horizontal runs.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import replace
from enum import Enum

import numpy as np

from ..protocol.constants import (
    COMPRESS_LEVEL_MAX,
    COMPRESS_LEVEL_MIN,
    QUALITY_LEVEL_MAX,
    QUALITY_LEVEL_MIN,
    Encoding,
)
from ..protocol.messages import RECT_POSITION
from ..protocol.pixelformat import PixelFormat
from ..region import Rect
from . import parallel
from .base import EncodeJob, Encoder
from .classify import client_values, looks_busy, short_runs
from .h264 import H264Encoder
from .hextile import HextileEncoder
from .jpeg import JPEGEncoder
from .raw import RawEncoder
from .rre import RREEncoder
from .solid import split_solid
from .tight import TightEncoder
from .tightpng import TightPNGEncoder
from .zlibenc import ZlibEncoder
from .zrle import ZRLEEncoder

#: every encoding we can send, by number
ENCODERS: dict[int, type[Encoder]] = {
    Encoding.RAW: RawEncoder,
    Encoding.RRE: RREEncoder,
    Encoding.HEXTILE: HextileEncoder,
    Encoding.ZLIB: ZlibEncoder,
    Encoding.ZRLE: ZRLEEncoder,
    Encoding.TIGHT: TightEncoder,
    Encoding.TIGHT_PNG: TightPNGEncoder,
    Encoding.JPEG: JPEGEncoder,
    Encoding.OPEN_H264: H264Encoder,
}


class Kind(Enum):
    """What an area of the screen looks like, as far as choosing an encoding goes."""

    SOLID = "solid"  # one colour
    FEW = "few colours"  # text, line art, flat user interface: long runs of a few colours
    MANY = "many colours"  # photos, video, gradients: short runs


#: the kinds of content each encoding handles well (Raw is the last resort for anything it lacks)
SUITS: dict[int, frozenset[Kind]] = {
    Encoding.RAW: frozenset({Kind.FEW, Kind.MANY}),
    Encoding.RRE: frozenset({Kind.SOLID, Kind.FEW}),
    Encoding.HEXTILE: frozenset(Kind),
    Encoding.ZLIB: frozenset(Kind),
    Encoding.ZRLE: frozenset(Kind),
    Encoding.TIGHT: frozenset(Kind),
    Encoding.TIGHT_PNG: frozenset(Kind),
    Encoding.JPEG: frozenset({Kind.MANY}),
    Encoding.OPEN_H264: frozenset(Kind),
}

#: the smallest one-colour area sent as a fill of its own. Far above TigerVNC's 2048 pixels: each extra
#: rectangle costs the vectorised encoders a fixed overhead, and carving small fills out of a frame cuts the
#: rest into many small rectangles (measured on the corpus at 1080p: 2048 px made Tight 1.3-2.2 times and
#: Hextile 2-3 times slower, 65536 px made them 5-30 % faster than no carving on text and web pages)
FILL_MIN_AREA = 65536
#: encodings that find one-colour areas as cheaply as the fill search and send them about as small, so updates
#: they send whole are not searched for fills (1080p, measured on the corpus). Hextile: a byte per one-colour
#: tile; text and web pages 18-25 % less CPU and a few hundred bytes less without the search. RRE: a
#: one-colour area is its background or one subrectangle; terminal 5.0 → 4.5 ms (0.2 % fewer bytes), web page
#: 5.2 → 4.6 ms (2.4 % more), desktop 1.8 → 1.2 ms (Raw either way).
SELF_FILLING = frozenset({Encoding.HEXTILE, Encoding.RRE})
#: areas are judged in pieces of at most this many pixels (TigerVNC's figure)
KIND_PIECE_PIXELS = 65536


def content_kind(job: EncodeJob, rect: Rect) -> Kind:
    """Whether ``rect`` is a few-colour (long runs) or many-colour (short runs) area."""
    values = client_values(job, rect)
    runs = rect.h + int(np.count_nonzero(values[:, 1:] != values[:, :-1]))
    return Kind.MANY if short_runs(runs, rect.area) else Kind.FEW


#: encodings without state between rectangles: a big update can be split across cores
STATELESS = frozenset({Encoding.RAW, Encoding.RRE, Encoding.HEXTILE, Encoding.JPEG})


def split_rects(rects: Sequence[Rect], parts: int) -> list[list[Rect]]:
    """``rects`` dealt into ``parts`` groups of about equal area, big rectangles cut into bands of rows."""
    total = sum(r.area for r in rects)
    share = max(1, -(-total // parts))
    pieces: list[Rect] = []
    for r in rects:
        if r.area > share and r.h > 1:
            rows = max(1, share // max(1, r.w))
            pieces.extend(Rect(r.x, y, r.w, min(rows, r.bottom - y)) for y in range(r.y, r.bottom, rows))
        else:
            pieces.append(r)
    groups: list[list[Rect]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for piece in sorted(pieces, key=lambda p: -p.area):
        i = loads.index(min(loads))
        groups[i].append(piece)
        loads[i] += piece.area
    return [g for g in groups if g]


def _supports(cls: type[Encoder], pf: PixelFormat) -> bool:
    check = getattr(cls, "supports", None)
    return bool(check(pf)) if callable(check) else True


class EncoderSelector:
    """One per session: keeps the session's encoder instances (and so their compression streams) and decides
    which of them sends what."""

    def __init__(self, h264: bool = False) -> None:
        #: whether Open H.264 may be chosen at all (the server's ``h264`` setting): it is lossy everywhere,
        #: text included, and noVNC lists it first wherever the browser decodes it
        self.h264 = h264
        self._instances: dict[int, Encoder] = {}
        self.preferences: tuple[int, ...] = (Encoding.RAW,)
        self.quality: int | None = None
        self.compress: int | None = None

    def configure(self, encodings: Sequence[int]) -> None:
        """Take the client's SetEncodings list (most preferred first)."""
        self.preferences = tuple(e for e in encodings if e in ENCODERS and (self.h264 or e != Encoding.OPEN_H264))
        self.quality = next(
            (e - QUALITY_LEVEL_MIN for e in encodings if QUALITY_LEVEL_MIN <= e <= QUALITY_LEVEL_MAX), None
        )
        self.compress = next(
            (e - COMPRESS_LEVEL_MIN for e in encodings if COMPRESS_LEVEL_MIN <= e <= COMPRESS_LEVEL_MAX), None
        )

    def _usable(self, pf: PixelFormat, video: bool) -> list[int]:
        """The client's encodings, in its order, that can serve pixel format ``pf``; H.264 only with ``video``."""
        return [e for e in self.preferences if (video or e != Encoding.OPEN_H264) and _supports(ENCODERS[e], pf)]

    def encoding_for(self, pf: PixelFormat, video: bool = True) -> int:
        """The client's preferred encoding for updates in pixel format ``pf`` (with ``video`` False, the
        preferred one other than H.264)."""
        usable = self._usable(pf, video)
        return usable[0] if usable else Encoding.RAW

    def plan(self, pf: PixelFormat) -> dict[Kind, int]:
        """Which encoding sends each kind of content: the preferred one where it suits the kind, else the
        first encoding in the client's list that does, else the preferred one (or Raw) all the same.
        Never H.264: it is the whole update or nothing (a whole-screen frame to fill in one area would
        repaint everything else lossily)."""
        usable = self._usable(pf, video=False)
        preferred = usable[0] if usable else Encoding.RAW
        table: dict[Kind, int] = {}
        for kind in Kind:
            if kind in SUITS[preferred]:
                table[kind] = preferred
            else:
                table[kind] = next((e for e in usable if kind in SUITS[e]), preferred)
        return table

    def encoder(self, encoding: int) -> Encoder:
        """This session's instance of ``encoding``'s encoder (created once, so its streams persist)."""
        inst = self._instances.get(encoding)
        if inst is None:
            inst = self._instances[encoding] = ENCODERS[encoding]()
        return inst

    def job(self, job: EncodeJob) -> EncodeJob:
        """``job`` with this session's quality and compression levels."""
        return EncodeJob(job.frame, job.rects, job.pixel_format, quality=self.quality, compress=self.compress)

    def encode(self, job: EncodeJob, video: bool = True, patch: bool = False) -> tuple[frozenset[int], list[bytes]]:
        """Encode ``job`` (in a worker thread): the encodings used and the encoded rectangles.

        A client that prefers H.264 gets the whole frame as one H.264 rectangle, its one video context, when
        ``video`` allows it. ``patch``: ``job`` is a patch drawn over the update (the painted cursor), never
        H.264.
        """
        job = self.job(job)
        if video and not patch and self.encoding_for(job.pixel_format) == Encoding.OPEN_H264:
            return frozenset({Encoding.OPEN_H264}), self.encoder(Encoding.OPEN_H264).encode(job)
        video_encoder = self._instances.get(Encoding.OPEN_H264)
        if not patch and isinstance(video_encoder, H264Encoder):
            # the screen is being drawn in other encodings (another pixel format or encoding list for now):
            # the video's next frame must bring all of it back, not just what changes after that
            video_encoder.invalidate()
        table = self.plan(job.pixel_format)
        fills: list[Rect] = []
        rest: list[Rect] = []
        if table[Kind.SOLID] == Encoding.RAW:  # a Raw fill is as big as any other Raw rectangle
            rest.extend(job.rects)
        elif table[Kind.SOLID] in SELF_FILLING and len(set(table.values())) == 1:
            rest.extend(job.rects)  # the one encoder finds one-colour areas itself
        else:
            for rect in job.rects:
                parts = split_solid(job.frame, rect, FILL_MIN_AREA)
                fills.extend(parts.solids)
                rest.extend(parts.rest)
        groups: dict[int, list[Rect]] = {}
        if table[Kind.FEW] == table[Kind.MANY]:
            if rest:
                groups[table[Kind.FEW]] = rest
        else:
            for rect in rest:
                for piece in _pieces(rect):
                    groups.setdefault(table[content_kind(job, piece)], []).append(piece)
        # Every stream of rectangles is encoded top to bottom and the streams are merged by position: a
        # client then paints in reading order, and one that sizes its screen by the first rectangle of the
        # first update (vncdotool) sees the top-left corner first. Merging never reorders a stream, so the
        # compression streams stay in step with the client's.
        streams: list[list[bytes]] = []
        filler = self.encoder(table[Kind.SOLID]) if fills else None
        used = {filler.encoding} if filler is not None else set()
        if filler is not None and (filler.encoding in STATELESS or filler.encoding not in groups):
            streams.append([data for rect in sorted(fills, key=_position) for data in filler.encode_fill(job, rect)])
            fills = []
        for encoding, rects in groups.items():
            used.add(encoding)
            encoder = self.encoder(encoding)
            if encoding == table[Kind.SOLID] and fills:
                # one compression stream: fills and the rest interleaved in the order they are sent
                items = sorted([(r, True) for r in fills] + [(r, False) for r in rects], key=lambda i: _position(i[0]))
                streams.append(encoder.encode_with_fills(job, items))
                continue
            ordered = tuple(sorted(rects, key=_position))
            streams.append(self._encode_with(encoder, replace(job, rects=ordered)))
        if len(streams) == 1:
            return frozenset(used), streams[0]
        return frozenset(used), list(heapq.merge(*streams, key=_header_position))

    @staticmethod
    def _encode_with(encoder: Encoder, job: EncodeJob) -> list[bytes]:
        """``encoder.encode(job)``, split across the cores when the encoding is stateless, the job big and a
        second thread makes it faster (:func:`_split_helps`)."""
        if (
            encoder.encoding in STATELESS
            and parallel.worth_spreading(sum(r.area for r in job.rects))
            and _split_helps(encoder.encoding, job)
        ):
            groups = split_rects(job.rects, parallel.cores())
            parts = parallel.map_pieces(encoder.encode, [replace(job, rects=tuple(g)) for g in groups])
            out = [data for part in parts for data in part]
            out.sort(key=_header_position)  # stateless: any order decodes the same
            return out
        return encoder.encode(job)

    def close(self) -> bool:
        """The session ended: drop every encoder (and so its buffers and streams); True if one was H.264, whose
        tens of megabytes are worth handing back to the system (:func:`pyvnc._malloc.release_free_memory`)."""
        video = Encoding.OPEN_H264 in self._instances
        self._instances.clear()
        return video

    def discard(self, encodings: frozenset[int]) -> bool:
        """An encode that used ``encodings`` is to be thrown away unsent; True if that is safe.

        Stateless encoders lose nothing. Tight and TightPNG reset their streams (the next rectangle tells the
        client to reset its inflaters too), H.264 its encoder (the next frame resets the client's context).
        Zlib and ZRLE cannot: their one stream already holds the data, so the result must be sent — which
        rfbproto 7.5.1 allows, since a client must not change its pixel format while an update request is
        outstanding.
        """
        if encodings & {Encoding.ZLIB, Encoding.ZRLE}:
            return False
        for encoding in encodings:
            reset = getattr(self._instances.get(encoding), "reset", None)
            if callable(reset):
                reset()
        return True


def _split_helps(encoding: int, job: EncodeJob) -> bool:
    """Whether encoding ``job`` on two threads beats one, as measured on the 1080p corpus (wall and CPU ms):

    - Raw is a copy of the frame, faster on one thread (0.14 ms native) than on two (0.29): never split.
    - Hextile on text and flat content is many small numpy steps that hold the GIL: two threads took as long
      as one (terminal 7.2 against 6.8) for more CPU. On busy content they pay (desktop 9.5 against 14.3,
      8 % more CPU): split only where the content is busy.
    - RRE: busy content goes Raw after a sample (photograph 0.6 on one thread, 1.1 on two); text is a few
      passes over the pixels and then work per run, and two threads saved 0.2–0.4 ms of 4.6–5.0 for 1.0–1.7
      ms more CPU (terminal 4.1 / 5.5 against 4.5 / 4.6, web page 4.8 / 6.7 against 5.0 / 5.0): never split.
    - JPEG is libjpeg-turbo, which releases the GIL: always split.
    """
    if encoding in (Encoding.RAW, Encoding.RRE):
        return False
    if encoding == Encoding.HEXTILE:
        return looks_busy(job.frame, job.rects)
    return True


def _position(rect: Rect) -> tuple[int, int]:
    return rect.y, rect.x


def _header_position(data: bytes) -> tuple[int, int]:
    """(y, x) from an encoded rectangle's header."""
    x, y = RECT_POSITION.unpack_from(data)
    return y, x


def _pieces(rect: Rect) -> list[Rect]:
    """``rect`` in bands of at most :data:`KIND_PIECE_PIXELS` pixels, to be judged one by one."""
    if rect.area <= KIND_PIECE_PIXELS:
        return [rect]
    rows = max(1, KIND_PIECE_PIXELS // rect.w)
    return [Rect(rect.x, y, rect.w, min(rows, rect.bottom - y)) for y in range(rect.y, rect.bottom, rows)]
