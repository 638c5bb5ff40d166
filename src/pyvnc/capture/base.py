"""The frame-source interface every capture source implements.

A source owns the pixels of the desktop. Frames are numpy arrays of shape (height, width, 4), dtype uint8,
in **BGRX** byte order (byte 0 blue, 1 green, 2 red, 3 unused): the little-endian 32-bit value
0x00RRGGBB, which is the server's native pixel format and what X11 (mss) delivers. A published frame is
never modified afterwards (encoders read it from worker threads); a source publishes a new array.

A source publishes frames to a :class:`FrameSink` (the server's frame hub) given to :meth:`start`. Sources that
poll (X11, demo) grab only while ``sink.wants_frames()`` is true, at most ``max_fps`` times a second, and
wait on ``sink.wait_for_demand()`` otherwise.

Input from clients reaches the source's :meth:`key_event`, :meth:`pointer_event` and :meth:`cut_text`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import CaptureError
from ..region import Rect

if TYPE_CHECKING:
    from .cursor import CursorImage
    from .scroll import Copy

FrameArray = npt.NDArray[np.uint8]


class FrameSink(Protocol):
    """Where a source publishes frames (implemented by :class:`pyvnc.hub.FrameHub`)."""

    def publish(self, frame: FrameArray, rects: Sequence[Rect] | None = None, copies: Sequence[Copy] = ()) -> None:
        """Publish a new frame; ``rects`` lists the changed areas, ``None`` means all of it changed.

        ``copies`` are areas whose new pixels are the previous frame's pixels from elsewhere (scrolling):
        clients that support CopyRect get them as copies, others as changed areas.

        Must be called on the event loop thread. A frame of a new size is a desktop resize.
        """

    def wants_frames(self) -> bool:
        """True while at least one client waits for an update."""

    async def wait_for_demand(self) -> None:
        """Return when at least one client waits for an update."""

    def set_desktop_name(self, name: str) -> None:
        """Change the desktop name shown to clients."""

    def set_clipboard(self, text: str) -> None:
        """The desktop's clipboard changed to ``text``."""

    def bell(self) -> None:
        """The desktop rang its bell."""

    def set_led_state(self, state: int) -> None:
        """The keyboard LEDs changed: QEMU LED State bits (bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock)."""

    def set_cursor(self, cursor: CursorImage | None) -> None:
        """The pointer's shape changed (None: unknown or hidden)."""

    def set_pointer(self, x: int, y: int) -> None:
        """The pointer moved to (x, y) on the desktop."""

    def needs_pointer(self) -> bool:
        """True while some client has the cursor painted into its frames (so the position matters)."""

    def fail(self, error: CaptureError) -> None:
        """The source cannot produce frames any more (the X server went away, say): stop serving."""


class FrameSource(abc.ABC):
    """A source of desktop frames, and the sink for client input."""

    #: the name this source gives the desktop (shown in ServerInit)
    name: str = "pyvnc"

    @property
    @abc.abstractmethod
    def size(self) -> tuple[int, int]:
        """The current (width, height) of the desktop."""

    @abc.abstractmethod
    async def start(self, sink: FrameSink, max_fps: float) -> None:
        """Begin producing frames into ``sink``; publish the first frame before returning."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop producing frames and release every resource (tasks, processes, connections)."""

    def key_event(self, keysym: int, down: bool) -> None:  # noqa: B027 - optional hook
        """A client pressed (``down``) or released a key given as an X keysym."""

    def pointer_event(self, x: int, y: int, buttons: int) -> None:  # noqa: B027 - optional hook
        """A client moved the pointer to (x, y) with ``buttons`` (bit 0 = button 1) held."""

    def cut_text(self, text: str) -> None:  # noqa: B027 - optional hook
        """A client set the clipboard to ``text``."""
