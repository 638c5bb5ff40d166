"""The four zlib streams of a Tight session (rfbproto "Tight Encoding"), one rectangle at a time or a big
update's rectangles on every core at once.

Python's deflate objects cannot be shared between threads, and a stream's rectangles must reach the client's
inflater in order. A big update still deflates on both cores the way :class:`.zlibenc.ZlibStream` does (as
pigz does): a stream's rectangles are cut into one run per core, the first run goes on with the stream's own
compressor, and every later run starts a fresh compressor primed with the 32 KiB of stream data before it,
so its back-references reach exactly what the client's inflater has just produced. Each rectangle ends with
the stream's flush, as always, so the client sees one ordinary stream. After the update the stream goes on
from a compressor primed with its last 32 KiB.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from . import parallel
from .zlibenc import WINDOW, raw_deflater


class ZStreams:
    """The four deflate streams of one session, and which ones the client must reset.

    A stream's level follows the client's compress level: when it changes mid-session, the stream carries on
    at the new level from the next rectangle, with a raw deflater primed with the stream's last 32 KiB (what
    the client's inflater has just produced), so no reset is needed (what TigerVNC gets from deflateParams).

    Resets are avoided because noVNC 1.7's inflater (its vendored pako) loses its window on a reset: after
    one, any back-reference into an earlier rectangle fails. So after :meth:`reset` every stream ends each
    rectangle with Z_FULL_FLUSH (no references across rectangles) instead of Z_SYNC_FLUSH.
    """

    def __init__(self, backend: ModuleType) -> None:
        self.backend = backend
        self._objs: list[Any] = [None, None, None, None]
        self._levels = [0, 0, 0, 0]
        self._flush = [zlib.Z_SYNC_FLUSH] * 4
        self._pending_reset = 0
        #: each stream's latest data, at least its last WINDOW bytes (references, not copies), to prime a
        #: deflater that takes over at another level
        self._recent: list[list[bytes]] = [[], [], [], []]
        self._recent_size = [0, 0, 0, 0]

    def _deflater(self, level: int) -> ModuleType:
        """Level 0 (stored blocks) always uses stdlib zlib: ISA-L's level 0 is a real, weak compression."""
        return zlib if level == 0 else self.backend

    def _obj(self, stream: int, level: int) -> Any:
        """``stream``'s compressor at ``level``: created if the stream has none yet, taken over by one at the
        new level if the client's compress level changed (class docstring)."""
        obj = self._objs[stream]
        if obj is None:
            obj = self._objs[stream] = self._deflater(level).compressobj(level)
            self._levels[stream] = level
            self._recent[stream], self._recent_size[stream] = [], 0
        elif level != self._levels[stream]:
            obj = self._objs[stream] = self._fresh(level, self._window(stream, self._recent[stream]))
            self._levels[stream] = level
        return obj

    def _remember(self, stream: int, data: bytes) -> None:
        """Keep ``data`` among ``stream``'s recent chunks, dropping those more than WINDOW bytes back. A chunk of
        WINDOW bytes or more replaces them all with its last WINDOW bytes (a copy: a frame's worth of data is
        not held on to for a level change that may never come)."""
        if len(memoryview(data).cast("B")) >= WINDOW:
            self._recent[stream] = [bytes(memoryview(data).cast("B")[-WINDOW:])]
            self._recent_size[stream] = WINDOW
            return
        recent = self._recent[stream]
        chunk = data if isinstance(data, bytes) else bytes(data)
        recent.append(chunk)
        size = self._recent_size[stream] + len(chunk)
        while len(recent) > 1 and size - len(recent[0]) >= WINDOW:
            size -= len(recent.pop(0))
        self._recent_size[stream] = size

    def compress(self, stream: int, data: bytes, level: int) -> bytes:
        """Deflate ``data`` on ``stream`` and flush it to a byte boundary so that the client inflates
        exactly this rectangle's bytes, at ``level`` (a new level carries the stream on: class docstring)."""
        obj = self._obj(stream, level)
        out: bytes = obj.compress(data) + obj.flush(self._flush[stream])
        self._remember(stream, data)
        return out

    def compress_many(self, items: Sequence[tuple[int, bytes, int]]) -> list[bytes]:
        """What :meth:`compress` gives for each (stream, data, level) of ``items`` in turn, except that a stream
        with :data:`.parallel.SPLIT_BYTES` or more of them (at a level above 0) is deflated in one run of
        rectangles per core, side by side (module docstring). Its output then differs from one compressor's,
        but inflates to the same data. A stream's level is its first item's here (Tight gives a stream one
        level per update)."""
        out = [b""] * len(items)
        by_stream: dict[int, list[int]] = {}
        for i, (stream, _, _) in enumerate(items):
            by_stream.setdefault(stream, []).append(i)
        # (stream, item numbers, compressor): the stream's own compressor for its first run, fresh primed
        # ones for the others
        runs: list[tuple[int, list[int], Any]] = []
        restart: dict[int, bytes] = {}
        for stream, idx in by_stream.items():
            obj = self._obj(stream, items[idx[0]][2])
            level = self._levels[stream]
            starts = _run_starts([len(items[i][1]) for i in idx], parallel.cores()) if level > 0 else [0]
            starts.append(len(idx))
            for a, b in itertools.pairwise(starts):
                if a:
                    obj = self._fresh(level, self._window(stream, [items[i][1] for i in idx[:a]]))
                runs.append((stream, idx[a:b], obj))
            if len(starts) > 2:
                restart[stream] = self._window(stream, [items[i][1] for i in idx])

        def deflate(run: tuple[int, list[int], Any]) -> list[bytes]:
            stream, idx, obj = run
            flush = self._flush[stream]
            return [obj.compress(items[i][1]) + obj.flush(flush) for i in idx]

        for (_, idx, _), results in zip(runs, parallel.map_pieces(deflate, runs), strict=True):
            for i, data in zip(idx, results, strict=True):
                out[i] = data
        for stream, window in restart.items():
            self._objs[stream] = self._fresh(self._levels[stream], window)
        for stream, data, _ in items:
            self._remember(stream, data)
        return out

    def _window(self, stream: int, chunks: list[bytes]) -> bytes:
        """What a fresh compressor of ``stream`` continuing after ``chunks`` is primed with: their last 32 KiB,
        or nothing after a reset (every rectangle stands alone then)."""
        return _tail(chunks) if self._flush[stream] == zlib.Z_SYNC_FLUSH else b""

    def _fresh(self, level: int, window: bytes) -> Any:
        """A raw-deflate compressor that continues a stream: primed with ``window`` (the stream's last data)."""
        return raw_deflater(self._deflater(level), level, window)

    def take_reset_bits(self) -> int:
        """The reset bits (0-3) the next compression-control byte must carry; clears them."""
        bits, self._pending_reset = self._pending_reset, 0
        return bits

    def reset(self) -> None:
        """Forget every stream; the next rectangle tells the client to reset all four."""
        self._objs = [None, None, None, None]
        self._flush = [zlib.Z_FULL_FLUSH] * 4
        self._pending_reset = 0x0F
        self._recent = [[], [], [], []]
        self._recent_size = [0, 0, 0, 0]


def _run_starts(sizes: list[int], parts: int) -> list[int]:
    """Where to cut items of ``sizes`` bytes into at most ``parts`` runs of about equal bytes: the indices of the
    items that start a run (0 first). Only big totals are cut, and only where at least :data:`WINDOW` bytes of
    the update come before (the window a later run is primed with lies within the update)."""
    total = sum(sizes)
    starts = [0]
    if parts < 2 or total < parallel.SPLIT_BYTES:
        return starts
    before = 0
    for i, size in enumerate(sizes):
        if before >= WINDOW and before >= total * len(starts) // parts:
            starts.append(i)
            if len(starts) == parts:
                break
        before += size
    return starts


def _tail(chunks: list[bytes]) -> bytes:
    """The last :data:`WINDOW` bytes of ``chunks`` joined."""
    picked: list[bytes] = []
    need = WINDOW
    for chunk in reversed(chunks):
        picked.append(chunk[-need:])
        need -= len(picked[-1])
        if need == 0:
            break
    return b"".join(reversed(picked))
