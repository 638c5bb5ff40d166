"""The X pointer's shape (XFixes), and the RFB pseudo-rectangles that send it to clients.

Clients that can draw the cursor themselves ask for one of the cursor pseudo-encodings in SetEncodings;
the server then sends the shape as a pseudo-rectangle whenever it changes (and once after the client asks),
and never paints the pointer into the framebuffer. In order of preference (richest first):

- *Cursor With Alpha* (-314, rfbproto "Cursor With Alpha Pseudo-encoding"): RGBA, alpha pre-multiplied;
- *VMware Cursor* (0x574d5664, rfbproto "VMware Cursor Pseudo-encoding"), alpha cursor type 1: RGBA;
- *Cursor* (-239, rfbproto 7.8.1 "Cursor Pseudo-encoding"): pixels in the client's pixel format plus a
  1-bit transparency mask.

For clients that ask for none of them, :func:`paint_cursor` blends the cursor into a copy of the frame.

:class:`CursorWatcher` reads the X server's current cursor with XFixes GetCursorImage and learns about shape
changes from XFixes *DisplayCursorNotify* events (XFixesSelectCursorInput on the root window) rather than
by polling: with events nothing crosses the X connection while the shape stays the same, and the image,
the expensive part, is fetched only when the server reports a new cursor serial. The pointer *position*
has no such event, so :meth:`CursorWatcher.pointer_position` is a QueryPointer round trip (~0.1 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import select
import struct
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import CaptureError
from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import PixelConverter
from ..region import Rect
from .base import FrameArray

logger = logging.getLogger(__name__)

RGBAArray = npt.NDArray[np.uint8]

#: the opacity at which a pixel counts as "shown" in the 1-bit mask of the Cursor pseudo-encoding
MASK_THRESHOLD = 128

_S32 = struct.Struct(">i")
_VMWARE_ALPHA_HEADER = struct.Struct(">BB")
_VMWARE_CURSOR_TYPE_ALPHA = 1
_RAW_ENCODING = 0

_DISPLAY_CURSOR_NOTIFY_MASK = 1  # XFixesDisplayCursorNotifyMask


@dataclass(frozen=True, eq=False)
class CursorImage:
    """A cursor shape: ``rgba`` is (height, width, 4) uint8, red, green, blue, *straight* (not pre-multiplied)
    alpha. (hot_x, hot_y) is the hotspot, the pixel that sits at the pointer position. ``serial`` is the X
    server's cursor serial (0 for synthetic images)."""

    width: int
    height: int
    hot_x: int
    hot_y: int
    serial: int
    rgba: RGBAArray

    def __post_init__(self) -> None:
        if self.rgba.shape != (self.height, self.width, 4) or self.rgba.dtype != np.uint8:
            raise ValueError(
                f"cursor pixels must be ({self.height}, {self.width}, 4) uint8, not {self.rgba.shape} {self.rgba.dtype}"
            )

    @classmethod
    def from_argb(
        cls,
        width: int,
        height: int,
        hot_x: int,
        hot_y: int,
        serial: int,
        argb: Sequence[int] | npt.NDArray[np.uint32],
    ) -> CursorImage:
        """A cursor from XFixes' pixels: ``width * height`` 32-bit 0xAARRGGBB values, alpha pre-multiplied."""
        values = np.asarray(argb, dtype=np.uint32).reshape(height, width)
        a = (values >> 24).astype(np.uint32)
        premultiplied = np.stack([(values >> s) & 0xFF for s in (16, 8, 0)], axis=-1).astype(np.uint32)
        alpha = a[..., None]
        safe = np.maximum(alpha, 1)
        straight = np.where(alpha > 0, np.minimum((premultiplied * 255 + safe // 2) // safe, 255), 0)
        rgba = np.empty((height, width, 4), np.uint8)
        rgba[..., :3] = straight
        rgba[..., 3] = a
        return cls(width, height, hot_x, hot_y, serial, rgba)

    def premultiplied(self) -> RGBAArray:
        """The pixels as RGBA with alpha pre-multiplied into each colour channel (rounded)."""
        rgba = self.rgba.astype(np.uint16)
        out = np.empty(self.rgba.shape, np.uint8)
        out[..., :3] = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255
        out[..., 3] = self.rgba[..., 3]
        return out


# -- RFB pseudo-rectangles -----------------------------------------------------------------------------------


def cursor_rect(img: CursorImage, converter: PixelConverter) -> bytes:
    """The Cursor pseudo-rectangle (encoding -239, rfbproto 7.8.1) in the client's pixel format.

    x, y = the hotspot; then ``width * height`` pixels converted by ``converter`` and a bitmask of
    ``((width + 7) // 8) * height`` bytes, rows padded to whole bytes, most significant bit leftmost, a 1 bit
    for every pixel at least half opaque (alpha >= 128). Transparent pixels are sent as black.
    """
    header = rect_header(img.hot_x, img.hot_y, img.width, img.height, Encoding.CURSOR)
    if img.width == 0 or img.height == 0:
        return header
    shown = img.rgba[..., 3] >= MASK_THRESHOLD
    bgrx = np.zeros((img.height, img.width, 4), np.uint8)
    bgrx[..., :3] = img.rgba[..., 2::-1]
    bgrx[~shown] = 0
    mask = np.packbits(shown, axis=1)  # pads each row to whole bytes, MSB first
    return header + converter.convert(bgrx) + mask.tobytes()


def cursor_with_alpha_rect(img: CursorImage) -> bytes:
    """The Cursor With Alpha pseudo-rectangle (encoding -314, rfbproto "Cursor With Alpha Pseudo-encoding").

    x, y = the hotspot; then the S32 encoding of the pixel data, here Raw (0), then ``width * height``
    pixels of 4 bytes in the order red, green, blue, alpha, with alpha **pre-multiplied** into each colour
    channel as the spec requires.
    """
    header = rect_header(img.hot_x, img.hot_y, img.width, img.height, Encoding.CURSOR_WITH_ALPHA)
    return header + _S32.pack(_RAW_ENCODING) + img.premultiplied().tobytes()


def vmware_cursor_rect(img: CursorImage) -> bytes:
    """The VMware Cursor pseudo-rectangle (0x574d5664, rfbproto "VMware Cursor Pseudo-encoding"), alpha type.

    x, y = the hotspot; then the cursor type byte 1 ("alpha cursor") and a padding byte, then
    ``width * height`` RGBA pixels, 4 bytes each in the order red, green, blue, alpha. The spec does not say
    whether alpha is pre-multiplied; its clients (noVNC, TigerVNC's viewer) use the bytes as straight alpha,
    so straight alpha is sent.
    """
    header = rect_header(img.hot_x, img.hot_y, img.width, img.height, Encoding.VMWARE_CURSOR)
    return header + _VMWARE_ALPHA_HEADER.pack(_VMWARE_CURSOR_TYPE_ALPHA, 0) + img.rgba.tobytes()


# -- painting the cursor into frames -------------------------------------------------------------------------


def cursor_bounds(img: CursorImage, x: int, y: int, width: int, height: int) -> Rect | None:
    """Where the cursor lands on a ``width`` x ``height`` frame with the pointer at (x, y), clipped (or None).

    The session adds this to a client's damage when the pointer moves or the shape changes, both for the
    old and the new position, when it paints the cursor into frames.
    """
    area = Rect(x - img.hot_x, y - img.hot_y, img.width, img.height)
    return area.intersect(Rect(0, 0, width, height))


def painted_bounds(img: CursorImage, x: int, y: int, width: int, height: int) -> Rect | None:
    """Like :func:`cursor_bounds`, but only the part of the cursor that is not fully transparent: the pixels
    that painting it changes (or None when there are none on the frame)."""
    rows = np.flatnonzero(img.rgba[..., 3].any(axis=1))
    cols = np.flatnonzero(img.rgba[..., 3].any(axis=0))
    if rows.size == 0:
        return None
    x0, y0 = int(cols[0]), int(rows[0])
    area = Rect(x - img.hot_x + x0, y - img.hot_y + y0, int(cols[-1]) + 1 - x0, int(rows[-1]) + 1 - y0)
    return area.intersect(Rect(0, 0, width, height))


def paint_cursor(frame_bgrx: FrameArray, img: CursorImage, x: int, y: int) -> FrameArray:
    """A copy of ``frame_bgrx`` with the cursor alpha-blended at pointer position (x, y).

    For clients that asked for no cursor pseudo-encoding. The frame itself is never modified (published
    frames are shared); when the cursor is off the frame, the frame is returned as it is. Blending is
    ``out = colour * alpha + frame * (1 - alpha)`` per channel, rounded; byte 3 keeps the frame's value.
    """
    h, w = frame_bgrx.shape[:2]
    area = cursor_bounds(img, x, y, w, h)
    if area is None:
        return frame_bgrx
    out = frame_bgrx.copy()
    cx, cy = area.x - (x - img.hot_x), area.y - (y - img.hot_y)
    src = img.rgba[cy : cy + area.h, cx : cx + area.w].astype(np.uint16)
    dst = out[area.y : area.bottom, area.x : area.right, :3]
    alpha = src[..., 3:4]
    colour = src[..., 2::-1]  # RGB → BGR
    blended = (colour * alpha + dst.astype(np.uint16) * (255 - alpha) + 127) // 255
    dst[...] = blended.astype(np.uint8)
    return out


# -- the X server's cursor -----------------------------------------------------------------------------------


class CursorWatcher:
    """Reads the cursor shape and pointer position of X display ``display`` through XFixes.

    Opens its own X connection (raises :class:`~pyvnc.errors.CaptureError` when the display cannot be opened
    or lacks XFixes) and selects DisplayCursorNotify events on the root window. Thread-safe: calls are
    serialised on an internal lock; none of them blocks for longer than one X round trip except :meth:`wait`.

    Use :meth:`poll` (non-blocking) or :meth:`wait` (blocking, in a thread) to learn about new shapes, or the
    async iterator :meth:`changes` from the event loop.
    """

    def __init__(self, display: str) -> None:
        self.display_name = display
        self._lock = threading.Lock()
        try:
            xdisplay = importlib.import_module("Xlib.display")
            importlib.import_module("Xlib.ext.xfixes")
            d = xdisplay.Display(display)
        except Exception as exc:
            raise CaptureError(f"cannot open X display {display} for the cursor: {exc}") from exc
        if not d.has_extension("XFIXES"):
            d.close()
            raise CaptureError(f"X display {display} has no XFIXES extension: cursor shapes are unavailable")
        try:
            # XFixes serves a client only the requests of the version it announced (≥ 2 for cursor events)
            d.xfixes_query_version()
            self._root = d.screen().root
            d.xfixes_select_cursor_input(self._root, _DISPLAY_CURSOR_NOTIFY_MASK)
            d.sync()
        except Exception as exc:
            d.close()
            raise CaptureError(f"cannot watch the cursor of {display}: {exc}") from exc
        self._d: Any = d
        self._cursor_event = d.extension_event.DisplayCursorNotify
        self._last_serial: int | None = None
        self._pending_change = True  # the first poll() reports the current shape

    def fileno(self) -> int:
        """The X connection's socket: readable when events (possibly a cursor change) arrived."""
        return int(self._d.fileno())

    def current(self) -> CursorImage | None:
        """The cursor shown now (one GetCursorImage round trip), or None when the server will not show it.

        The X server refuses (BadAccess) the image of a cursor whose creating client has gone, e.g. one set
        on the root window by ``xsetroot -cursor_name``; cursors of running applications read fine.
        """
        with self._lock:
            return self._fetch()

    def _fetch(self) -> CursorImage | None:
        self._pending_change = False
        try:
            r = self._d.xfixes_get_cursor_image(self._root)
        except Exception as exc:
            if type(exc).__module__ != "Xlib.error":
                raise
            logger.debug("the cursor image of %s is unreadable: %s", self.display_name, exc)
            return None
        img = CursorImage.from_argb(r.width, r.height, r.xhot, r.yhot, r.cursor_serial, r.cursor_image)
        self._last_serial = img.serial
        return img

    def _drain(self) -> None:
        d = self._d
        while d.pending_events():
            ev = d.next_event()
            if (ev.type, getattr(ev, "sub_code", None)) == self._cursor_event and ev.cursor_serial != self._last_serial:
                self._pending_change = True

    def poll(self) -> CursorImage | None:
        """The new shape when it changed since the last one returned (the first call returns the current
        shape), else None (also when the new shape is unreadable: see :meth:`current`). Reads only events
        already received: never waits."""
        with self._lock:
            self._drain()
            if not self._pending_change:
                return None
            return self._fetch()

    def wait(self, timeout: float | None = None) -> CursorImage | None:
        """Block until the shape changes (or ``timeout`` seconds pass: None). Run it in a worker thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            img = self.poll()
            if img is not None:
                return img
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            select.select([self.fileno()], [], [], left)

    def pointer_position(self) -> tuple[int, int]:
        """Where the pointer is on the root window (one QueryPointer round trip)."""
        with self._lock:
            r = self._root.query_pointer()
            return int(r.root_x), int(r.root_y)

    async def changes(self, interval: float = 0.5) -> AsyncIterator[CursorImage]:
        """Yield the current shape, then each new one, for as long as the caller iterates.

        Wakes on the X connection becoming readable (``loop.add_reader``), re-checks at least every
        ``interval`` seconds (events can be read off the socket by another call), and does the X work in a
        worker thread so the loop never waits for the X server.
        """
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fd = self.fileno()
        loop.add_reader(fd, wake.set)
        try:
            while True:
                wake.clear()
                img = await asyncio.to_thread(self.poll)
                if img is not None:
                    yield img
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
                # arrives as the wait ends, and this generator then never stops
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await wake.wait()
        finally:
            loop.remove_reader(fd)

    def close(self) -> None:
        """Close the X connection."""
        with self._lock:
            d, self._d = self._d, None
            if d is not None:
                with contextlib.suppress(Exception):
                    d.close()
