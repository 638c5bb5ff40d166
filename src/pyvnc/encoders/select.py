"""Which encoder serves a session: the client's most preferred encoding that we implement and that suits its
pixel format, with the quality and compression levels it asked for.

The encoders classify content themselves (solid, few colours, many colours, photo-like) and pick their
subencodings per tile or rectangle: Tight sends fills, palettes, zlib or JPEG; ZRLE and Hextile solid, packed
palette and RLE tiles; RRE and Hextile fall back to Raw where that is smaller.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..protocol.constants import (
    COMPRESS_LEVEL_MAX,
    COMPRESS_LEVEL_MIN,
    QUALITY_LEVEL_MAX,
    QUALITY_LEVEL_MIN,
    Encoding,
)
from ..protocol.pixelformat import PixelFormat
from ..region import Rect
from .base import EncodeJob, Encoder
from .hextile import HextileEncoder
from .jpeg import JPEGEncoder
from .raw import RawEncoder
from .rre import RREEncoder
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
}


#: encodings without state between rectangles: a big update can be split across cores
STATELESS = frozenset({Encoding.RAW, Encoding.RRE, Encoding.HEXTILE, Encoding.JPEG})
#: updates of at least this many pixels are split (numpy, zlib and libjpeg-turbo release the GIL)
SPLIT_PIXELS = 512 * 1024
_CORES = os.cpu_count() or 1
_split_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _split_pool
    if _split_pool is None:
        _split_pool = ThreadPoolExecutor(max_workers=_CORES, thread_name_prefix="pyvnc-split")
    return _split_pool


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
    """One per session: keeps the session's encoder instances (and so their compression streams)."""

    def __init__(self) -> None:
        self._instances: dict[int, Encoder] = {}
        self.preferences: tuple[int, ...] = (Encoding.RAW,)
        self.quality: int | None = None
        self.compress: int | None = None

    def configure(self, encodings: Sequence[int]) -> None:
        """Take the client's SetEncodings list (most preferred first)."""
        self.preferences = tuple(e for e in encodings if e in ENCODERS)
        self.quality = next(
            (e - QUALITY_LEVEL_MIN for e in encodings if QUALITY_LEVEL_MIN <= e <= QUALITY_LEVEL_MAX), None
        )
        self.compress = next(
            (e - COMPRESS_LEVEL_MIN for e in encodings if COMPRESS_LEVEL_MIN <= e <= COMPRESS_LEVEL_MAX), None
        )

    def encoding_for(self, pf: PixelFormat) -> int:
        """The encoding updates in pixel format ``pf`` are sent with."""
        for enc in self.preferences:
            if _supports(ENCODERS[enc], pf):
                return enc
        return Encoding.RAW

    def encoder(self, encoding: int) -> Encoder:
        """This session's instance of ``encoding``'s encoder (created once, so its streams persist)."""
        inst = self._instances.get(encoding)
        if inst is None:
            inst = self._instances[encoding] = ENCODERS[encoding]()
        return inst

    def job(self, job: EncodeJob) -> EncodeJob:
        """``job`` with this session's quality and compression levels."""
        return EncodeJob(job.frame, job.rects, job.pixel_format, quality=self.quality, compress=self.compress)

    def encode(self, job: EncodeJob) -> tuple[int, list[bytes]]:
        """Encode ``job`` (in a worker thread): the encoding used and the encoded rectangles."""
        encoding = self.encoding_for(job.pixel_format)
        encoder = self.encoder(encoding)
        job = self.job(job)
        if encoding in STATELESS and _CORES > 1 and sum(r.area for r in job.rects) >= SPLIT_PIXELS:
            groups = split_rects(job.rects, _CORES)
            futures = [_pool().submit(encoder.encode, replace(job, rects=tuple(g))) for g in groups[1:]]
            out = encoder.encode(replace(job, rects=tuple(groups[0])))
            for f in futures:
                out.extend(f.result())
            return encoding, out
        return encoding, encoder.encode(job)

    def discard(self, encoding: int) -> bool:
        """An encode with ``encoding`` is to be thrown away unsent; True if that is safe.

        Stateless encoders lose nothing. Tight and TightPNG reset their streams (the next rectangle tells the
        client to reset its inflaters too). Zlib and ZRLE cannot: their one stream already holds the data, so
        the result must be sent — which rfbproto 7.5.1 allows, since a client must not change its pixel
        format while an update request is outstanding.
        """
        if encoding in (Encoding.ZLIB, Encoding.ZRLE):
            return False
        inst = self._instances.get(encoding)
        reset = getattr(inst, "reset", None)
        if callable(reset):
            reset()
        return True
