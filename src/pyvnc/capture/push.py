"""A source fed by the embedding program: it pushes numpy frames, pyvnc serves them.

::

    source = PushSource(width=1280, height=720, name="my app", on_key=print)
    source.push(rgb)                          # HxWx3 RGB or HxWx4 RGBA/RGBX, uint8
    source.push(rgb, rects=[(x, y, w, h)])    # only these areas changed

:meth:`PushSource.push` may be called from any thread, before or after the server starts. Frames pushed
faster than the event loop publishes them coalesce: the hub gets the latest frame and the union of the
changed areas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from ..region import Rect
from .base import FrameArray, FrameSink, FrameSource

logger = logging.getLogger(__name__)

KeyCallback = Callable[[int, bool], None]
PointerCallback = Callable[[int, int, int], None]
ClipboardCallback = Callable[[str], None]

#: more pending rectangles than this are published as a whole-frame update
_MAX_PENDING_RECTS = 256


def _validate(frame: object) -> npt.NDArray[np.uint8]:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        raise ValueError(f"a pushed frame must have dtype uint8, not {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"a pushed frame must have shape (height, width, 3 or 4), not {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"a pushed frame must not be empty, got shape {arr.shape}")
    return arr


def _to_bgrx(src: npt.NDArray[np.uint8], out: FrameArray) -> None:
    """Write RGB or RGBA pixels ``src`` into BGRX ``out`` (same height and width)."""
    out[..., 0] = src[..., 2]
    out[..., 1] = src[..., 1]
    out[..., 2] = src[..., 0]
    out[..., 3] = 0


class PushSource(FrameSource):
    """Frames pushed by the host program; client input goes to its callbacks.

    ``on_key(keysym, down)``, ``on_pointer(x, y, buttons)`` and ``on_clipboard(text)`` run on the event loop
    thread; an exception they raise is logged and otherwise ignored. Until the first push the desktop is
    black.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        name: str = "pyvnc",
        on_key: KeyCallback | None = None,
        on_pointer: PointerCallback | None = None,
        on_clipboard: ClipboardCallback | None = None,
    ) -> None:
        if not (1 <= width <= 16384 and 1 <= height <= 16384):
            raise ValueError(f"desktop size must be between 1x1 and 16384x16384, not {width}x{height}")
        self.name = name
        self.on_key = on_key
        self.on_pointer = on_pointer
        self.on_clipboard = on_clipboard
        self._lock = threading.Lock()
        # guarded by _lock:
        self._frame: FrameArray = np.zeros((height, width, 4), dtype=np.uint8)
        self._pending: list[Rect] | None = []  # changes not yet published; None = the whole frame
        self._dirty = False
        self._scheduled = False
        self._sink: FrameSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def size(self) -> tuple[int, int]:
        frame = self._frame
        return (int(frame.shape[1]), int(frame.shape[0]))

    @property
    def frame(self) -> FrameArray:
        """The current frame (BGRX); do not modify it."""
        return self._frame

    # -- the host program's side ----------------------------------------------------------------------------

    def push(self, frame: npt.ArrayLike, rects: Iterable[tuple[int, int, int, int]] | None = None) -> None:
        """Show ``frame`` (uint8 HxWx3 RGB or HxWx4 RGBA/RGBX; alpha is ignored). Any thread.

        With ``rects`` (x, y, w, h), only those areas are taken from ``frame`` (clipped to it); the rest of
        the desktop keeps its previous pixels. A frame of another size resizes the desktop and is taken whole.
        Raises ValueError for a frame of the wrong dtype or shape.
        """
        src = _validate(frame)
        h, w = src.shape[:2]
        with self._lock:
            prev = self._frame
            changed: list[Rect] | None
            if rects is None or prev.shape[:2] != (h, w):
                new = np.empty((h, w, 4), dtype=np.uint8)
                _to_bgrx(src, new)
                changed = None
            else:
                bounds = Rect(0, 0, w, h)
                changed = []
                for r in rects:
                    clipped = Rect(*(int(v) for v in r)).intersect(bounds)
                    if clipped is not None:
                        changed.append(clipped)
                if not changed:
                    return
                new = prev.copy()
                for r in changed:
                    _to_bgrx(src[r.y : r.bottom, r.x : r.right], new[r.y : r.bottom, r.x : r.right])
            self._frame = new
            if changed is None or self._pending is None:
                self._pending = None
            else:
                self._pending.extend(changed)
                if len(self._pending) > _MAX_PENDING_RECTS:
                    self._pending = None
            self._dirty = True
            loop = self._loop
            schedule = loop is not None and not self._scheduled
            if schedule:
                self._scheduled = True
        if loop is None:
            return  # not started: start() publishes the current frame
        if _running_loop() is loop:
            self._flush()
        elif schedule:
            try:
                loop.call_soon_threadsafe(self._flush)
            except RuntimeError:  # the loop closed under us: the server is gone
                with self._lock:
                    self._scheduled = False

    def set_name(self, name: str) -> None:
        """Change the desktop name shown to clients. Any thread."""
        self.name = name
        loop, sink = self._loop, self._sink
        if loop is None or sink is None:
            return
        if _running_loop() is loop:
            sink.set_desktop_name(name)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is gone
                loop.call_soon_threadsafe(self._set_name_on_loop, name)

    # -- FrameSource ----------------------------------------------------------------------------------------

    async def start(self, sink: FrameSink, max_fps: float) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not None:
                raise RuntimeError("PushSource already started")
            frame = self._frame
            self._pending = []
            self._dirty = False
            self._scheduled = False
            self._sink = sink
            self._loop = loop
        sink.publish(frame, None)

    async def stop(self) -> None:
        with self._lock:
            self._sink = None
            self._loop = None
            self._scheduled = False

    def key_event(self, keysym: int, down: bool) -> None:
        if self.on_key is not None:
            try:
                self.on_key(keysym, down)
            except Exception:
                logger.exception("the on_key callback failed")

    def pointer_event(self, x: int, y: int, buttons: int) -> None:
        if self.on_pointer is not None:
            try:
                self.on_pointer(x, y, buttons)
            except Exception:
                logger.exception("the on_pointer callback failed")

    def cut_text(self, text: str) -> None:
        if self.on_clipboard is not None:
            try:
                self.on_clipboard(text)
            except Exception:
                logger.exception("the on_clipboard callback failed")

    # -- internals (event loop thread) ----------------------------------------------------------------------

    def _flush(self) -> None:
        """Publish the latest frame with the changes accumulated since the last publish."""
        with self._lock:
            self._scheduled = False
            sink = self._sink
            if sink is None or not self._dirty:
                return
            frame = self._frame
            pending: Sequence[Rect] | None = self._pending
            self._pending = []
            self._dirty = False
        sink.publish(frame, pending)

    def _set_name_on_loop(self, name: str) -> None:
        sink = self._sink
        if sink is not None:
            sink.set_desktop_name(name)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
