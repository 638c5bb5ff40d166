"""Zlib encoding (rfbproto 7.7.5): Raw pixel data through one zlib stream per connection.

Also home of :class:`ZlibStream`, the persistent deflate stream Zlib and ZRLE share the logic of: the
client keeps one inflater per encoding for the whole connection, so the encoder object (one per session)
owns one ``compressobj`` and ends every rectangle with ``Z_SYNC_FLUSH`` so the client can decode it
completely without waiting for more data.

Deflater and level, by the client's compress level:

- no CompressLevel pseudo-encoding, or levels 0-2 (fast, little compression — 2 is what noVNC and TigerVNC's
  viewer send by default): ISA-L (the ``isal`` package), level 1 for 0-1 and 2 otherwise. For ZRLE at level 2
  (and with no level named) it runs with its smallest buffers (memLevel 1), so it builds a Huffman table for
  every few kilobytes: on photo-like ZRLE data that is as small as stdlib zlib level 2 at a third of its CPU
  (a 1920×1080 desktop frame's ZRLE data: 2,444 KiB in 22 ms against 2,434 KiB in 66 ms), where ISA-L's
  default buffers give 2,752 KiB in 9 ms. The Zlib encoding's 4-byte pixels come out larger and slower that
  way, so it keeps the default buffers, as do levels 0-1 (fastest, for clients that ask for speed);
- levels 3-9: stdlib zlib at that level, as TigerVNC does: a client that asks for more compression gets it.

When the client changes its level mid-session (a viewer's options, noVNC's compression setting), the stream
carries on at the new level, or with the other deflater, from the next rectangle: a new raw deflater primed
(``zdict``) with the last 32 KiB the client's inflater has produced takes over at a rectangle's sync flush,
so the client's inflater reads on without a break (what TigerVNC gets from ``deflateParams``).

An ISA-L stream is written in *segments*, one per :meth:`ZlibStream.compress` call: each is a raw deflate
stream of its own, primed (``zdict``) with the last 32 KiB the client's inflater has produced, and ends with
a sync flush, so the segments join into one standard zlib stream whose back-references reach across
rectangles as a single compressor's would. Segments let the stream fall back to stored blocks for data that
deflate would expand (noise), something a single ISA-L compressor never does. The zlib header is written
once, before the first segment; the stream never ends, so its Adler-32 trailer is never due.

Segments also put both cores on one stream (as pigz does): a big call (a full frame's ZRLE data) is cut into
one segment per core, each primed with the 32 KiB before it, and they are deflated at the same time (ISA-L
and zlib release the GIL). A stdlib zlib stream does the same for big calls: its own compressor takes the
first piece, fresh ones primed with the preceding 32 KiB the others, and a new compressor primed with the
last 32 KiB carries the stream on. The client's inflater sees one ordinary stream either way.

Without ISA-L installed, stdlib zlib serves every level (level 1 when the client named none) with one
compressor for the connection. Both write standard zlib streams any inflater reads.
"""

from __future__ import annotations

import importlib
import struct
import zlib
from types import ModuleType
from typing import Any

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import converter_for
from ..region import Rect
from . import parallel
from .base import EncodeJob, Encoder

#: the compression level used when the client did not send a CompressLevel pseudo-encoding
DEFAULT_LEVEL = 1

#: the U32 length that precedes zlib data (rfbproto 7.7.5, 7.7.6)
LENGTH = struct.Struct(">I")


def _load_isal() -> ModuleType | None:
    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:
        return None


#: ISA-L's zlib-compatible module, or None when the ``isal`` package is not installed
ISAL = _load_isal()


def isal_level(level: int | None) -> int | None:
    """The ISA-L level for an RFB compress level (0-9, None for no preference), or None for stdlib zlib."""
    if level is None:
        return 2
    return 1 if level <= 1 else 2 if level == 2 else None


#: ISA-L's default memLevel, and its smallest (1: a Huffman table every few KiB)
ISAL_DEFAULT_MEM_LEVEL = 8
ISAL_SMALL_MEM_LEVEL = 1
#: a zlib header (deflate, 32 KiB window, no dictionary, check bits valid), written before the first segment
ZLIB_HEADER = b"\x78\x01"
#: the deflate window: how far back a segment's matches may reach
WINDOW = 32768


def raw_deflater(module: Any, level: int, window: bytes | memoryview = b"", mem_level: int = 8) -> Any:
    """A raw-deflate compressor (no zlib header) of ``module`` (stdlib zlib or ISA-L's) that carries a stream
    on: primed with ``window``, the last data the client's inflater produced; with none, it starts afresh."""
    primed = {"zdict": window} if len(window) else {}
    return module.compressobj(level, zlib.DEFLATED, -15, mem_level, **primed)


def _stored_size(n: int) -> int:
    """Bytes of ``n`` bytes as stored deflate blocks (5 bytes a block of at most 65,535) plus the sync flush."""
    return n + 5 * (-(-n // 65535) + 1)


#: data of at least this size is sampled before deflating (:func:`_incompressible`)
_SAMPLED_SIZE = 1 << 17
_SAMPLE = 1 << 14


def _incompressible(data: bytes | bytearray | memoryview) -> bool:
    """Whether three 16 KiB samples of big ``data`` (a quarter, half and three quarters in) all deflate to
    more than 98 % of their size: then deflating the whole (a photograph's worth of CPU for random pixels) is
    skipped for stored blocks."""
    n = len(data)
    if n < _SAMPLED_SIZE or ISAL is None:
        return False
    view = memoryview(data).cast("B")
    for at in (n // 4, n // 2, 3 * n // 4):
        sample = view[at : at + _SAMPLE]
        if len(ISAL.compress(sample, 1)) < 0.98 * len(sample):
            return False
    return True


class ZlibStream:
    """One deflate stream that lives as long as the connection; each :meth:`compress` call is complete.

    The deflater and level follow the client's compress level (see the module docstring).
    """

    def __init__(self, use_isal: bool = True, small_blocks: bool = False) -> None:
        self._obj: Any = None
        #: whether ISA-L may serve the fast levels (installed, and not turned off)
        self._isal_allowed = use_isal and ISAL is not None
        self.use_isal = self._isal_allowed
        self.level: int | None = None
        #: ISA-L level 2 with its smallest buffers (module docstring); ZRLE's CPIXEL data gains from it, the
        #: Zlib encoding's 4-byte pixels do not (larger and slower there)
        self.small_blocks = small_blocks
        #: the last WINDOW bytes of the stream's uncompressed data (what ISA-L segments, and a deflater taking
        #: over after a level change, are primed with)
        self._window = b""
        self._started = False

    @property
    def backend(self) -> str:
        """``"isal"`` or ``"zlib"``."""
        return "isal" if self.use_isal else "zlib"

    def compress(self, data: bytes | bytearray | memoryview, level: int | None) -> bytes:
        """Compress ``data`` and sync-flush: the result decodes fully on the client's inflater.

        Data of :data:`.parallel.SPLIT_BYTES` or more is cut into one piece per core, deflated side by side
        (module docstring): each piece after the first is primed with the 32 KiB before it, so back-references
        still reach across the cuts, and ends with a sync flush, so the pieces join into one stream."""
        use_isal, chosen = self._deflater_for(level)
        if self.level is None:
            self.use_isal, self.level = use_isal, chosen
            if not use_isal:
                self._obj = zlib.compressobj(chosen)
        elif (use_isal, chosen) != (self.use_isal, self.level):
            self._carry_on(use_isal, chosen)
        view = memoryview(data).cast("B")
        parts = parallel.cores() if view.nbytes >= parallel.SPLIT_BYTES else 1
        cuts = [view.nbytes * i // parts for i in range(parts + 1)]
        pieces = [(view[cuts[i] : cuts[i + 1]], view[max(0, cuts[i] - WINDOW) : cuts[i]]) for i in range(parts)]
        if self.use_isal:
            head = b"" if self._started else ZLIB_HEADER
            self._started = True
            pieces[0] = (pieces[0][0], memoryview(self._window))
            small = self.small_blocks and self.level == 2
            mem_level = ISAL_SMALL_MEM_LEVEL if small else ISAL_DEFAULT_MEM_LEVEL
            out = parallel.map_pieces(lambda p: _isal_segment(p[0], p[1], self.level or 0, mem_level), pieces)
            tail = bytes(view[-WINDOW:])
            self._window = tail if len(tail) == WINDOW else (self._window + tail)[-WINDOW:]
            return head + b"".join(out)
        self._started = True
        tail = bytes(view[-WINDOW:])
        self._window = tail if len(tail) == WINDOW else (self._window + tail)[-WINDOW:]
        if parts == 1:
            return bytes(self._obj.compress(view) + self._obj.flush(zlib.Z_SYNC_FLUSH))
        # the stream's own compressor takes the first piece (it holds the history before it); new ones
        # primed with the 32 KiB before theirs take the others, and the last 32 KiB prime its successor
        level_ = self.level

        def piece(i: int) -> bytes:
            chunk, window = pieces[i]
            obj = self._obj if i == 0 else raw_deflater(zlib, level_, window)
            return bytes(obj.compress(chunk) + obj.flush(zlib.Z_SYNC_FLUSH))

        out = parallel.map_pieces(piece, range(parts))
        self._obj = raw_deflater(zlib, level_, view[-WINDOW:])
        return b"".join(out)

    def _deflater_for(self, level: int | None) -> tuple[bool, int]:
        """(ISA-L or stdlib zlib, deflate level) for the client's compress level (module docstring)."""
        fast = isal_level(level)
        if self._isal_allowed and fast is not None:
            return True, fast
        return False, DEFAULT_LEVEL if level is None else max(0, min(9, level))

    def _carry_on(self, use_isal: bool, level: int) -> None:
        """Go on with the other deflater or level from the next call (the client changed its compress level):
        ISA-L segments are primed with the window anyway; a stdlib deflater starts raw, primed with it."""
        if not use_isal:
            self._obj = raw_deflater(zlib, level, self._window)
        self.use_isal, self.level = use_isal, level


def _isal_segment(data: memoryview, window: memoryview, level: int, mem_level: int) -> bytes:
    """``data`` as one ISA-L segment (module docstring): raw deflate primed with ``window``, ending with a sync
    flush; stored blocks where deflate would expand it."""
    assert ISAL is not None
    out = b""
    if not _incompressible(data):
        obj = raw_deflater(ISAL, level, window, mem_level)
        out = obj.compress(data) + obj.flush(ISAL.Z_SYNC_FLUSH)
    if not out or len(out) > _stored_size(len(data)):
        # incompressible: stored blocks (stdlib zlib at level 0 writes nothing else; they need no window)
        stored = raw_deflater(zlib, 0)
        out = stored.compress(data) + stored.flush(zlib.Z_SYNC_FLUSH)
    return out


class ZlibEncoder(Encoder):
    """Zlib (encoding 6). Holds a zlib stream: one instance per session."""

    encoding = Encoding.ZLIB

    def __init__(self, use_isal: bool = True) -> None:
        self.stream = ZlibStream(use_isal)

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        pixels = job.frame[rect.y : rect.bottom, rect.x : rect.right]
        raw = converter_for(job.pixel_format).convert(pixels)
        data = self.stream.compress(raw, job.compress)
        return [rect_header(*rect, Encoding.ZLIB) + LENGTH.pack(len(data)) + data]
