"""Extended Clipboard (rfbproto "Extended Clipboard Pseudo-Encoding"): message bodies in and out.

An extended cut-text message is a ClientCutText / ServerCutText whose length is negative; its body starts with
a U32 of flags: format bits (0 text, 1 rtf, 2 html, 3 dib, 4 files) and one action bit (24 caps, 25 request,
26 peek, 27 notify, 28 provide). Only UTF-8 text is spoken here; other formats are ignored.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import ProtocolError

FORMAT_TEXT = 1 << 0
FORMAT_RTF = 1 << 1
FORMAT_HTML = 1 << 2
FORMAT_DIB = 1 << 3
FORMAT_FILES = 1 << 4
FORMAT_MASK = 0xFFFF

ACTION_CAPS = 1 << 24
ACTION_REQUEST = 1 << 25
ACTION_PEEK = 1 << 26
ACTION_NOTIFY = 1 << 27
ACTION_PROVIDE = 1 << 28
ACTION_MASK = 0xFF << 24

#: what a client that sent no caps message is assumed to accept (rfbproto: text up to 20 MiB)
DEFAULT_CLIENT_TEXT_LIMIT = 20 << 20


class TextTooLong(Exception):
    """A provide message's text is longer than the limit: not an error of the peer's (a big copy), so the
    message is dropped and the connection carries on. ``size`` is the length the message declares."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"clipboard text of {size} bytes (limit {limit})")
        self.size = size


@dataclass(frozen=True)
class ExtendedClipboardMessage:
    """One parsed extended clipboard message."""

    action: int
    formats: int
    #: caps: the peer's maximum unsolicited size per format bit present, in bit order
    sizes: tuple[int, ...] = ()
    #: provide: the text, if the text format was included (line endings normalised to "\n")
    text: str | None = None
    #: caps: the actions the peer accepts (request, peek, notify, provide bits)
    accepts: int = 0


def caps_message(max_text: int) -> bytes:
    """Our capabilities: UTF-8 text up to ``max_text`` bytes; request, peek, notify and provide."""
    flags = ACTION_CAPS | FORMAT_TEXT | ACTION_REQUEST | ACTION_PEEK | ACTION_NOTIFY | ACTION_PROVIDE
    return struct.pack(">II", flags, max_text)


def notify_message(has_text: bool) -> bytes:
    return struct.pack(">I", ACTION_NOTIFY | (FORMAT_TEXT if has_text else 0))


def request_message() -> bytes:
    return struct.pack(">I", ACTION_REQUEST | FORMAT_TEXT)


def provide_message(text: str) -> bytes:
    """A provide message with ``text`` as UTF-8, CRLF line endings and a terminating NUL, zlib-compressed."""
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8") + b"\0"
    payload = struct.pack(">I", len(data)) + data
    return struct.pack(">I", ACTION_PROVIDE | FORMAT_TEXT) + zlib.compress(payload, 6)


def parse(body: bytes, max_text: int) -> ExtendedClipboardMessage:
    """Parse an extended clipboard message body (after the negative length). Text over ``max_text`` bytes
    raises :class:`TextTooLong` (no more than ``max_text`` bytes are ever inflated); a malformed message is a
    :class:`ProtocolError`."""
    if len(body) < 4:
        raise ProtocolError("extended clipboard message shorter than its flags")
    (flags,) = struct.unpack_from(">I", body)
    formats = flags & FORMAT_MASK
    action = flags & ACTION_MASK
    if action & ACTION_CAPS:
        # with caps, the other action bits list what the sender accepts
        n = bin(formats).count("1")
        if len(body) < 4 + 4 * n:
            raise ProtocolError("extended clipboard caps message is missing its sizes")
        sizes = struct.unpack_from(f">{n}I", body, 4)
        return ExtendedClipboardMessage(ACTION_CAPS, formats, sizes, accepts=action & ~ACTION_CAPS)
    if action in (ACTION_REQUEST, ACTION_PEEK, ACTION_NOTIFY):
        return ExtendedClipboardMessage(action, formats)
    if action != ACTION_PROVIDE:
        raise ProtocolError(f"extended clipboard message with action bits {action >> 24:#x}")
    text = _provided_text(body[4:], formats, max_text)
    return ExtendedClipboardMessage(action, formats, text=text)


def _provided_text(stream: bytes, formats: int, max_text: int) -> str | None:
    if not formats & FORMAT_TEXT:
        return None  # only other formats: nothing we use, nothing to inflate
    inflater = zlib.decompressobj()
    # text is format bit 0, so it comes first: its U32 size, then at most max_text bytes
    limit = max_text + 4
    try:
        data = inflater.decompress(stream, limit)
    except zlib.error as exc:
        raise ProtocolError(f"extended clipboard provide: bad zlib data: {exc}") from None
    # text is the first format: its size and bytes are all that is read (inflating stopped after the limit,
    # so the text is there whole, or declared too long, whatever other formats follow it)
    if len(data) < 4:
        raise ProtocolError("extended clipboard provide: truncated")
    (size,) = struct.unpack_from(">I", data)
    if size > max_text:
        raise TextTooLong(size, max_text)
    if 4 + size > len(data):
        raise ProtocolError("extended clipboard provide: text shorter than its size")
    return data[4 : 4 + size].split(b"\0", 1)[0].decode("utf-8", errors="replace").replace("\r\n", "\n")
