"""``FrameHub``: the latest frame, and what changed since each session last looked.

RFB is pull-based, so the hub never queues frames: it keeps only the newest one. Publishing merges the damage
into every session's region at once (on the event loop, no awaits), so a slow client simply skips frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .capture.base import FrameArray
from .errors import CaptureError
from .protocol.messages import Screen

if TYPE_CHECKING:
    from .capture.cursor import CursorImage
    from .capture.scroll import Copy
from .region import Rect, Region


class Subscription:
    """One session's view of the hub: its damage region and a wake-up event."""

    def __init__(self, hub: FrameHub) -> None:
        self.hub = hub
        #: pixels that changed since they were last sent to this session
        self.damage = Region()
        #: set whenever something this session may care about happened
        self.changed = asyncio.Event()
        self._wants = False
        #: the session's handlers for the desktop's clipboard and bell
        self.on_clipboard: Callable[[str], None] | None = None
        self.on_bell: Callable[[], None] | None = None
        #: True when this session paints the cursor into its frames (its client draws none itself)
        self.paints_cursor = False
        #: True when the client takes CopyRect; then a scroll waiting to be sent as a copy
        self.accepts_copies = False
        self.pending_copy: Copy | None = None

    @property
    def wants(self) -> bool:
        return self._wants

    @wants.setter
    def wants(self, value: bool) -> None:
        """Whether this session waits for new frames (sources grab only while some session does)."""
        if value != self._wants:
            self._wants = value
            self.hub._demand_changed()

    def close(self) -> None:
        self.hub.unsubscribe(self)


#: the id of the one screen of the server's layouts (ExtendedDesktopSize). Any value is valid (rfbproto), but
#: libvncclient (Remmina, KRDC) ignores a new size whose layout has a screen of id 0, and then refuses the new
#: desktop's rectangles; LibVNCServer's own server says 1.
SCREEN_ID = 1


class FrameHub:
    """The server's frame sink: sources publish, sessions subscribe."""

    def __init__(self, name: str = "pyvnc") -> None:
        self.frame: FrameArray = np.zeros((1, 1, 4), np.uint8)
        #: increases with every published frame
        self.seq = 0
        self.name = name
        self._subs: list[Subscription] = []
        self._demand = asyncio.Event()
        #: set when the source failed for good; the server shuts down
        self.failed: CaptureError | None = None
        self.failed_event = asyncio.Event()
        self.clipboard: str | None = None
        #: the pointer's shape, bumped ``cursor_seq`` on every change, and where the pointer is
        self.cursor: CursorImage | None = None
        self.cursor_seq = 0
        self.pointer: tuple[int, int] | None = None
        #: the keyboard LEDs (QEMU LED State bits) once the source reported a change, else None
        self.led_state: int | None = None
        #: the screen layout (ExtendedDesktopSize), bumped ``layout_seq`` on every change, and the session
        #: whose SetDesktopSize set it (None: the server, e.g. a new frame size)
        self.screens: tuple[Screen, ...] = (Screen(SCREEN_ID, 0, 0, 1, 1),)
        self.layout_seq = 0
        self.layout_owner: object | None = None
        #: the layouts sessions' SetDesktopSize requests are resizing the source for: session → (size, screens)
        self._expected_layouts: dict[object, tuple[tuple[int, int], tuple[Screen, ...]]] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the latest frame."""
        return self.frame.shape[1], self.frame.shape[0]

    def expect_layout(self, size: tuple[int, int], screens: tuple[Screen, ...], owner: object) -> None:
        """A client asked for ``screens`` at ``size``: the next frame of that size has them as its layout (one
        layout change, by ``owner``, not the server's and then the client's)."""
        self._expected_layouts[owner] = (size, screens)

    def forget_layout(self, owner: object) -> None:
        """``owner``'s resize is over: its expectation, if still there, goes."""
        self._expected_layouts.pop(owner, None)

    def set_layout(self, screens: tuple[Screen, ...], owner: object | None) -> None:
        """Screens a client laid out over the current frame (checked by the caller); ``owner`` is its session."""
        self.screens = screens
        self.layout_owner = owner
        self.layout_seq += 1
        for sub in self._subs:
            sub.changed.set()  # every session tells its client

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            sub.wants = False
            self._demand_changed()

    # --- FrameSink -----------------------------------------------------------------------------------------

    def publish(self, frame: FrameArray, rects: Sequence[Rect] | None = None, copies: Sequence[Copy] = ()) -> None:
        """Make ``frame`` the latest; ``rects`` are the changed areas (None: all of it); ``copies`` moved
        content (see :class:`~pyvnc.capture.scroll.Copy`)."""
        if frame.ndim != 3 or frame.shape[2] != 4 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 4) uint8 BGRX arrays, got {frame.shape} {frame.dtype}")
        resized = frame.shape[:2] != self.frame.shape[:2]
        self.frame = frame
        if resized:
            size = (frame.shape[1], frame.shape[0])
            owner = next((o for o, (want, _) in self._expected_layouts.items() if want == size), None)
            if owner is not None:
                self.set_layout(self._expected_layouts.pop(owner)[1], owner)
            else:  # the server's layout: one screen covering the frame
                self.set_layout((Screen(SCREEN_ID, 0, 0, *size),), None)
        self.seq += 1
        whole = Rect(0, 0, frame.shape[1], frame.shape[0])
        if resized or rects is None:
            changed = [whole]
            copies = ()
        else:
            changed = [c for r in rects if (c := Rect(*r).intersect(whole)) is not None]
        if not changed and not copies:
            return
        for sub in self._subs:
            if resized:
                sub.damage.clear()
                sub.pending_copy = None
            for copy in copies:
                src = Rect(copy.src_x, copy.src_y, copy.dst.w, copy.dst.h)
                # the client's pixels at src are the previous frame's only where it has no unsent damage;
                # and copies are not chained: one at a time per session
                if sub.accepts_copies and sub.pending_copy is None and not sub.damage.intersects(src):
                    sub.pending_copy = copy
                else:
                    sub.damage.add(copy.dst)
            sub.damage.update(changed)
            sub.changed.set()

    def wants_frames(self) -> bool:
        return any(sub.wants for sub in self._subs)

    async def wait_for_demand(self) -> None:
        while not self.wants_frames():
            self._demand.clear()
            await self._demand.wait()

    def set_desktop_name(self, name: str) -> None:
        self.name = name
        for sub in self._subs:
            sub.changed.set()

    def set_clipboard(self, text: str) -> None:
        """The desktop's clipboard now holds ``text``: every client is told."""
        self.clipboard = text
        for sub in self._subs:
            if sub.on_clipboard is not None:
                sub.on_clipboard(text)

    def bell(self) -> None:
        """The desktop rang its bell."""
        for sub in self._subs:
            if sub.on_bell is not None:
                sub.on_bell()

    def set_led_state(self, state: int) -> None:
        """The desktop's keyboard LEDs changed (bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock)."""
        if state == self.led_state:
            return
        self.led_state = state
        for sub in self._subs:
            sub.changed.set()

    def set_cursor(self, cursor: CursorImage | None) -> None:
        old = self.cursor_area()
        self.cursor = cursor
        self.cursor_seq += 1
        self._cursor_moved(old)

    def needs_pointer(self) -> bool:
        return any(sub.paints_cursor for sub in self._subs)

    def set_pointer(self, x: int, y: int) -> None:
        if self.pointer == (x, y):
            return
        old = self.cursor_area()
        self.pointer = (x, y)
        self._cursor_moved(old)

    def cursor_area(self) -> Rect | None:
        """Where the cursor lies on the frame (clipped), or None when there is none or no pointer position."""
        if self.cursor is None or self.pointer is None:
            return None
        from .capture.cursor import cursor_bounds

        w, h = self.size
        return cursor_bounds(self.cursor, self.pointer[0], self.pointer[1], w, h)

    def _cursor_moved(self, old: Rect | None) -> None:
        """Sessions that paint the cursor must repaint where it was and where it is now."""
        new = self.cursor_area()
        for sub in self._subs:
            if sub.paints_cursor:
                for area in (old, new):
                    if area is not None:
                        sub.damage.add(area)
            sub.changed.set()

    def fail(self, error: CaptureError) -> None:
        if self.failed is None:
            self.failed = error
            self.failed_event.set()

    def _demand_changed(self) -> None:
        if self.wants_frames():
            self._demand.set()
        else:
            self._demand.clear()
