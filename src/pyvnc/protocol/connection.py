"""``RFBServerProtocol``: the server side of one RFB connection, as a sans-I/O state machine.

Feed it what the client sent (:meth:`~RFBServerProtocol.receive_data`, :meth:`~RFBServerProtocol.receive_eof`),
collect typed events (:meth:`~RFBServerProtocol.events_received`) and send what it queued
(:meth:`~RFBServerProtocol.data_to_send`). It never touches sockets, tasks or clocks.

Phases (rfbproto 7.1-7.4): version → security → auth → init → normal → closed. Every length the client sends
is bounded before anything is allocated; a protocol violation closes the connection with a reason (a
:class:`~pyvnc.protocol.messages.Closed` event), never an exception out of ``receive_data``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import Enum, auto

from ..errors import ProtocolError
from ..region import Rect, Region
from . import clipboard
from .constants import ClientMessageType, Encoding, SecurityResult, SecurityType, VeNCryptSubtype
from .messages import (
    CUT_TEXT,
    KEY_EVENT,
    POINTER_EVENT,
    SCREEN,
    SERVER_INIT,
    SET_DESKTOP_SIZE,
    SET_PIXEL_FORMAT,
    U8,
    U32,
    UPDATE_REQUEST,
    AuthRequested,
    ClientInitReceived,
    Closed,
    ContinuousUpdatesChanged,
    CutText,
    CutTextDiscarded,
    DesktopSizeRequested,
    EncodingsChanged,
    Event,
    FenceReceived,
    KeyEvent,
    PixelFormatChanged,
    PointerEvent,
    QEMUKeyEvent,
    Screen,
    TLSRequested,
    UpdateRequested,
    VersionNegotiated,
    bell_message,
    end_of_continuous_updates_message,
    extended_cut_text_message,
    framebuffer_update_header,
    last_rect,
    server_cut_text_message,
    server_fence_message,
)
from .pixelformat import NATIVE, PixelFormat, set_colour_map_entries_message
from .security import vncauth

#: why a VeNCrypt client that sent bytes between its subtype and the server's ack is refused
EARLY_TLS_BYTES = "the client sent data after its VeNCrypt subtype, before the server's ack (TLS must start first)"
#: the most encodings a SetEncodings may list (real clients send fewer than 50)
MAX_ENCODINGS = 1024
#: the most screens a SetDesktopSize may list
MAX_SCREENS = 255
#: message types of the extensions (rfbproto 7.5.7-7.5.10)
ENABLE_CONTINUOUS_UPDATES_TYPE = 150
CLIENT_FENCE_TYPE = 248
SET_DESKTOP_SIZE_TYPE = 251
QEMU_CLIENT_MESSAGE_TYPE = 255

#: Fence flags (rfbproto 7.5.8)
FENCE_BLOCK_BEFORE = 1 << 0
FENCE_BLOCK_AFTER = 1 << 1
FENCE_SYNC_NEXT = 1 << 2
FENCE_REQUEST = 1 << 31
FENCE_SUPPORTED = FENCE_BLOCK_BEFORE | FENCE_BLOCK_AFTER | FENCE_SYNC_NEXT

_VERSION_RE = re.compile(rb"RFB (\d{3})\.(\d{3})\n")

_Parser = Generator[None, None, None]


class Phase(Enum):
    """Where the connection is in the RFB handshake."""

    VERSION = auto()
    SECURITY = auto()
    TLS_PENDING = auto()
    AUTH = auto()
    AUTH_PENDING = auto()
    CLIENT_INIT = auto()
    SERVER_INIT_PENDING = auto()
    NORMAL = auto()
    CLOSED = auto()


@dataclass(frozen=True)
class ProtocolSettings:
    """What the protocol needs to know about the server."""

    #: security types offered, in order of preference (RFB 3.3 uses the first it can: not VeNCrypt)
    security_types: tuple[int, ...] = (SecurityType.NONE,)
    #: VeNCrypt subtypes offered when ``security_types`` has VeNCrypt, in order of preference
    vencrypt_subtypes: tuple[int, ...] = ()
    #: the longest ClientCutText accepted, in bytes
    max_cut_text: int = 1 << 20
    #: when set, the connection is refused with this reason right after version negotiation
    refuse_reason: str | None = None


def negotiate_version(major: int, minor: int) -> tuple[int, int] | None:
    """Map the client's ProtocolVersion to the one we speak (rfbproto 7.1.1), or None for nonsense.

    3.3, 3.7 and 3.8 as they are; 3.889 (Apple) and anything newer than 3.8 → 3.8; 3.4-3.6 and any other 3.x
    below 3.7 → 3.3 (as the spec asks of unknown minor versions); other majors → None.
    """
    if major != 3:
        return (3, 8) if major > 3 else None
    if minor >= 8:
        return (3, 8)
    if minor == 7:
        return (3, 7)
    return (3, 3)


class RFBServerProtocol:
    """The server side of one RFB connection.

    Call :meth:`receive_data` with bytes from the client, then drain :meth:`events_received` and
    :meth:`data_to_send`. Answer ``AuthRequested`` with :meth:`accept_auth` / :meth:`reject_auth` and
    ``ClientInitReceived`` with :meth:`send_server_init`.
    """

    def __init__(self, settings: ProtocolSettings | None = None) -> None:
        self.settings = settings or ProtocolSettings()
        if not self.settings.security_types:
            raise ValueError("at least one security type must be offered")
        if (SecurityType.VENCRYPT in self.settings.security_types) != bool(self.settings.vencrypt_subtypes):
            raise ValueError("VeNCrypt needs its subtypes, and subtypes need VeNCrypt")
        self.phase = Phase.VERSION
        self.version: tuple[int, int] | None = None
        self.security_type: int | None = None
        #: the VeNCrypt subtype the client chose (None: not VeNCrypt)
        self.vencrypt_subtype: int | None = None
        self.shared = False
        self.view_only = False
        #: the format the client asked for (may be a colour-map format)
        self.pixel_format: PixelFormat = NATIVE
        #: bumped whenever the pixel format changes, so in-flight encodes can be discarded
        self.pixel_format_generation = 0
        self.encodings: tuple[int, ...] = (Encoding.RAW,)
        self._encoding_set: frozenset[int] = frozenset()
        self.width = 0
        self.height = 0
        self.close_reason: str | None = None
        #: areas asked for by non-incremental requests not yet answered
        self.full_request = Region()
        #: every area asked for (incremental or not) not yet answered
        self.request_area = Region()
        #: a request for an empty area (or one off the framebuffer) is pending: it may be answered with
        #: pseudo-rectangles only
        self.empty_request = False
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._eof = False
        self._challenge = b""
        #: continuous updates (rfbproto 7.5.7): on, and for which area
        self.continuous = False
        self.continuous_area: Rect | None = None
        self._announced: set[int] = set()
        #: every encoding the client has listed in any SetEncodings (extension messages stay valid once their
        #: extension was established, whatever the client lists later: :meth:`_established`)
        self._ever_listed: set[int] = set()
        #: fence requests waiting for their answer, oldest first (:meth:`answer_fence`)
        self.pending_fences: list[tuple[int, bytes]] = []
        #: a SyncNext fence request, answered once the message after it has been processed
        self._sync_fence: tuple[int, bytes] | None = None
        #: set while an update is being encoded: EndOfContinuousUpdates must not overtake it
        self.hold_end_of_continuous = False
        #: EndOfContinuousUpdates messages held back meanwhile (one for every disable)
        self.end_of_continuous_pending = 0
        #: the server's clipboard text, kept to answer extended clipboard requests
        self.clipboard_text: str | None = None
        #: what the client accepts unsolicited (extended clipboard caps): text size limit
        self.client_text_limit = clipboard.DEFAULT_CLIENT_TEXT_LIMIT
        #: what the client's caps say it receives (before any caps: text, notify and provide)
        self.client_takes_text = True
        self.client_clipboard_actions = clipboard.ACTION_NOTIFY | clipboard.ACTION_PROVIDE | clipboard.ACTION_REQUEST
        self._parser = self._run()
        self._out.append(b"RFB 003.008\n")
        self._advance()

    # --- input ---------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the client."""
        if self.phase is Phase.CLOSED or not data:
            return
        self._buf += data
        self._advance()

    def receive_eof(self) -> None:
        """The client closed its side of the connection."""
        self._eof = True
        if self.phase is not Phase.CLOSED:
            self._close("client disconnected", error=False)

    # --- output --------------------------------------------------------------------------------------------

    def events_received(self) -> list[Event]:
        """Events parsed since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Bytes queued for the client since the last call."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def data_chunks_to_send(self) -> list[bytes]:
        """:meth:`data_to_send` as the pieces it was queued in (no copy of big updates into one buffer)."""
        chunks, self._out = self._out, []
        return chunks

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    # --- answers from the session ----------------------------------------------------------------------------

    def accept_auth(self, view_only: bool = False) -> None:
        """Authentication succeeded; ``view_only`` sessions have their input ignored by the session."""
        if self.phase is not Phase.AUTH_PENDING:
            raise RuntimeError(f"accept_auth() in phase {self.phase.name}")
        self.view_only = view_only
        # rfbproto 7.1.3: no SecurityResult for None before 3.8
        if self.security_type != SecurityType.NONE or self.version == (3, 8):
            self._out.append(U32.pack(SecurityResult.OK))
        self.phase = Phase.CLIENT_INIT
        self._advance()

    def accept_tls(self) -> None:
        """Queue VeNCrypt's ack for the TLS subtype the client chose (see :class:`TLSRequested`)."""
        if self.phase is not Phase.TLS_PENDING:
            raise RuntimeError(f"accept_tls() in phase {self.phase.name}")
        self._out.append(U8.pack(1))

    def refuse_tls(self, reason: str) -> None:
        """Answer the client's TLS subtype with a failing ack and close (see :class:`TLSRequested`)."""
        if self.phase is not Phase.TLS_PENDING:
            raise RuntimeError(f"refuse_tls() in phase {self.phase.name}")
        self._out.append(U8.pack(0))
        self._close(reason, error=True)

    def tls_started(self) -> None:
        """TLS is up (see :class:`TLSRequested`): VeNCrypt's authentication goes on inside it."""
        if self.phase is not Phase.TLS_PENDING:
            raise RuntimeError(f"tls_started() in phase {self.phase.name}")
        self.phase = Phase.AUTH
        self._advance()

    def reject_auth(self, reason: str = "Authentication failed") -> None:
        """Authentication failed: send SecurityResult failed (with the reason in 3.8) and close."""
        if self.phase is not Phase.AUTH_PENDING:
            raise RuntimeError(f"reject_auth() in phase {self.phase.name}")
        self._out.append(U32.pack(SecurityResult.FAILED))
        if self.version == (3, 8):
            self._out.append(_string(reason))
        self._close(f"authentication failed: {reason}", error=True)

    def send_server_init(self, width: int, height: int, name: str) -> None:
        """ServerInit (rfbproto 7.3.2): the framebuffer size, our native pixel format and the desktop name."""
        if self.phase is not Phase.SERVER_INIT_PENDING:
            raise RuntimeError(f"send_server_init() in phase {self.phase.name}")
        self.width, self.height = width, height
        data = name.encode("utf-8")
        self._out.append(SERVER_INIT.pack(width, height, NATIVE.pack(), len(data)) + data)
        self.phase = Phase.NORMAL
        self._advance()

    def close(self, reason: str) -> None:
        """Close the connection from our side (for example when another client takes over)."""
        if self.phase is not Phase.CLOSED:
            self._close(reason, error=False)

    # --- server messages (rfbproto 7.6) ----------------------------------------------------------------------

    def supports(self, encoding: int) -> bool:
        """Whether the client listed ``encoding`` in its last SetEncodings."""
        return encoding in self._encoding_set

    def take_request(self) -> tuple[Region, Region]:
        """Take the pending update request: (areas asked for non-incrementally, all areas asked for).

        Call this when an update is about to be sent in answer; requests that arrive afterwards start afresh.
        """
        full, area = self.full_request, self.request_area
        self.full_request, self.request_area = Region(), Region()
        self.empty_request = False
        return full, area

    def restore_request(self, full: Region, area: Region) -> None:
        """Put back a request taken with :meth:`take_request` that could not be answered."""
        self.full_request.update(full)
        self.request_area.update(area)

    @property
    def has_request(self) -> bool:
        """True when an update may be sent: a request is pending, or continuous updates are on."""
        return bool(self.request_area) or self.continuous or self.empty_request

    def update_area(self) -> Region:
        """Every area the client wants updates for now: its pending requests plus the continuous area."""
        area = self.request_area.copy()
        if self.continuous and self.continuous_area is not None:
            clipped = self.continuous_area.intersect(Rect(0, 0, self.width, self.height))
            if clipped is not None:
                area.add(clipped)
        return area

    def set_framebuffer_size(self, width: int, height: int) -> None:
        """Record that the client was told the framebuffer is now ``width`` × ``height``."""
        self.width, self.height = width, height

    def send_update(self, rects: list[bytes], count: int | None = None) -> None:
        """Queue a FramebufferUpdate of already-encoded rectangles (each starts with its 12-byte header).

        ``count`` is the number of rectangles when an element of ``rects`` holds several; over 65534
        rectangles need LastRect support from the client.
        """
        if self.phase is not Phase.NORMAL:
            return
        n = len(rects) if count is None else count
        if n > 0xFFFE:
            if not self.supports(Encoding.LAST_RECT):
                raise ValueError("more than 65534 rectangles need the LastRect pseudo-encoding")
            self._out.append(framebuffer_update_header(0xFFFF))
            self._out.extend(rects)
            self._out.append(last_rect())
            return
        self._out.append(framebuffer_update_header(n))
        self._out.extend(rects)

    def send_bell(self) -> None:
        """Bell (rfbproto 7.6.3)."""
        if self.phase is Phase.NORMAL:
            self._out.append(bell_message())

    def send_cut_text(self, text: str) -> None:
        """The server's clipboard changed to ``text``: tell the client.

        With Extended Clipboard the UTF-8 text is provided directly when the client accepts that much
        unsolicited, else announced with *notify* and provided on request; otherwise it goes as legacy
        Latin-1 ServerCutText (rfbproto 7.6.4).
        """
        self.clipboard_text = text
        if self.phase is not Phase.NORMAL:
            return
        if self.supports(Encoding.EXTENDED_CLIPBOARD):
            actions = self.client_clipboard_actions
            if not self.client_takes_text:
                return  # its caps list no text: it wants none
            if actions & clipboard.ACTION_PROVIDE and len(text.encode("utf-8")) + 1 <= self.client_text_limit:
                self._out.append(extended_cut_text_message(clipboard.provide_message(text)))
            elif actions & clipboard.ACTION_NOTIFY:
                self._out.append(extended_cut_text_message(clipboard.notify_message(True)))
        else:
            self._out.append(server_cut_text_message(text))

    def answer_fence(self) -> None:
        """Answer the client's pending fence requests (rfbproto 7.5.8), oldest first: call it once everything
        the client sent before them has taken effect, i.e. no update encoded under old state is still unsent."""
        if not self.pending_fences:
            return
        fences, self.pending_fences = self.pending_fences, []
        if self.phase is Phase.NORMAL:
            for flags, payload in fences:
                self._out.append(server_fence_message(flags & FENCE_SUPPORTED, payload))
            self._advance()

    def release_end_of_continuous(self) -> None:
        """The update that was being encoded is out: send the EndOfContinuousUpdates held back meanwhile."""
        self.hold_end_of_continuous = False
        for _ in range(self.end_of_continuous_pending):
            self._out.append(end_of_continuous_updates_message())
        self.end_of_continuous_pending = 0

    def send_fence(self, payload: bytes, flags: int = FENCE_BLOCK_BEFORE) -> None:
        """Send a fence request of our own; the client answers with the same payload (used for pacing)."""
        if self.phase is Phase.NORMAL and self.supports(Encoding.FENCE):
            self._out.append(server_fence_message(flags | FENCE_REQUEST, payload[:64]))

    # --- the parser ------------------------------------------------------------------------------------------

    def _advance(self) -> None:
        try:
            next(self._parser)
        except StopIteration:
            if self.phase is not Phase.CLOSED:  # pragma: no cover - the message loop never ends by itself
                self._close("protocol parser finished", error=True)
        except ProtocolError as exc:
            self._close(str(exc), error=True)

    def _close(self, reason: str, error: bool) -> None:
        self.phase = Phase.CLOSED
        self.close_reason = reason
        self._buf.clear()
        self._events.append(Closed(reason, error))

    def _read(self, n: int) -> Generator[None, None, bytes]:
        """Wait until ``n`` bytes are buffered and take them."""
        while len(self._buf) < n:
            yield
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _wait_for(self, condition: Callable[[], bool]) -> _Parser:
        while not condition():
            yield

    def _run(self) -> _Parser:
        yield from self._handshake()
        while self.phase is not Phase.CLOSED:
            sync = self._sync_fence
            yield from self._message()
            if sync is not None and self._sync_fence is sync:  # the message after a SyncNext fence is done
                self._sync_fence = None
                yield from self._fence_request(*sync)

    def _fence_request(self, flags: int, payload: bytes) -> _Parser:
        self.pending_fences.append((flags, payload))
        self._events.append(FenceReceived(flags, payload, True))
        if flags & FENCE_BLOCK_AFTER:
            # what follows must wait until the answer is sent
            yield from self._wait_for(lambda: not self.pending_fences)

    def _handshake(self) -> _Parser:
        # ProtocolVersion (rfbproto 7.1.1)
        raw = yield from self._read(12)
        m = _VERSION_RE.fullmatch(raw)
        if m is None:
            raise ProtocolError(f"invalid ProtocolVersion {raw[:12]!r}")
        version = negotiate_version(int(m.group(1)), int(m.group(2)))
        if version is None:
            raise ProtocolError(f"unsupported protocol version {raw.decode('ascii').strip()}")
        self.version = version
        self._events.append(VersionNegotiated(version))
        self.phase = Phase.SECURITY

        # Security (rfbproto 7.1.2)
        offered = self.settings.security_types
        refuse = self.settings.refuse_reason
        if refuse is not None:
            # "connection failed": zero security types (3.3: security type 0) and a reason string
            self._out.append(U32.pack(0) if version == (3, 3) else U8.pack(0))
            self._out.append(_string(refuse))
            self._close(f"refused: {refuse}", error=False)
            return
        if version == (3, 3):
            # RFB 3.3 has the server pick None or VNC Authentication; VeNCrypt needs a client's choice
            plain = [t for t in offered if t != SecurityType.VENCRYPT]
            if not plain:
                reason = "this server requires TLS (VeNCrypt), which RFB 3.3 cannot negotiate"
                self._out.append(U32.pack(0) + _string(reason))
                self._close(f"refused: {reason}", error=False)
                return
            chosen = plain[0]
            self._out.append(U32.pack(chosen))
        else:
            self._out.append(U8.pack(len(offered)) + bytes(offered))
            (chosen,) = yield from self._read(1)
            if chosen not in offered:
                self._out.append(U32.pack(SecurityResult.FAILED))
                if version == (3, 8):
                    self._out.append(_string("security type not offered"))
                raise ProtocolError(f"client chose security type {chosen}, which was not offered")
        self.security_type = chosen
        if chosen == SecurityType.VENCRYPT:
            chosen = yield from self._vencrypt()

        if chosen == SecurityType.VNC_AUTH:
            # VNC Authentication (rfbproto 7.2.2)
            self.phase = Phase.AUTH
            self._challenge = vncauth.make_challenge()
            self._out.append(self._challenge)
            response = yield from self._read(vncauth.CHALLENGE_SIZE)
            self._events.append(AuthRequested(chosen, self._challenge, response))
        else:
            self._events.append(AuthRequested(chosen, b"", b""))
        self.phase = Phase.AUTH_PENDING
        yield from self._wait_for(lambda: self.phase is not Phase.AUTH_PENDING)

        # ClientInit (rfbproto 7.3.1)
        (shared,) = yield from self._read(1)
        self.shared = bool(shared)
        self.phase = Phase.SERVER_INIT_PENDING
        self._events.append(ClientInitReceived(self.shared))
        yield from self._wait_for(lambda: self.phase is Phase.NORMAL)

    def _vencrypt(self) -> Generator[None, None, int]:
        """VeNCrypt 0.2 (rfbproto "VeNCrypt") up to TLS: versions, the subtype list and the client's choice, then
        :class:`TLSRequested` (the session sends the ack). Returns the security type of the authentication
        inside TLS."""
        self._out.append(bytes((0, 2)))
        major, minor = yield from self._read(2)
        if (major, minor) != (0, 2):
            self._out.append(U8.pack(1))  # not OK: the connection closes
            raise ProtocolError(f"VeNCrypt version {major}.{minor} not supported (0.2 only)")
        offered = self.settings.vencrypt_subtypes
        self._out.append(U8.pack(0) + U8.pack(len(offered)) + b"".join(U32.pack(t) for t in offered))
        (subtype,) = U32.unpack((yield from self._read(4)))
        if subtype not in offered:
            self._out.append(U8.pack(0))  # not one: the connection closes
            raise ProtocolError(f"client chose VeNCrypt subtype {subtype}, which was not offered")
        self.vencrypt_subtype = subtype
        if self._buf:
            # a client must wait for the ack before its TLS handshake: bytes already here are an early
            # ClientHello (which TLS would never see) or plaintext meant to pass as sent through TLS
            self._out.append(U8.pack(0))
            raise ProtocolError(f"{EARLY_TLS_BYTES} ({len(self._buf)} bytes)")
        self.phase = Phase.TLS_PENDING
        self._events.append(TLSRequested(subtype))
        yield from self._wait_for(lambda: self.phase is not Phase.TLS_PENDING)
        return SecurityType.VNC_AUTH if subtype == VeNCryptSubtype.X509_VNC else SecurityType.NONE

    def _message(self) -> _Parser:
        (mtype,) = yield from self._read(1)
        if mtype == ClientMessageType.SET_PIXEL_FORMAT:
            (raw,) = SET_PIXEL_FORMAT.unpack((yield from self._read(SET_PIXEL_FORMAT.size)))
            pf = PixelFormat.parse(raw)
            pf.validate()
            self.pixel_format = pf
            self.pixel_format_generation += 1
            if not pf.true_colour:
                # rfbproto 7.6.2: a colour-map client gets our fixed palette
                self._out.append(set_colour_map_entries_message())
            self._events.append(PixelFormatChanged(pf))
        elif mtype == ClientMessageType.SET_ENCODINGS:
            (count,) = struct.unpack(">xH", (yield from self._read(3)))
            if count > MAX_ENCODINGS:
                raise ProtocolError(f"SetEncodings lists {count} encodings (at most {MAX_ENCODINGS})")
            raw = yield from self._read(4 * count)
            encodings = struct.unpack(f">{count}i", raw)
            self.encodings = encodings
            self._encoding_set = frozenset(encodings)
            self._ever_listed.update(encodings)
            self._announce_extensions()
            self._events.append(EncodingsChanged(encodings))
        elif mtype == ClientMessageType.FRAMEBUFFER_UPDATE_REQUEST:
            inc, x, y, w, h = UPDATE_REQUEST.unpack((yield from self._read(UPDATE_REQUEST.size)))
            rect = Rect(x, y, w, h)
            clipped = rect.intersect(Rect(0, 0, self.width, self.height))
            # rfbproto 7.5.7: incremental requests are ignored while continuous updates are on
            if clipped is not None and not (inc and self.continuous):
                self.request_area.add(clipped)
                if not inc:
                    self.full_request.add(clipped)
            elif clipped is None and not self.continuous:
                # rfbproto: an empty area still solicits an update, of pseudo-rectangles only
                self.empty_request = True
            self._events.append(UpdateRequested(bool(inc), rect))
        elif mtype == ClientMessageType.KEY_EVENT:
            down, key = KEY_EVENT.unpack((yield from self._read(KEY_EVENT.size)))
            self._events.append(KeyEvent(bool(down), key & 0xFFFFFFFF))
        elif mtype == ClientMessageType.POINTER_EVENT:
            buttons, x, y = POINTER_EVENT.unpack((yield from self._read(POINTER_EVENT.size)))
            if buttons & 0x80 and self.supports(Encoding.EXTENDED_MOUSE_BUTTONS):
                # rfbproto: the marker bit announces an extra byte with buttons 8-15
                (extra,) = yield from self._read(1)
                buttons = (buttons & 0x7F) | (extra << 7)
            self._events.append(PointerEvent(buttons, x, y))
        elif mtype == ClientMessageType.CLIENT_CUT_TEXT:
            (length,) = CUT_TEXT.unpack((yield from self._read(CUT_TEXT.size)))
            if length < 0:
                if not self.supports(Encoding.EXTENDED_CLIPBOARD):
                    raise ProtocolError("ClientCutText with a negative length (extended clipboard not enabled)")
                yield from self._extended_cut_text(-length)
                return
            if length > self.settings.max_cut_text:
                # too long to accept: skip it in bounded chunks, never holding it in memory
                yield from self._skip(length)
                self._events.append(CutTextDiscarded(length))
            else:
                raw = yield from self._read(length)
                self._events.append(CutText(raw.decode("latin-1")))
        elif mtype == ENABLE_CONTINUOUS_UPDATES_TYPE and self._established(Encoding.CONTINUOUS_UPDATES):
            enable, x, y, w, h = UPDATE_REQUEST.unpack((yield from self._read(UPDATE_REQUEST.size)))
            rect = Rect(x, y, w, h)
            self.continuous = bool(enable)
            self.continuous_area = rect if enable else None
            if not enable:
                # rfbproto: the server has stopped sending continuous updates; an update being encoded
                # still goes first (release_end_of_continuous)
                if self.hold_end_of_continuous:
                    self.end_of_continuous_pending += 1
                else:
                    self._out.append(end_of_continuous_updates_message())
            self._events.append(ContinuousUpdatesChanged(bool(enable), rect))
        elif mtype == CLIENT_FENCE_TYPE and self._established(Encoding.FENCE):
            flags, length = struct.unpack(">3xIB", (yield from self._read(8)))
            if length > 64:
                raise ProtocolError(f"ClientFence with a {length}-byte payload (at most 64)")
            payload = yield from self._read(length)
            if flags & FENCE_REQUEST and self._sync_fence is not None:
                # a fence is the message after a SyncNext one: that one is due first, the order is kept
                waiting, self._sync_fence = self._sync_fence, None
                yield from self._fence_request(*waiting)
            if flags & FENCE_REQUEST and flags & FENCE_SYNC_NEXT:
                # rfbproto: the next message takes effect atomically with the answer: it is answered once
                # that message has been processed (see _run)
                self._sync_fence = (flags, payload)
            elif flags & FENCE_REQUEST:
                yield from self._fence_request(flags, payload)
            else:
                self._events.append(FenceReceived(flags, payload, False))
        elif mtype == QEMU_CLIENT_MESSAGE_TYPE and self._established(Encoding.QEMU_EXTENDED_KEY_EVENT):
            (sub,) = yield from self._read(1)
            if sub != 0:
                raise ProtocolError(f"unsupported QEMU client message subtype {sub}")
            down, keysym, keycode = struct.unpack(">HII", (yield from self._read(10)))
            self._events.append(QEMUKeyEvent(bool(down), keysym, keycode))
        elif mtype == SET_DESKTOP_SIZE_TYPE and self._established(Encoding.EXTENDED_DESKTOP_SIZE):
            w, h, n = SET_DESKTOP_SIZE.unpack((yield from self._read(SET_DESKTOP_SIZE.size)))
            screens = []
            for _ in range(n):
                sid, sx, sy, sw, sh, flags = SCREEN.unpack((yield from self._read(SCREEN.size)))
                screens.append(Screen(sid, sx, sy, sw, sh, flags))
            self._events.append(DesktopSizeRequested(w, h, tuple(screens)))
        else:
            raise ProtocolError(f"unknown client message type {mtype}")

    def _established(self, encoding: int) -> bool:
        """Whether the client may send the messages of the extension that ``encoding`` enables: rfbproto lets it
        once the server has shown support (a ServerFence, an EndOfContinuousUpdates, a confirming rectangle),
        which the client's listing the pseudo-encoding brought about; a later list without it does not take
        that back (a fence the server asked for must still be answered, continuous updates turned off)."""
        if encoding in (Encoding.FENCE, Encoding.CONTINUOUS_UPDATES):
            return encoding in self._announced
        return encoding in self._ever_listed

    def _announce_extensions(self) -> None:
        """First sight of some pseudo-encodings obliges the server to say it supports them."""
        if self.supports(Encoding.FENCE) and Encoding.FENCE not in self._announced:
            self._announced.add(Encoding.FENCE)
            self._out.append(server_fence_message(FENCE_REQUEST | FENCE_SUPPORTED, b""))
        if self.supports(Encoding.CONTINUOUS_UPDATES) and Encoding.CONTINUOUS_UPDATES not in self._announced:
            self._announced.add(Encoding.CONTINUOUS_UPDATES)
            self._out.append(end_of_continuous_updates_message())
        if self.supports(Encoding.EXTENDED_CLIPBOARD):
            # rfbproto: caps on every SetEncodings that lists Extended Clipboard
            self._out.append(extended_cut_text_message(clipboard.caps_message(self.settings.max_cut_text)))

    def _extended_cut_text(self, length: int) -> _Parser:
        limit = self.settings.max_cut_text + 1024
        if length > limit:
            yield from self._skip(length)
            self._events.append(CutTextDiscarded(length))
            return
        body = yield from self._read(length)
        try:
            msg = clipboard.parse(body, self.settings.max_cut_text)
        except clipboard.TextTooLong as exc:
            self._events.append(CutTextDiscarded(exc.size))
            return
        if msg.action == clipboard.ACTION_CAPS:
            text_ok = msg.formats & clipboard.FORMAT_TEXT
            self.client_text_limit = msg.sizes[0] if text_ok and msg.sizes else 0
            # rfbproto: the formats and actions the client is willing to receive
            self.client_takes_text = bool(text_ok)
            self.client_clipboard_actions = msg.accepts
        elif msg.action == clipboard.ACTION_REQUEST:
            if msg.formats & clipboard.FORMAT_TEXT and self.clipboard_text is not None:
                self._out.append(extended_cut_text_message(clipboard.provide_message(self.clipboard_text)))
        elif msg.action == clipboard.ACTION_PEEK:
            self._out.append(extended_cut_text_message(clipboard.notify_message(self.clipboard_text is not None)))
        elif msg.action == clipboard.ACTION_NOTIFY:
            if msg.formats & clipboard.FORMAT_TEXT and not self.view_only:
                self._out.append(extended_cut_text_message(clipboard.request_message()))
        elif msg.text is not None:  # provide
            self._events.append(CutText(msg.text))

    def _skip(self, length: int) -> _Parser:
        """Drop ``length`` bytes as they arrive, never holding them."""
        remaining = length
        while remaining:
            yield from self._wait_for(lambda: bool(self._buf))
            n = min(remaining, len(self._buf))
            del self._buf[:n]
            remaining -= n


def _string(text: str) -> bytes:
    """A U32 length followed by UTF-8 text, as reason strings are sent (rfbproto 7.1.2)."""
    data = text.encode("utf-8")
    return U32.pack(len(data)) + data
