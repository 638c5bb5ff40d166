"""RFB messages: the events the protocol reports and the server messages it serialises.

Client messages are parsed by :mod:`pyvnc.protocol.connection` into the frozen event dataclasses below.
Server messages are built by the ``*_message`` functions (rfbproto 7.6) and the rectangle headers
(rfbproto 7.6.1, 7.7, 7.8).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..region import Rect
from .constants import Encoding, ServerMessageType
from .pixelformat import PixelFormat

# --- layouts -------------------------------------------------------------------------------------------------

U8 = struct.Struct(">B")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
S32 = struct.Struct(">i")
#: FramebufferUpdate header: type, padding, number-of-rectangles (rfbproto 7.6.1)
FB_UPDATE_HEADER = struct.Struct(">BxH")
#: a rectangle header: x, y, width, height, encoding-type (rfbproto 7.6.1)
RECT_HEADER = struct.Struct(">HHHHi")
#: the position at the start of a rectangle header: x, y
RECT_POSITION = struct.Struct(">HH")
#: ServerInit without the name: width, height, pixel format, name-length (rfbproto 7.3.2)
SERVER_INIT = struct.Struct(">HH16sI")
#: SetPixelFormat after the type byte: padding, pixel format (rfbproto 7.5.1)
SET_PIXEL_FORMAT = struct.Struct(">3x16s")
#: FramebufferUpdateRequest after the type byte (rfbproto 7.5.3)
UPDATE_REQUEST = struct.Struct(">BHHHH")
#: KeyEvent after the type byte (rfbproto 7.5.4)
KEY_EVENT = struct.Struct(">Bxxi")
#: PointerEvent after the type byte (rfbproto 7.5.5)
POINTER_EVENT = struct.Struct(">BHH")
#: ClientCutText / ServerCutText after the type byte: padding, length (rfbproto 7.5.6, 7.6.4)
CUT_TEXT = struct.Struct(">3xi")
#: SetDesktopSize after the type byte: padding, width, height, number-of-screens, padding (rfbproto 7.5.9)
SET_DESKTOP_SIZE = struct.Struct(">xHHBx")
#: a screen in SetDesktopSize and ExtendedDesktopSize: id, x, y, width, height, flags (rfbproto 7.8.10)
SCREEN = struct.Struct(">IHHHHI")


# --- events (what the client said) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Base class of protocol events."""


@dataclass(frozen=True)
class TLSRequested(Event):
    """VeNCrypt: the client chose a TLS subtype. Pause reading (the client's first handshake bytes must wait
    in the socket for TLS); if bytes were read past the subtype all the same, ``refuse_tls()``; else
    ``accept_tls()``, send the ack (nothing else is queued), start TLS as the server and call
    ``tls_started()``, or ``close()`` if the handshake fails."""

    subtype: int


@dataclass(frozen=True)
class VersionNegotiated(Event):
    """The protocol version both sides will speak: (3, 3), (3, 7) or (3, 8)."""

    version: tuple[int, int]


@dataclass(frozen=True)
class AuthRequested(Event):
    """The client answered a security challenge; answer with ``accept_auth()`` or ``reject_auth()``.

    For VNC Authentication ``challenge`` and ``response`` are the 16-byte DES challenge and reply; for
    security type None both are empty.
    """

    security_type: int
    challenge: bytes
    response: bytes

    def __repr__(self) -> str:  # never show authentication bytes in logs
        return f"AuthRequested(security_type={self.security_type})"


@dataclass(frozen=True)
class ClientInitReceived(Event):
    """ClientInit: whether the client is willing to share the desktop. Answer with ``send_server_init()``."""

    shared: bool


@dataclass(frozen=True)
class PixelFormatChanged(Event):
    """SetPixelFormat (rfbproto 7.5.1)."""

    pixel_format: PixelFormat


@dataclass(frozen=True)
class EncodingsChanged(Event):
    """SetEncodings (rfbproto 7.5.2): the client's encodings, most preferred first."""

    encodings: tuple[int, ...]


@dataclass(frozen=True)
class UpdateRequested(Event):
    """FramebufferUpdateRequest (rfbproto 7.5.3)."""

    incremental: bool
    rect: Rect


@dataclass(frozen=True)
class KeyEvent(Event):
    """KeyEvent (rfbproto 7.5.4): an X keysym pressed or released."""

    down: bool
    keysym: int


@dataclass(frozen=True)
class PointerEvent(Event):
    """PointerEvent (rfbproto 7.5.5): position and button mask (bit 0 = button 1)."""

    buttons: int
    x: int
    y: int


@dataclass(frozen=True)
class CutText(Event):
    """ClientCutText (rfbproto 7.5.6): new clipboard text from the client."""

    text: str


@dataclass(frozen=True)
class ContinuousUpdatesChanged(Event):
    """EnableContinuousUpdates (rfbproto 7.5.7): updates flow without requests for ``rect`` while enabled."""

    enabled: bool
    rect: Rect


@dataclass(frozen=True)
class FenceReceived(Event):
    """ClientFence (rfbproto 7.5.8) answering one of our fences (a request from the client is answered by
    :meth:`RFBServerProtocol.answer_fence` once the session has sent what came before it)."""

    flags: int
    payload: bytes
    request: bool


@dataclass(frozen=True)
class QEMUKeyEvent(Event):
    """QEMU Extended Key Event (rfbproto 7.5.10.1): a keysym with the XT scancode that produced it."""

    down: bool
    keysym: int
    keycode: int


@dataclass(frozen=True)
class ClipboardRequested(Event):
    """The client asked for our clipboard (extended clipboard *request*); the protocol answers it."""


@dataclass(frozen=True)
class CutTextDiscarded(Event):
    """A ClientCutText longer than the configured limit arrived and was skipped unread."""

    length: int


@dataclass(frozen=True)
class Screen:
    """A screen of the desktop layout (rfbproto 7.8.10)."""

    id: int
    x: int
    y: int
    width: int
    height: int
    flags: int = 0


@dataclass(frozen=True)
class DesktopSizeRequested(Event):
    """SetDesktopSize (rfbproto 7.5.9): the client asks for a new desktop size and layout."""

    width: int
    height: int
    screens: tuple[Screen, ...]


@dataclass(frozen=True)
class Closed(Event):
    """The connection is over: the client left, broke the protocol, or failed authentication."""

    reason: str
    error: bool = False


# --- server messages -----------------------------------------------------------------------------------------


def rect_header(x: int, y: int, w: int, h: int, encoding: int) -> bytes:
    """The 12-byte header that starts every rectangle of a FramebufferUpdate."""
    return RECT_HEADER.pack(x, y, w, h, encoding)


def framebuffer_update_header(n_rects: int) -> bytes:
    """FramebufferUpdate's header; ``0xFFFF`` rectangles means "until a LastRect" (rfbproto 7.8.3)."""
    return FB_UPDATE_HEADER.pack(ServerMessageType.FRAMEBUFFER_UPDATE, n_rects)


def bell_message() -> bytes:
    """Bell (rfbproto 7.6.3)."""
    return U8.pack(ServerMessageType.BELL)


def server_cut_text_message(text: str) -> bytes:
    """ServerCutText (rfbproto 7.6.4): Latin-1 text; characters outside Latin-1 become '?'."""
    data = text.encode("latin-1", errors="replace")
    return U8.pack(ServerMessageType.SERVER_CUT_TEXT) + struct.pack(">3xI", len(data)) + data


def desktop_size_rect(width: int, height: int) -> bytes:
    """A DesktopSize pseudo-rectangle (rfbproto 7.8.2)."""
    return rect_header(0, 0, width, height, Encoding.DESKTOP_SIZE)


def extended_desktop_size_rect(reason: int, status: int, width: int, height: int, screens: tuple[Screen, ...]) -> bytes:
    """An ExtendedDesktopSize pseudo-rectangle with the screen layout (rfbproto 7.8.10)."""
    body = struct.pack(">B3x", len(screens)) + b"".join(
        SCREEN.pack(s.id, s.x, s.y, s.width, s.height, s.flags) for s in screens
    )
    return rect_header(reason, status, width, height, Encoding.EXTENDED_DESKTOP_SIZE) + body


def end_of_continuous_updates_message() -> bytes:
    """EndOfContinuousUpdates (rfbproto 7.6.7)."""
    return U8.pack(150)


def server_fence_message(flags: int, payload: bytes) -> bytes:
    """ServerFence (rfbproto 7.6.8); the payload is at most 64 bytes."""
    return struct.pack(">B3xIB", 248, flags, len(payload)) + payload


def extended_cut_text_message(body: bytes) -> bytes:
    """ServerCutText carrying an extended clipboard message: a negative length (rfbproto, Extended Clipboard)."""
    return struct.pack(">B3xi", ServerMessageType.SERVER_CUT_TEXT, -len(body)) + body


def empty_pseudo_rect(encoding: int) -> bytes:
    """An empty pseudo-rectangle confirming a pseudo-encoding (QEMU key events, ExtendedMouseButtons)."""
    return rect_header(0, 0, 0, 0, encoding)


def led_state_rect(state: int) -> bytes:
    """QEMU LED State (rfbproto 7.8.x): bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock."""
    return rect_header(0, 0, 0, 0, Encoding.QEMU_LED_STATE) + U8.pack(state & 7)


def last_rect() -> bytes:
    """The LastRect pseudo-rectangle that ends an update of unknown length (rfbproto 7.8.3)."""
    return rect_header(0, 0, 0, 0, Encoding.LAST_RECT)


def desktop_name_rect(name: str) -> bytes:
    """A DesktopName pseudo-rectangle (rfbproto 7.8.11): UTF-8 name."""
    data = name.encode("utf-8")
    return rect_header(0, 0, 0, 0, Encoding.DESKTOP_NAME) + U32.pack(len(data)) + data
