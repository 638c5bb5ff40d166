"""``Session``: the asyncio driver of one client, over any :class:`~pyvnc.streams.Stream`.

A reader task feeds the client's bytes to the sans-I/O :class:`RFBServerProtocol` and acts on its events; an
updater task answers update requests from the frame hub, encoding in the server's executor. At most one encode
is in flight per session and the write buffer is drained after every update, so memory per client stays
bounded whatever the client does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
import struct
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

import numpy as np

from ._malloc import release_free_memory
from .capture.base import FrameArray, FrameSource
from .capture.cursor import (
    CursorImage,
    cursor_rect,
    cursor_with_alpha_rect,
    paint_cursor,
    painted_bounds,
    vmware_cursor_rect,
)
from .encoders.base import EncodeJob
from .encoders.select import STATELESS, EncoderSelector
from .hub import FrameHub, Subscription
from .pacing import Pacer
from .protocol.connection import EARLY_TLS_BYTES, Phase, ProtocolSettings, RFBServerProtocol
from .protocol.constants import (
    Encoding,
    ExtendedDesktopSizeReason,
    ExtendedDesktopSizeStatus,
    SecurityType,
    VeNCryptSubtype,
)
from .protocol.messages import (
    RECT_POSITION,
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
    desktop_name_rect,
    desktop_size_rect,
    empty_pseudo_rect,
    extended_desktop_size_rect,
    led_state_rect,
    rect_header,
)
from .protocol.pixelformat import converter_for, effective_format
from .protocol.security import vncauth
from .region import Rect, Region
from .streams import Stream, TLSStream

if TYPE_CHECKING:
    from .config import ServerConfig

log = logging.getLogger(__name__)

#: the delay before a failed authentication is answered, to slow down guessing
AUTH_FAILURE_DELAY = 1.0
#: how long a SetDesktopSize may take, the source's resize and the frame of the new size each
RESIZE_TIMEOUT = 5.0
#: a cursor to paint over an update: shape, pointer x and y, and its area on the frame
CursorOverlay = tuple[CursorImage, int, int, Rect]


def _moved(rect: bytes, dx: int, dy: int) -> bytes:
    """An encoded rectangle with its header's position moved by (dx, dy)."""
    x, y = RECT_POSITION.unpack_from(rect)
    return RECT_POSITION.pack(x + dx, y + dy) + rect[4:]


def _rect_encoding(rect: bytes) -> int:
    """The encoding number in the header of an encoded rectangle (rfbproto 7.6.1)."""
    (encoding,) = struct.unpack_from(">i", rect, 8)
    return int(encoding)


def _valid_layout(width: int, height: int, screens: tuple[Screen, ...]) -> bool:
    """A SetDesktopSize layout pyvnc can take: 1-255 screens of distinct ids, each non-empty and inside the
    framebuffer (rfbproto "Screen Model"; screens may overlap and need not cover it)."""
    ids = {s.id for s in screens}
    inside = all(s.width > 0 and s.height > 0 and s.x + s.width <= width and s.y + s.height <= height for s in screens)
    return width > 0 and height > 0 and 0 < len(screens) == len(ids) and inside


class Session:
    """One connected client."""

    def __init__(
        self,
        stream: Stream,
        *,
        config: ServerConfig,
        hub: FrameHub,
        source: FrameSource,
        executor: Executor,
        on_client_init: Callable[[Session, bool], str | None],
        refuse_reason: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.stream = stream
        self.peer = stream.peer
        self.config = config
        self.hub = hub
        self.source = source
        self.executor = executor
        self._on_client_init = on_client_init
        #: the server's TLS context for VeNCrypt (None: not offered on this connection)
        self._tls = tls
        #: the TLS version and cipher ("TLSv1.3 TLS_AES_256_GCM_SHA384") once VeNCrypt's TLS is up
        self.tls: str | None = None
        types, subtypes = self._security()
        self.protocol = RFBServerProtocol(
            ProtocolSettings(
                security_types=types,
                vencrypt_subtypes=subtypes,
                max_cut_text=config.max_cut_text,
                refuse_reason=refuse_reason,
            )
        )
        self.sub: Subscription | None = None
        self.shared = True
        self._wake = asyncio.Event()
        self._updater: asyncio.Task[None] | None = None
        self._established = asyncio.Event()
        self._held_keys: set[int] = set()
        self._buttons = 0
        self._pointer = (0, 0)
        #: the framebuffer size the client was last told (ServerInit, then size rectangles): all a client that
        #: cannot be told of a change keeps
        self._told_size = (0, 0)
        self._client_name = ""
        #: the LED state this client was last sent (None: not yet)
        self._leds_sent: int | None = None
        self._pending_pseudo: list[bytes] = []
        self.encoders = EncoderSelector(h264=config.h264)
        #: the last painted cursor rectangle of a stateless encoding, reused while neither the cursor nor the
        #: pixels under it nor the encoding settings change: (key, the pixels under it, encodings, rectangles)
        self._overlay_cache: tuple[tuple[object, ...], FrameArray, frozenset[int], list[bytes]] | None = None
        self.pacer = Pacer()
        #: True while an update is being encoded or written
        self._busy = False
        self._confirmed: set[int] = set()
        self._cursor_seq_sent = -1
        #: answers due to this client's SetDesktopSize requests, in request order: the status, and on success
        #: the hub's layout_seq it made and the size and screens asked for (answered with exactly those)
        self._answers: list[tuple[int, int, int, int, tuple[Screen, ...]]] = []
        #: SetDesktopSize requests are carried out one at a time, in order
        self._resize_lock = asyncio.Lock()
        self._resize_tasks: set[asyncio.Task[None]] = set()
        #: SetDesktopSize requests not yet carried out: fence requests after them wait (BlockBefore)
        self._resizes_pending = 0
        #: the size of the hub's frame the last update was made for (the client's may be smaller: see
        #: _pseudo_rects)
        self._hub_size_seen = (0, 0)
        #: the hub's layout last told to the client; a non-incremental request makes it told again
        self._layout_seq_sent = -1
        self._restate_layout = False
        #: a SetDesktopSize is resizing the source: no update until it is answered
        self._resizing = False
        self.updates_sent = 0
        self.bytes_sent = 0
        #: the encode running (or last run) in the pool
        self._encoding: concurrent.futures.Future[tuple[frozenset[int], list[bytes]]] | None = None
        self._closing_reason: str | None = None

    def _security(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The security types and VeNCrypt subtypes this connection offers: VNC Authentication when a
        password is set, else None; with TLS, VeNCrypt (the same inside TLS) first, or alone when
        ``rfb_tls = "require"``."""
        cfg = self.config
        password = cfg.password is not None or cfg.view_only_password is not None
        inner = SecurityType.VNC_AUTH if password else SecurityType.NONE
        if self._tls is None:
            return (inner,), ()
        subtype = VeNCryptSubtype.X509_VNC if password else VeNCryptSubtype.X509_NONE
        types = (SecurityType.VENCRYPT,) if cfg.rfb_tls == "require" else (SecurityType.VENCRYPT, inner)
        return types, (subtype,)

    @property
    def view_only(self) -> bool:
        return self.protocol.view_only

    @property
    def established(self) -> bool:
        """True once ServerInit was sent (the client is connected, past the handshake)."""
        return self._established.is_set()

    # --- the reader ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the client until it leaves or is closed; never raises for client misbehaviour."""
        log.info("%s: connected", self.peer)
        try:
            self._flush()
            async with asyncio.timeout(self.config.handshake_timeout):
                await self._handshake()
            if self.protocol.closed:
                return
            await self._read_loop()
        except TimeoutError:
            self._closing_reason = f"handshake not finished within {self.config.handshake_timeout:g} s"
        except (ConnectionError, OSError) as exc:
            self._closing_reason = f"connection error: {exc}"
        finally:
            await self._shutdown()

    async def _handshake(self) -> None:
        while not self._established.is_set() and not self.protocol.closed:
            if not await self._read_once():
                return

    async def _read_loop(self) -> None:
        while not self.protocol.closed:
            if not await self._read_once():
                return

    async def _read_once(self) -> bool:
        data = await self.stream.read()
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        await self._handle_events()
        self._flush()
        return bool(data)

    async def _handle_events(self) -> None:
        # answering an event (accept_auth, send_server_init) can let the protocol parse data it already
        # buffered, producing more events: loop until there are none
        while events := self.protocol.events_received():
            for event in events:
                await self._handle(event)

    async def _handle(self, event: Event) -> None:
        proto = self.protocol
        if isinstance(event, AuthRequested):
            await self._authenticate(event)
        elif isinstance(event, TLSRequested):
            await self._start_tls()
        elif isinstance(event, ClientInitReceived):
            refusal = self._on_client_init(self, event.shared)
            if refusal is not None:
                proto.close(refusal)
                self._closing_reason = refusal
                return
            width, height = self.hub.size
            self._told_size = self._hub_size_seen = (width, height)
            self._client_name = self.hub.name
            proto.send_server_init(width, height, self.hub.name)
            self.sub = self.hub.subscribe()
            self._sync_subscription()
            self.sub.on_clipboard = self.send_clipboard
            self.sub.on_bell = self.send_bell
            self._established.set()
            self._updater = asyncio.create_task(self._update_loop(), name=f"pyvnc-update-{self.peer}")
        elif isinstance(event, EncodingsChanged):
            levels = (self.encoders.quality, self.encoders.compress)
            self.encoders.configure(event.encodings)
            video = self.encoders.encoding_for(effective_format(proto.pixel_format)) == Encoding.OPEN_H264
            if video and self.sub is not None and levels != (self.encoders.quality, self.encoders.compress):
                # new levels restart the video: send the whole screen at once, not just what changes next
                # (a still screen would otherwise keep the old quality for good)
                self.sub.damage.add(Rect(0, 0, proto.width, proto.height))
                self.sub.changed.set()
            self._confirm_extensions()
            self._cursor_seq_sent = -1  # (re)send the shape in whichever cursor encoding is now preferred
            self._sync_subscription()
            if not proto.supports(Encoding.FENCE):
                self.pacer.reset()
        elif isinstance(event, ContinuousUpdatesChanged):
            if self.sub is not None:
                self.sub.wants = event.enabled or proto.has_request
            self._wake.set()
        elif isinstance(event, FenceReceived):
            if event.request:
                if not self._busy and not self._resizes_pending:
                    proto.answer_fence()  # else the updater (or the resize) answers once it is done
            elif len(event.payload) == 4:
                (seq,) = struct.unpack(">I", event.payload)
                if self.pacer.acknowledged(seq, asyncio.get_running_loop().time()):
                    self._wake.set()
        elif isinstance(event, QEMUKeyEvent):
            if not self.view_only:
                if event.down:
                    self._held_keys.add(event.keysym)
                else:
                    self._held_keys.discard(event.keysym)
                scancode_event = getattr(self.source, "scancode_event", None)
                if callable(scancode_event):
                    scancode_event(event.keycode, event.keysym, event.down)
                else:
                    self.source.key_event(event.keysym, event.down)
        elif isinstance(event, UpdateRequested | PixelFormatChanged):
            if isinstance(event, UpdateRequested) and self.sub is not None:
                self.sub.wants = True
            if isinstance(event, UpdateRequested) and not event.incremental:
                # rfbproto: a non-incremental request is answered with the layout too (the client has no
                # other way to ask for it); like any layout, in an update of its own
                self._restate_layout = proto.supports(Encoding.EXTENDED_DESKTOP_SIZE)
            self._wake.set()
        elif isinstance(event, KeyEvent):
            if not self.view_only:
                if event.down:
                    self._held_keys.add(event.keysym)
                else:
                    self._held_keys.discard(event.keysym)
                self.source.key_event(event.keysym, event.down)
        elif isinstance(event, PointerEvent):
            if not self.view_only:
                self._buttons = event.buttons
                self._pointer = (event.x, event.y)
                self.source.pointer_event(event.x, event.y, event.buttons)
        elif isinstance(event, CutText):
            if not self.view_only:
                self.source.cut_text(event.text)
        elif isinstance(event, CutTextDiscarded):
            log.warning(
                "%s: ignored clipboard text of %d bytes (limit max_cut_text = %d)",
                self.peer,
                event.length,
                self.config.max_cut_text,
            )
        elif isinstance(event, DesktopSizeRequested):
            if not proto.supports(Encoding.EXTENDED_DESKTOP_SIZE):
                # allowed once the extension was established, but the client no longer lists it: its answer
                # (an ExtendedDesktopSize rectangle) cannot be sent
                log.info("%s: SetDesktopSize ignored: ExtendedDesktopSize is no longer in its encodings", self.peer)
                return
            self._resizes_pending += 1
            task = asyncio.create_task(self._resize_desktop(event))
            self._resize_tasks.add(task)
            task.add_done_callback(self._resize_tasks.discard)
        elif isinstance(event, Closed):
            if event.error:
                log.warning("%s: closing: %s", self.peer, event.reason)
            self._closing_reason = event.reason
            self._wake.set()

    async def _start_tls(self) -> None:
        """VeNCrypt: send the ack, then the TLS handshake as the server; the handshake timeout covers it."""
        stream, proto = self.stream, self.protocol
        assert self._tls is not None and isinstance(stream, TLSStream)
        stream.pause_reading()  # the client's first TLS bytes must wait in the socket for TLS
        if stream.buffered():
            # read before the pause: an early ClientHello, or plaintext meant to pass as sent through TLS
            reason = f"{EARLY_TLS_BYTES} ({stream.buffered()} bytes)"
            log.warning("%s: %s", self.peer, reason)
            self._closing_reason = reason
            proto.refuse_tls(reason)
            return
        proto.accept_tls()
        self._flush()
        try:
            self.tls = await stream.start_tls(self._tls)
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            if proto.closed:  # cut short by our own close (server shutdown, a takeover): its reason stands
                return
            reason = f"TLS handshake failed: {str(exc) or type(exc).__name__}"
            log.warning("%s: %s", self.peer, reason)
            self._closing_reason = reason
            proto.close(reason)
            return
        if proto.closed:  # closed (server shutdown, a takeover) while the handshake ran
            return
        log.info("%s: TLS started (%s)", self.peer, self.tls)
        proto.tls_started()

    async def _authenticate(self, event: AuthRequested) -> None:
        proto = self.protocol
        if event.security_type == SecurityType.NONE:
            proto.accept_auth()
            return
        cfg = self.config
        if vncauth.check_response(cfg.password, event.challenge, event.response):
            log.info("%s: authenticated", self.peer)
            proto.accept_auth(view_only=False)
        elif vncauth.check_response(cfg.view_only_password, event.challenge, event.response):
            log.info("%s: authenticated (view-only)", self.peer)
            proto.accept_auth(view_only=True)
        else:
            log.warning("%s: authentication failed", self.peer)
            await asyncio.sleep(AUTH_FAILURE_DELAY)
            proto.reject_auth("Authentication failed")

    def _flush(self) -> None:
        chunks = self.protocol.data_chunks_to_send()
        if chunks:
            self.stream.writelines(chunks)

    # --- the updater ---------------------------------------------------------------------------------------

    async def _update_loop(self) -> None:
        try:
            await self._update_loop_inner()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError) as exc:  # the client went away while an update was being written
            log.debug("%s: connection lost while updating: %s", self.peer, exc)
            self.close("connection lost")
        except Exception as exc:  # an encoder bug must not leave a half-dead session behind
            log.exception("%s: update failed", self.peer)
            self.close(f"internal error while updating: {exc}")

    async def _update_loop_inner(self) -> None:
        sub = self.sub
        assert sub is not None
        proto = self.protocol
        while not proto.closed:
            if not (sub.changed.is_set() or self._wake.is_set()):
                waiters = [asyncio.ensure_future(sub.changed.wait()), asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
            sub.changed.clear()
            self._wake.clear()
            if proto.closed or not proto.has_request or (self._resizing and not self._answers):
                continue
            if not self.pacer.can_send():
                continue  # too much in flight: a fence coming back wakes us
            pseudo, sizes = self._pseudo_rects()
            if sizes:
                # rfbproto (DesktopSize, ExtendedDesktopSize): the update that changes the framebuffer's size
                # or states its layout carries no framebuffer data, and its size rectangles come last (early
                # DesktopSize clients need that); the data answers the next request (with continuous updates,
                # comes next), as TigerVNC's server does it. What was asked for in full stays asked for.
                full, _requested = proto.take_request()
                proto.restore_request(full, Region())
                sub.wants = proto.continuous
                await self._send_update(pseudo + sizes)
                await self._answer_fence()
                self._wake.set()
                continue
            area = proto.update_area()
            to_send = proto.full_request.copy()
            for r in area:
                to_send.update(sub.damage.intersect(r))
            copy_rects: list[bytes] = []
            copy, sub.pending_copy = sub.pending_copy, None
            pixel_format = effective_format(proto.pixel_format)
            video = self.encoders.encoding_for(pixel_format) == Encoding.OPEN_H264
            if copy is not None:
                if (
                    any(r.contains(copy.dst) for r in area)
                    and not proto.full_request.intersects(copy.dst)
                    and not video  # the next H.264 frame redraws the whole screen from the client's decoder
                ):
                    # rfbproto 7.7.2: first in the update, so it reads the client's pixels before others land
                    copy_rects.append(
                        rect_header(*copy.dst, Encoding.COPY_RECT) + struct.pack(">HH", copy.src_x, copy.src_y)
                    )
                else:
                    to_send.add(copy.dst)
            # nothing outside the framebuffer the client knows (a moved area's target may be, after the screen
            # grew for a client that cannot be told) nor outside the frame
            hub_w, hub_h = self.hub.size
            to_send = to_send.intersect(Rect(0, 0, min(proto.width, hub_w), min(proto.height, hub_h)))
            if not to_send and not pseudo and not copy_rects:
                # wait for the source to change something we were asked for (an empty request asks for no
                # pixels: only pseudo-rectangles answer it)
                sub.wants = bool(proto.request_area) or proto.continuous
                continue
            full, requested = proto.take_request()
            sub.wants = proto.continuous
            for r in area:
                sub.damage.subtract(r)
            generation = proto.pixel_format_generation
            frame = self.hub.frame
            if video:
                # the video's one rectangle is its frame: never beyond the framebuffer the client was told of
                frame = frame[: proto.height, : proto.width]
            # a video frame repaints the whole screen, the cursor's place too: the cursor goes over every one
            overlay = self._cursor_overlay(frame, to_send, video) if sub.paints_cursor else None
            if overlay is not None and self.encoders.encoding_for(pixel_format) == Encoding.RAW:
                # Raw would send the cursor's area twice, byte for byte: leave it to the cursor's rectangle
                # (compressing encodings shrink the repeat to little, and a hole would cut up their tiles)
                to_send = to_send.copy()
                to_send.subtract(overlay[3])
            job = EncodeJob(frame=frame, rects=tuple(to_send), pixel_format=pixel_format)
            self._busy = True
            proto.hold_end_of_continuous = True  # it must not overtake this update
            try:
                # the pool's own future is kept: cancelling the updater does not stop a running encode, and
                # the session's end waits for it (asyncio's wrapper would just be cancelled)
                self._encoding = self.executor.submit(self._encode, job, overlay, video)
                encodings, encoded = await asyncio.wrap_future(self._encoding)
                if proto.closed:
                    break
                if generation != proto.pixel_format_generation and self.encoders.discard(encodings):
                    # the client changed its pixel format mid-encode: the result is useless, send it all again:
                    # its requests in full, and what continuous updates covered as damage (sent while they
                    # stay on; once the client turned them off, only a request of its own is answered)
                    again = Region(requested)
                    again.update(full)
                    proto.restore_request(again, again)
                    sub.damage.update(area)
                    # a Cursor rectangle is in the old pixel format: made anew; the others do not depend on it
                    kept = [r for r in pseudo if _rect_encoding(r) != Encoding.CURSOR]
                    self._pending_pseudo[:0] = kept
                    if len(kept) < len(pseudo):
                        self._cursor_seq_sent = -1
                    if copy_rects and copy is not None:
                        sub.damage.add(copy.dst)
                    self._wake.set()
                else:
                    await self._send_update(pseudo + copy_rects + encoded)
            finally:
                self._busy = False
            await self._after_update()

    async def _send_update(self, rects: list[bytes]) -> None:
        """Send one FramebufferUpdate (and, with fences, the fence that paces the next)."""
        proto = self.protocol
        proto.send_update(rects)
        nbytes = sum(len(r) for r in rects) + 4
        self.updates_sent += 1
        self.bytes_sent += nbytes
        if proto.supports(Encoding.FENCE):
            seq = self.pacer.sent(nbytes, asyncio.get_running_loop().time())
            proto.send_fence(struct.pack(">I", seq))
        self._flush()
        await self.stream.drain()

    async def _answer_fence(self) -> None:
        proto = self.protocol
        if proto.pending_fences and not self._resizes_pending:
            proto.answer_fence()
            await self._handle_events()
            self._flush()

    async def _after_update(self) -> None:
        """What waited for the update that was being encoded (sent or thrown away): EndOfContinuousUpdates,
        then the answers to fence requests."""
        self.protocol.release_end_of_continuous()
        self._flush()
        await self._answer_fence()

    def _cursor_overlay(self, frame: FrameArray, to_send: Region, always: bool = False) -> CursorOverlay | None:
        """For a client that draws no cursor: the cursor to paint over this update, when it is on the frame
        and the update touches its area (``always``: whenever it is on the frame), as (shape, pointer x,
        pointer y, its area on the frame)."""
        cursor, pointer = self.hub.cursor, self.hub.pointer
        if cursor is None or pointer is None:
            return None
        area = painted_bounds(cursor, pointer[0], pointer[1], frame.shape[1], frame.shape[0])
        if area is None or not (always or to_send.intersects(area)):
            return None
        return cursor, pointer[0], pointer[1], area

    def _encode(
        self, job: EncodeJob, overlay: CursorOverlay | None, video: bool = False
    ) -> tuple[frozenset[int], list[bytes]]:
        """Encode an update (in a worker thread). With ``overlay``, the frame is encoded as it is and the
        cursor's area, painted, follows as the update's last rectangle, over the rest (as TigerVNC sends a
        rendered cursor): no frame-sized copy is made, and the pointer changes neither how the content is
        classified nor how well it compresses. ``video``: the update was made for H.264 (decided once, on the
        event loop, so that a SetEncodings meanwhile cannot make the encode disagree with the cropping and the
        cursor's place in it)."""
        encodings, out = self.encoders.encode(job, video=video)
        if overlay is None:
            return encodings, out
        cursor, x, y, area = overlay
        under = job.frame[area.y : area.bottom, area.x : area.right]
        sel = self.encoders
        key = (cursor, x, y, area, job.pixel_format, sel.preferences, sel.quality, sel.compress)
        cached = self._overlay_cache
        if cached is not None and cached[0] == key and np.array_equal(cached[1], under):
            more, items = cached[2], cached[3]  # a full refresh of a still screen: the same cursor rectangle
        else:
            patch = paint_cursor(under, cursor, x - area.x, y - area.y)
            # never as H.264: the patch would open a video context of its own wherever the pointer goes
            more, items = sel.encode(EncodeJob(patch, (Rect(0, 0, area.w, area.h),), job.pixel_format), patch=True)
            # only stateless encodings give the same bytes again; a compression stream has moved on
            self._overlay_cache = (key, under.copy(), more, items) if more <= STATELESS else None
        return encodings | more, out + [_moved(item, area.x, area.y) for item in items]

    def _pseudo_rects(self) -> tuple[list[bytes], list[bytes]]:
        """Pseudo-rectangles due in the next update: (cursor, name, LED and extension rectangles; the size
        changes, layouts and SetDesktopSize replies, which must go in an update without framebuffer data)."""
        proto = self.protocol
        # rectangles queued for an encoding the client has since dropped from its list are not sent
        out = [r for r in self._pending_pseudo if proto.supports(_rect_encoding(r))]
        self._pending_pseudo = []
        sizes: list[bytes] = []
        size = self.hub.size
        extended = proto.supports(Encoding.EXTENDED_DESKTOP_SIZE)
        if extended and (self._answers or self._restate_layout or self.hub.layout_seq != self._layout_seq_sent):
            sizes.extend(self._layout_rects())
        # a new size, or a client that can be told of it again after it could not for a while
        resizable = extended or proto.supports(Encoding.DESKTOP_SIZE)
        if size != self._hub_size_seen or (resizable and size != self._told_size):
            self._hub_size_seen = size
            w, h = size
            if not extended and proto.supports(Encoding.DESKTOP_SIZE):
                sizes.append(desktop_size_rect(w, h))
            elif not extended:
                # the client cannot be told: keep sending the part of the new frame that fits the framebuffer
                # it was last told of (rfbproto: no update may reach outside it)
                w = min(w, self._told_size[0])
                h = min(h, self._told_size[1])
            proto.set_framebuffer_size(w, h)
            whole = Rect(0, 0, w, h)
            # the client's old request areas are in the old geometry: answer with the whole new screen
            proto.full_request.clear()
            proto.request_area.clear()
            proto.full_request.add(whole)
            proto.request_area.add(whole)
            if proto.continuous:
                proto.continuous_area = whole
        if sizes:
            self._told_size = size  # the last size rectangle always carries the size now
        cursor_encoding = self._cursor_encoding()
        if cursor_encoding is not None and self.hub.cursor_seq != self._cursor_seq_sent:
            self._cursor_seq_sent = self.hub.cursor_seq
            cursor = self.hub.cursor
            if cursor is not None:
                if cursor_encoding == Encoding.CURSOR_WITH_ALPHA:
                    out.append(cursor_with_alpha_rect(cursor))
                elif cursor_encoding == Encoding.VMWARE_CURSOR:
                    out.append(vmware_cursor_rect(cursor))
                else:
                    out.append(cursor_rect(cursor, converter_for(effective_format(proto.pixel_format))))
        leds = self._led_state()
        if leds is not None and leds != self._leds_sent and proto.supports(Encoding.QEMU_LED_STATE):
            out.append(led_state_rect(leds))
            self._leds_sent = leds
        if self.hub.name != self._client_name and proto.supports(Encoding.DESKTOP_NAME):
            out.append(desktop_name_rect(self.hub.name))
            self._client_name = self.hub.name
        return out, sizes

    def _layout_rects(self) -> list[bytes]:
        """ExtendedDesktopSize rectangles telling the client the hub's layout: the answers to its
        SetDesktopSize requests first, in order (a success with exactly what it asked for; a refusal with its
        status and the layout as it is now), then the layout now, by whoever set it, unless the last answer
        was it. libvncclient takes the size of every such rectangle, so the last one is always the size now."""
        hub = self.hub
        ok = ExtendedDesktopSizeStatus.NO_ERROR
        this_client = ExtendedDesktopSizeReason.THIS_CLIENT
        w, h = hub.size
        out: list[bytes] = []
        told = self._layout_seq_sent  # the layout the client is left with
        answers, self._answers = self._answers, []
        for status, seq, aw, ah, screens in answers:
            if status == ok:
                out.append(extended_desktop_size_rect(this_client, ok, aw, ah, screens))
                told = seq
            else:
                out.append(extended_desktop_size_rect(this_client, status, w, h, hub.screens))
        if self._restate_layout or told != hub.layout_seq:
            if self._restate_layout or hub.layout_owner is None or hub.layout_owner is self:
                reason = ExtendedDesktopSizeReason.SERVER
            else:
                reason = ExtendedDesktopSizeReason.OTHER_CLIENT
            out.append(extended_desktop_size_rect(reason, ok, w, h, hub.screens))
        self._layout_seq_sent = hub.layout_seq
        self._restate_layout = False
        return out

    async def _resize_desktop(self, event: DesktopSizeRequested) -> None:
        """SetDesktopSize (rfbproto 7.5.9): take the client's layout, resizing the source first if the size
        changes and the source can. Requests are carried out one at a time and answered in order by the
        updater (see :meth:`_layout_rects`); other clients get a new layout with reason "another client"."""
        try:
            async with self._resize_lock:
                await self._apply_layout(event.width, event.height, event.screens)
        finally:
            self._resizes_pending -= 1
        self._wake.set()
        if not self._busy:
            await self._answer_fence()  # fences sent after the requests waited for them to take effect

    async def _apply_layout(self, w: int, h: int, screens: tuple[Screen, ...]) -> None:
        """Carry out one SetDesktopSize and queue its answer."""
        status: int = ExtendedDesktopSizeStatus.PROHIBITED
        overtaken = False
        resize = getattr(self.source, "set_desktop_size", None)
        if self.view_only:
            log.info("%s: view-only client may not resize the desktop", self.peer)
        elif not _valid_layout(w, h, screens):
            status = ExtendedDesktopSizeStatus.INVALID_LAYOUT
        elif (w, h) == self.hub.size:
            status = ExtendedDesktopSizeStatus.NO_ERROR  # the screens only
        elif callable(resize):
            # no update goes out meanwhile: the new frame's size is told with the answer
            self._resizing = True
            self.hub.expect_layout((w, h), screens, self)
            try:
                status, overtaken = await self._resize_source(resize, w, h)
            finally:
                self.hub.forget_layout(self)
                self._resizing = False
        if status == ExtendedDesktopSizeStatus.NO_ERROR and overtaken:
            # done, and another client's size came at once: the answer, then the layout now (seq -1)
            self._answers.append((status, -1, w, h, screens))
        elif status == ExtendedDesktopSizeStatus.NO_ERROR:
            if self.hub.layout_owner is not self or self.hub.screens != screens:
                self.hub.set_layout(screens, self)  # the other sessions tell their clients: "another client"
            self._answers.append((status, self.hub.layout_seq, w, h, screens))
        else:
            self._answers.append((status, -1, 0, 0, ()))

    async def _resize_source(self, resize: Callable[[int, int], Awaitable[int]], w: int, h: int) -> tuple[int, bool]:
        """Have the source take w × h and wait, a bounded time, for its frame of a new size: the status, and
        whether another client's size overtook this one."""
        before = self.hub.size
        try:
            async with asyncio.timeout(RESIZE_TIMEOUT):
                status = int(await resize(w, h))
                while status == ExtendedDesktopSizeStatus.NO_ERROR and self.hub.size == before:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            log.warning("%s: the desktop did not resize to %dx%d in %.0f s", self.peer, w, h, RESIZE_TIMEOUT)
            return ExtendedDesktopSizeStatus.OUT_OF_RESOURCES, False
        except Exception as exc:  # a source's bug must not leave the request unanswered
            log.warning("%s: resizing the desktop to %dx%d failed: %s", self.peer, w, h, exc)
            return ExtendedDesktopSizeStatus.OUT_OF_RESOURCES, False
        if status != ExtendedDesktopSizeStatus.NO_ERROR or self.hub.size == (w, h):
            return status, False
        if self.hub.layout_owner not in (None, self):
            return ExtendedDesktopSizeStatus.NO_ERROR, True
        return ExtendedDesktopSizeStatus.INVALID_LAYOUT, False  # the source took another size

    def _sync_subscription(self) -> None:
        """Tell the hub what this client draws itself (cursor) and takes (CopyRect)."""
        if self.sub is None:
            return
        paints = self._cursor_encoding() is None
        if paints != self.sub.paints_cursor:
            # the client's picture has the cursor painted in and now draws its own, or the other way round:
            # the cursor's area goes again, bare or painted
            area = self.hub.cursor_area()
            if area is not None:
                self.sub.damage.add(area)
                self.sub.changed.set()
        self.sub.paints_cursor = paints
        # a painted-in cursor would be copied along with the content, so such clients get no copies
        self.sub.accepts_copies = self.protocol.supports(Encoding.COPY_RECT) and not self.sub.paints_cursor
        if not self.sub.accepts_copies and self.sub.pending_copy is not None:
            self.sub.damage.add(self.sub.pending_copy.dst)
            self.sub.pending_copy = None

    def _cursor_encoding(self) -> int | None:
        """The cursor pseudo-encoding this client prefers (rfbproto 7.8.1 and after), or None: paint it in."""
        for enc in self.protocol.encodings:
            if enc in (Encoding.CURSOR_WITH_ALPHA, Encoding.CURSOR, Encoding.VMWARE_CURSOR):
                return enc
        return None

    def _confirm_extensions(self) -> None:
        """Pseudo-encodings the server confirms with a pseudo-rectangle in the next update (again after the
        client dropped one from its list and lists it anew)."""
        proto = self.protocol
        self._confirmed = {enc for enc in self._confirmed if proto.supports(enc)}
        for enc in (Encoding.QEMU_EXTENDED_KEY_EVENT, Encoding.EXTENDED_MOUSE_BUTTONS):
            if proto.supports(enc) and enc not in self._confirmed:
                self._confirmed.add(enc)
                self._pending_pseudo.append(empty_pseudo_rect(enc))
        if proto.supports(Encoding.EXTENDED_DESKTOP_SIZE) and Encoding.EXTENDED_DESKTOP_SIZE not in self._confirmed:
            # rfbproto 7.8.10: the current size and layout go out in the first update after the client said it
            # understands ExtendedDesktopSize; that is also how it learns SetDesktopSize is supported
            self._confirmed.add(Encoding.EXTENDED_DESKTOP_SIZE)
            self._restate_layout = True
        # (re)state the keyboard LEDs in the next update to a client that asks for them
        self._leds_sent = None
        self._wake.set()

    def _led_state(self) -> int | None:
        """The keyboard LEDs: the latest change the source reported, else what it says now (None: unknown)."""
        if self.hub.led_state is not None:
            return self.hub.led_state
        led_state = getattr(self.source, "led_state", None)
        state = led_state() if callable(led_state) else None
        return state if isinstance(state, int) else None

    def send_clipboard(self, text: str) -> None:
        """The desktop's clipboard changed: pass it on (view-only clients may read it too)."""
        self.protocol.send_cut_text(text)
        self._flush()

    def send_bell(self) -> None:
        self.protocol.send_bell()
        self._flush()

    # --- shutdown ------------------------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Close this session from the server side (shutdown, another client took over)."""
        if self._closing_reason is None:
            self._closing_reason = reason
        self.protocol.close(reason)
        self._flush()
        self.stream.close()
        self._wake.set()

    async def _shutdown(self) -> None:
        if self.protocol.phase is not Phase.CLOSED:
            self.protocol.close(self._closing_reason or "closed")
        self._flush()
        if self._updater is not None:
            self._updater.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._updater
        for task in list(self._resize_tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.sub is not None:
            self.sub.close()
        if not self.view_only:
            self._release_input()
        if self._encoding is not None and not self._encoding.done():
            # an encode the cancelled updater left running in the pool still holds its encoder
            with contextlib.suppress(Exception):
                await asyncio.wait([asyncio.wrap_future(self._encoding)], timeout=2.0)
        if self.encoders.close():
            # an H.264 encoder (tens of MB) was freed in a worker thread's arena, which glibc keeps otherwise
            await asyncio.to_thread(release_free_memory)
        self.stream.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.stream.wait_closed()
        reason = self._closing_reason or self.protocol.close_reason or "closed"
        log.info("%s: disconnected (%s)", self.peer, reason)

    def _release_input(self) -> None:
        """Release keys and buttons the client still held, so nothing stays stuck on the desktop."""
        for keysym in sorted(self._held_keys):
            self.source.key_event(keysym, False)
        self._held_keys.clear()
        if self._buttons:
            self.source.pointer_event(*self._pointer, 0)
            self._buttons = 0
