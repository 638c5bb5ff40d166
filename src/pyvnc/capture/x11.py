"""Capture of an X11 display with mss; client input goes to :class:`pyvnc.input.x11.X11InputSink` (XTEST).

Frames come from mss (XShmGetImage) as BGRA; the unused top byte is cleared while copying, so published
frames are BGRX with byte 3 = 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

import mss
import numpy as np

from ..errors import CaptureError
from ..input.x11 import X11InputSink
from .base import FrameArray, FrameSink
from .cursor import CursorWatcher
from .polling import PollingSource
from .xdamage import DamageWatcher

logger = logging.getLogger(__name__)


def _mss_factory() -> Any:
    # mss ≥ 10.2 names the class mss.MSS and deprecates the mss.mss() function
    return getattr(mss, "MSS", None) or mss.mss


def desktop_name(display: str) -> str:
    """The desktop name for an X display: ``pyvnc on HOST:N``."""
    if display.startswith(":"):
        return f"pyvnc on {socket.gethostname()}{display}"
    return f"pyvnc on {display}"


class X11Source(PollingSource):
    """Grabs an X display (``display``, else ``$DISPLAY``) with mss.

    ``monitor`` 0 (the default) is the whole root window; N ≥ 1 is mss's monitor N. ``inject_input=False``
    makes client input a no-op (view-only).
    """

    def __init__(
        self,
        display: str | None = None,
        *,
        monitor: int = 0,
        name: str | None = None,
        inject_input: bool = True,
    ) -> None:
        super().__init__()
        self._display_name: str | None = display or None
        self.monitor = monitor
        self.inject_input = inject_input
        self._name_given = name is not None
        if name is not None:
            self.name = name
        elif self.display is not None:
            self.name = desktop_name(self.display)
        self._local = threading.local()
        self._generation = 0
        self._instances: list[Any] = []
        self._instances_lock = threading.Lock()
        self._input: X11InputSink | None = None
        self._cursor: CursorWatcher | None = None
        self._damage: DamageWatcher | None = None
        self._last_full_grab = 0.0
        self._cursor_task: asyncio.Task[None] | None = None

    @property
    def display(self) -> str | None:
        """The X display this source grabs (``None`` when neither given nor in ``$DISPLAY``)."""
        return self._display_name or os.environ.get("DISPLAY") or None

    # -- grabbing (worker thread) ---------------------------------------------------------------------------

    def _mss(self) -> Any:
        """This thread's mss instance (mss instances must not be shared between threads)."""
        cached = getattr(self._local, "sct", None)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        display = self.display
        if display is None:
            raise CaptureError("cannot open X display: no display given and $DISPLAY is not set")
        try:
            sct = _mss_factory()(display=display)
        except Exception as exc:
            raise CaptureError(f"cannot open X display {display}: {exc}") from exc
        with self._instances_lock:
            self._instances.append(sct)
        self._local.sct = (self._generation, sct)
        return sct

    #: even with DAMAGE reports, grab at least this often (seconds), in case something draws unreported
    SAFETY_GRAB_INTERVAL = 1.0

    def may_have_changed(self) -> bool:
        watcher = self._damage
        if watcher is None:
            return True
        now = time.monotonic()
        try:
            dirty = watcher.take()
        except Exception as exc:  # the X server went away: let the grab report it
            logger.debug("damage reports stopped: %s", exc)
            self._damage = None
            return True
        size = watcher.root_size
        if size is not None and self._frame is not None and size != (self._frame.shape[1], self._frame.shape[0]):
            # the screen was resized (xrandr): mss keeps the old geometry, so reconnect it
            self.close_connections()
        if dirty or now - self._last_full_grab >= self.SAFETY_GRAB_INTERVAL:
            self._last_full_grab = now
            return True
        return False

    def grab(self) -> FrameArray:
        sct = self._mss()
        monitors = sct.monitors
        if not 0 <= self.monitor < len(monitors):
            raise CaptureError(f"X display {self.display} has no monitor {self.monitor}")
        shot = sct.grab(monitors[self.monitor])
        w, h = shot.size
        src = np.frombuffer(shot.raw, dtype=np.uint32, count=w * h).reshape(h, w)
        frame = np.empty((h, w, 4), dtype=np.uint8)
        # copy and clear the top (alpha) byte in one pass: BGRA → BGRX
        np.bitwise_and(src, 0x00FFFFFF, out=frame.view(np.uint32).reshape(h, w))
        return frame

    def close_connections(self) -> None:
        """Close every mss connection this source opened (grabs afterwards open new ones)."""
        with self._instances_lock:
            instances, self._instances = self._instances, []
            self._generation += 1
        for sct in instances:
            try:
                sct.close()
            except Exception as exc:
                logger.debug("closing an mss connection failed: %s", exc)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def _open(self) -> None:
        display = self.display
        if display is None:
            raise CaptureError("cannot open X display: no display given and $DISPLAY is not set")
        if not self._name_given:
            self.name = desktop_name(display)
        try:
            self._damage = await asyncio.to_thread(DamageWatcher, display)
        except CaptureError as exc:
            logger.info("grabbing at up to max_fps without damage reports: %s", exc)

    async def start(self, sink: FrameSink, max_fps: float) -> None:
        """Start grabbing, then follow the cursor's shape (XFixes) and the pointer's position."""
        await super().start(sink, max_fps)
        display = self.display
        assert display is not None
        try:
            self._cursor = await asyncio.to_thread(CursorWatcher, display)
        except CaptureError as exc:
            logger.info("no cursor shapes for clients: %s", exc)
            return
        self._cursor_task = asyncio.create_task(self._follow_cursor(sink, self._cursor, max_fps))

    async def _follow_cursor(self, sink: FrameSink, watcher: CursorWatcher, max_fps: float) -> None:
        """Publish shape changes as they happen, and the pointer position while clients want frames."""

        async def shapes() -> None:
            async for img in watcher.changes():
                sink.set_cursor(img)

        shape_task = asyncio.create_task(shapes())
        try:
            while True:
                await sink.wait_for_demand()
                if not sink.needs_pointer():
                    await asyncio.sleep(0.2)
                    continue
                try:
                    x, y = await asyncio.to_thread(watcher.pointer_position)
                except Exception as exc:  # the display went away: the grab loop reports that
                    logger.debug("pointer position unavailable: %s", exc)
                    return
                sink.set_pointer(x, y)
                await asyncio.sleep(1 / min(max_fps, 30))
        finally:
            shape_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await shape_task

    async def _close(self) -> None:
        task, self._cursor_task = self._cursor_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        watcher, self._cursor = self._cursor, None
        if watcher is not None:
            watcher.close()
        damage, self._damage = self._damage, None
        if damage is not None:
            damage.close()
        self.close_connections()
        injector, self._input = self._input, None
        if injector is not None:
            await injector.aclose()

    # -- input (event loop thread) --------------------------------------------------------------------------

    def _injector(self) -> X11InputSink | None:
        if not self.inject_input:
            return None
        if self._input is None:
            display = self.display
            if display is None:
                return None
            self._input = X11InputSink(display)
        return self._input

    def key_event(self, keysym: int, down: bool) -> None:
        injector = self._injector()
        if injector is not None:
            injector.key_event(keysym, down)

    def pointer_event(self, x: int, y: int, buttons: int) -> None:
        injector = self._injector()
        if injector is not None:
            injector.pointer_event(x, y, buttons)

    def cut_text(self, text: str) -> None:
        injector = self._injector()
        if injector is not None:
            injector.cut_text(text)

    def release_all(self) -> None:
        """Release every key and button clients still hold (call when a client disconnects)."""
        if self._input is not None:
            self._input.release_all()

    def flush_input(self, timeout: float = 5.0) -> None:
        """Block until the input queued so far reached the X server (injection runs on its own thread)."""
        if self._input is not None:
            self._input.flush(timeout)
