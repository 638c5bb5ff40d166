"""Zlib encoding (rfbproto 7.7.5): Raw pixel data through one zlib stream per connection.

Also home of :class:`ZlibStream`, the persistent deflate stream Zlib and ZRLE share the logic of: the
client keeps one inflater per encoding for the whole connection, so the encoder object (one per session)
owns one ``compressobj`` and ends every rectangle with ``Z_SYNC_FLUSH`` so the client can decode it
completely without waiting for more data.

Deflater and level, fixed by the first rectangle (a deflate stream's level is set when it is created,
Python exposes no ``deflateParams``, and a new stream cannot be started: the client's inflater would read
its header as data):

- no CompressLevel pseudo-encoding, or levels 0-2 (fast, little compression — 2 is what noVNC and TigerVNC's
  viewer send by default): ISA-L (the ``isal`` package), level 1 for 0-1 and 2 otherwise. It is 4-8 times
  faster than stdlib zlib on screen content (a 1920×1080 desktop frame's ZRLE data: 14 ms against 75 ms at
  zlib level 1) for output 10-15 % larger; encoding time is what bounds frame rate on a LAN;
- levels 3-9: stdlib zlib at that level, as TigerVNC does: a client that asks for more compression gets it.

Without ISA-L installed, stdlib zlib serves every level (level 1 when the client named none). Both write
standard zlib streams any inflater reads.
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


class ZlibStream:
    """One deflate stream that lives as long as the connection; each :meth:`compress` call is complete.

    The level is fixed by the first call (see the module docstring for why it cannot change later).
    """

    def __init__(self, use_isal: bool = True) -> None:
        self._obj: Any = None
        self._sync_flush = zlib.Z_SYNC_FLUSH
        self.use_isal = use_isal and ISAL is not None
        self.level: int | None = None

    @property
    def backend(self) -> str:
        """``"isal"`` or ``"zlib"``."""
        return "isal" if self.use_isal else "zlib"

    def compress(self, data: bytes | bytearray | memoryview, level: int | None) -> bytes:
        """Compress ``data`` and sync-flush: the result decodes fully on the client's inflater."""
        if self._obj is None:
            fast = isal_level(level)
            if self.use_isal and ISAL is not None and fast is not None:
                self.level = fast
                self._obj = ISAL.compressobj(self.level)
                self._sync_flush = ISAL.Z_SYNC_FLUSH
            else:
                self.use_isal = False
                self.level = DEFAULT_LEVEL if level is None else max(0, min(9, level))
                self._obj = zlib.compressobj(self.level)
        out: bytes = self._obj.compress(data) + self._obj.flush(self._sync_flush)
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
