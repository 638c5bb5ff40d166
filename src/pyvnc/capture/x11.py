"""Capture of an X11 display with mss; client input goes to :class:`pyvnc.input.x11.X11InputSink` (XTEST).

Frames come from mss (XShmGetImage) as BGRA; the unused top byte is cleared while copying, so published
frames are BGRX with byte 3 = 0.

Besides pixels the source bridges the clipboard (:mod:`pyvnc.capture.xclipboard`), and follows the X
keyboard extension (XKB protocol spec §9–§10) on a thread of its own (:class:`XkbWatcher`): XkbBellNotify
events become ``sink.bell()`` (rfbproto 7.6.3 Bell), XkbIndicatorStateNotify events keep the Caps / Num /
Scroll Lock LEDs for the QEMU LED State pseudo-encoding. python-xlib has no XKB module, so the four XKB
requests needed (UseExtension, SelectEvents, GetIndicatorState, GetNamedIndicator) are declared here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import mss
import numpy as np

from ..errors import CaptureError
from ..input.x11 import X11InputSink
from .base import FrameArray, FrameSink
from .cursor import CursorWatcher
from .polling import PollingSource
from .xclipboard import DEFAULT_MAX_BYTES, XClipboard, XEventThread
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


# XKB protocol numbers (XKBproto.h / the XKB protocol specification)
_XKB_USE_CORE_KBD = 0x0100
_XKB_DFLT_XI_CLASS = 0x0300
_XKB_DFLT_XI_ID = 0x0400
_XKB_INDICATOR_STATE_NOTIFY = 4
_XKB_BELL_NOTIFY = 8
#: the QEMU LED State bits (bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock) and the XKB indicator names behind them
_LED_NAMES = ("Scroll Lock", "Num Lock", "Caps Lock")


@cache
def _xkb_requests() -> dict[str, Any]:
    """python-xlib request classes for the XKB requests this module sends (XKB protocol spec §16)."""
    rq: Any = importlib.import_module("Xlib.protocol.rq")

    class UseExtension(rq.ReplyRequest):  # type: ignore[misc]
        _request = rq.Struct(
            rq.Card8("opcode"), rq.Opcode(0), rq.RequestLength(), rq.Card16("wanted_major"), rq.Card16("wanted_minor")
        )
        _reply = rq.Struct(
            rq.ReplyCode(),
            rq.Bool("supported"),
            rq.Card16("sequence_number"),
            rq.ReplyLength(),
            rq.Card16("server_major"),
            rq.Card16("server_minor"),
            rq.Pad(20),
        )

    class SelectEvents(rq.Request):  # type: ignore[misc]
        _request = rq.Struct(
            rq.Card8("opcode"),
            rq.Opcode(1),
            rq.RequestLength(),
            rq.Card16("device_spec"),
            rq.Card16("affect_which"),
            rq.Card16("clear"),
            rq.Card16("select_all"),
            rq.Card16("affect_map"),
            rq.Card16("map"),
        )

    class GetIndicatorState(rq.ReplyRequest):  # type: ignore[misc]
        _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(12), rq.RequestLength(), rq.Card16("device_spec"), rq.Pad(2))
        _reply = rq.Struct(
            rq.ReplyCode(),
            rq.Card8("device_id"),
            rq.Card16("sequence_number"),
            rq.ReplyLength(),
            rq.Card32("state"),
            rq.Pad(20),
        )

    class GetNamedIndicator(rq.ReplyRequest):  # type: ignore[misc]
        _request = rq.Struct(
            rq.Card8("opcode"),
            rq.Opcode(15),
            rq.RequestLength(),
            rq.Card16("device_spec"),
            rq.Card16("led_class"),
            rq.Card16("led_id"),
            rq.Pad(2),
            rq.Card32("indicator"),
        )
        _reply = rq.Struct(
            rq.ReplyCode(),
            rq.Card8("device_id"),
            rq.Card16("sequence_number"),
            rq.ReplyLength(),
            rq.Card32("indicator"),
            rq.Bool("found"),
            rq.Bool("on"),
            rq.Bool("real_indicator"),
            rq.Card8("ndx"),
            rq.Pad(12),
            rq.Bool("supported"),
            rq.Pad(3),
        )

    return {
        "UseExtension": UseExtension,
        "SelectEvents": SelectEvents,
        "GetIndicatorState": GetIndicatorState,
        "GetNamedIndicator": GetNamedIndicator,
    }


class XkbWatcher(XEventThread):
    """Reports the X bell and the keyboard LEDs of ``display`` through XKB events, on its own thread.

    ``on_bell()`` and ``on_leds(state)`` are called on the watcher's thread; ``state`` uses the QEMU LED
    State bits (bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock). :attr:`led_state` is the latest state (any
    thread). Raises :class:`CaptureError` when the display has no usable XKB extension.
    """

    purpose = "XKB events"

    #: rings closer together than this (seconds) are one ring for clients
    BELL_INTERVAL = 0.1

    def __init__(self, display: str, on_bell: Callable[[], None], on_leds: Callable[[int], None]) -> None:
        super().__init__(display)
        d = self._d
        try:
            info = d.query_extension("XKEYBOARD")
            if info is None or not info.present:
                raise CaptureError(f"X display {display} has no XKEYBOARD extension")
            self._opcode = info.major_opcode
            self._event_code = info.first_event
            req = _xkb_requests()
            dpy = d.display
            if not req["UseExtension"](display=dpy, opcode=self._opcode, wanted_major=1, wanted_minor=0).supported:
                raise CaptureError(f"X display {display} does not support XKB 1.0")
            # the indicator index of each LED, by the names xkeyboard-config gives them
            self._indices: list[int | None] = []
            for name in _LED_NAMES:
                r = req["GetNamedIndicator"](
                    display=dpy,
                    opcode=self._opcode,
                    device_spec=_XKB_USE_CORE_KBD,
                    led_class=_XKB_DFLT_XI_CLASS,
                    led_id=_XKB_DFLT_XI_ID,
                    indicator=d.intern_atom(name),
                )
                self._indices.append(r.ndx if r.found and r.supported else None)
            mask = (1 << _XKB_BELL_NOTIFY) | (1 << _XKB_INDICATOR_STATE_NOTIFY)
            req["SelectEvents"](
                display=dpy,
                opcode=self._opcode,
                device_spec=_XKB_USE_CORE_KBD,
                affect_which=mask,
                clear=0,
                select_all=mask,
                affect_map=0,
                map=0,
            )
            state = req["GetIndicatorState"](display=dpy, opcode=self._opcode, device_spec=_XKB_USE_CORE_KBD).state
            d.sync()
        except CaptureError:
            d.close()
            raise
        except Exception as exc:
            d.close()
            raise CaptureError(f"cannot follow XKB events on {display}: {exc}") from exc
        self.on_bell = on_bell
        self.on_leds = on_leds
        #: the keyboard LEDs now, in QEMU LED State bits
        self.led_state = self._led_bits(state)
        self._last_bell = -self.BELL_INTERVAL

    def _led_bits(self, indicators: int) -> int:
        """QEMU LED State bits from an XKB indicator state mask."""
        bits = 0
        for bit, index in enumerate(self._indices):
            if index is not None and indicators & (1 << index):
                bits |= 1 << bit
        return bits

    def _handle(self, event: Any) -> None:
        if event.type != self._event_code:
            return
        # every XKB event has this code; the byte after it (python-xlib's "detail") says which one
        if event.detail == _XKB_BELL_NOTIFY:
            now = time.monotonic()
            if now - self._last_bell >= self.BELL_INTERVAL:
                self._last_bell = now
                self.on_bell()
        elif event.detail == _XKB_INDICATOR_STATE_NOTIFY:
            # after type, xkbType, sequence: time (4), deviceID (1), pad (3), state (4), stateChanged (4)
            (indicators,) = struct.unpack_from("=I", event.data, 8)
            bits = self._led_bits(indicators)
            if bits != self.led_state:
                self.led_state = bits
                self.on_leds(bits)


class X11Source(PollingSource):
    """Grabs an X display (``display``, else ``$DISPLAY``) with mss.

    ``monitor`` 0 (the default) is the whole root window; N ≥ 1 is mss's monitor N. ``inject_input=False``
    makes client input a no-op (view-only). ``clipboard=False`` leaves the X selections alone; texts above
    ``max_clipboard_bytes`` are not passed either way.

    Clipboard, bell and LEDs need the XFIXES and XKEYBOARD extensions; without them the source works without
    those features (an info line says so). When the LEDs change the sink's ``set_led_state(state)`` is called
    if it has one (the frame hub may fan it out to sessions that asked for QEMU LED State).
    """

    def __init__(
        self,
        display: str | None = None,
        *,
        monitor: int = 0,
        name: str | None = None,
        inject_input: bool = True,
        clipboard: bool = True,
        max_clipboard_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__()
        self.clipboard = clipboard
        self.max_clipboard_bytes = max_clipboard_bytes
        self._clipboard: XClipboard | None = None
        self._xkb: XkbWatcher | None = None
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
        #: set (any thread) when this process resized the screen: the next poll reconnects and grabs
        self._screen_resized = False
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

    def screen_resized(self) -> None:
        """The screen was just resized (by :class:`.xvfb.XvfbSource`): the next poll opens new connections
        and grabs at the new size, whether or not a damage report comes to say so."""
        self._screen_resized = True

    def may_have_changed(self) -> bool:
        now = time.monotonic()
        if self._screen_resized:
            # mss keeps the geometry it connected with: reconnect (here, on the grabbing thread)
            self._screen_resized = False
            self.close_connections()
            self._last_full_grab = now
            return True
        watcher = self._damage
        if watcher is None:
            return True
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
        await self._start_desktop_events(sink, display)
        try:
            self._cursor = await asyncio.to_thread(CursorWatcher, display)
        except CaptureError as exc:
            logger.info("no cursor shapes for clients: %s", exc)
            return
        self._cursor_task = asyncio.create_task(self._follow_cursor(sink, self._cursor, max_fps))

    async def _start_desktop_events(self, sink: FrameSink, display: str) -> None:
        """Start the clipboard bridge and the XKB watcher (bell, LEDs); each is optional."""
        loop = asyncio.get_running_loop()

        def to_loop(fn: Callable[..., None]) -> Callable[..., None]:
            def call(*args: Any) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(fn, *args)

            return call

        set_clipboard = getattr(sink, "set_clipboard", None)  # sinks of tests and embedders may lack some
        if self.clipboard and callable(set_clipboard):
            try:
                self._clipboard = await asyncio.to_thread(
                    XClipboard, display, to_loop(set_clipboard), max_bytes=self.max_clipboard_bytes
                )
                self._clipboard.start()
            except CaptureError as exc:
                logger.info("no clipboard exchange: %s", exc)
        bell = getattr(sink, "bell", None)
        set_leds = getattr(sink, "set_led_state", None)
        try:
            self._xkb = await asyncio.to_thread(
                XkbWatcher,
                display,
                to_loop(bell) if callable(bell) else (lambda: None),
                to_loop(set_leds) if callable(set_leds) else (lambda state: None),
            )
            self._xkb.start()
        except CaptureError as exc:
            logger.info("no bell or keyboard LEDs for clients: %s", exc)

    def led_state(self) -> int:
        """The keyboard LEDs (QEMU LED State: bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock); 0 when unknown."""
        xkb = self._xkb
        return xkb.led_state if xkb is not None else 0

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
        for events in (self._clipboard, self._xkb):
            if events is not None:
                await asyncio.to_thread(events.close)
        self._clipboard = None
        self._xkb = None
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

    def scancode_event(self, keycode: int, keysym: int, down: bool) -> None:
        """A QEMU Extended Key Event: ``keycode`` is the XT scancode (see :mod:`pyvnc.input.xt`)."""
        injector = self._injector()
        if injector is not None:
            injector.scancode_event(keycode, keysym, down)

    def cut_text(self, text: str) -> None:
        """A client's clipboard text: X clients can paste it from CLIPBOARD and PRIMARY."""
        if not self.inject_input:
            return
        if self._clipboard is not None:
            self._clipboard.set_text(text)
            return
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
