"""``Session``: the asyncio driver of one client, over any :class:`~pyvnc.streams.Stream`.

A reader task feeds the client's bytes to the sans-I/O :class:`RFBServerProtocol` and acts on its events; an
updater task answers update requests from the frame hub, encoding in the server's executor. At most one encode
is in flight per session and the write buffer is drained after every update, so memory per client stays
bounded whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from .capture.base import FrameSource
from .encoders.base import EncodeJob
from .encoders.select import EncoderSelector
from .hub import FrameHub, Subscription
from .protocol.connection import Phase, ProtocolSettings, RFBServerProtocol
from .protocol.constants import Encoding, ExtendedDesktopSizeReason, ExtendedDesktopSizeStatus, SecurityType
from .protocol.messages import (
    AuthRequested,
    ClientInitReceived,
    Closed,
    CutText,
    CutTextDiscarded,
    DesktopSizeRequested,
    EncodingsChanged,
    Event,
    KeyEvent,
    PixelFormatChanged,
    PointerEvent,
    Screen,
    UpdateRequested,
    desktop_name_rect,
    desktop_size_rect,
    extended_desktop_size_rect,
)
from .protocol.pixelformat import effective_format
from .protocol.security import vncauth
from .region import Rect, Region
from .streams import Stream

if TYPE_CHECKING:
    from .config import ServerConfig

log = logging.getLogger(__name__)

#: the delay before a failed authentication is answered, to slow down guessing
AUTH_FAILURE_DELAY = 1.0


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
    ) -> None:
        self.stream = stream
        self.peer = stream.peer
        self.config = config
        self.hub = hub
        self.source = source
        self.executor = executor
        self._on_client_init = on_client_init
        if config.password is not None or config.view_only_password is not None:
            security: tuple[int, ...] = (SecurityType.VNC_AUTH,)
        else:
            security = (SecurityType.NONE,)
        self.protocol = RFBServerProtocol(
            ProtocolSettings(security_types=security, max_cut_text=config.max_cut_text, refuse_reason=refuse_reason)
        )
        self.sub: Subscription | None = None
        self.shared = True
        self._wake = asyncio.Event()
        self._updater: asyncio.Task[None] | None = None
        self._established = asyncio.Event()
        self._held_keys: set[int] = set()
        self._buttons = 0
        self._pointer = (0, 0)
        self._client_size = (0, 0)
        self._client_name = ""
        self._pending_pseudo: list[bytes] = []
        self.encoders = EncoderSelector()
        self._closing_reason: str | None = None

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
            await asyncio.wait_for(self._handshake(), self.config.handshake_timeout)
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
        elif isinstance(event, ClientInitReceived):
            refusal = self._on_client_init(self, event.shared)
            if refusal is not None:
                proto.close(refusal)
                self._closing_reason = refusal
                return
            width, height = self.hub.size
            self._client_size = (width, height)
            self._client_name = self.hub.name
            proto.send_server_init(width, height, self.hub.name)
            self.sub = self.hub.subscribe()
            self._established.set()
            self._updater = asyncio.create_task(self._update_loop(), name=f"pyvnc-update-{self.peer}")
        elif isinstance(event, EncodingsChanged):
            self.encoders.configure(event.encodings)
        elif isinstance(event, UpdateRequested | PixelFormatChanged):
            if isinstance(event, UpdateRequested) and self.sub is not None:
                self.sub.wants = True
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
            # rfbproto 7.5.9: answer with an ExtendedDesktopSize rectangle, reason "this client"
            w, h = self.hub.size
            self._pending_pseudo.append(
                extended_desktop_size_rect(
                    ExtendedDesktopSizeReason.THIS_CLIENT,
                    ExtendedDesktopSizeStatus.PROHIBITED,
                    w,
                    h,
                    (Screen(0, 0, 0, w, h),),
                )
            )
            self._wake.set()
        elif isinstance(event, Closed):
            if event.error:
                log.warning("%s: closing: %s", self.peer, event.reason)
            self._closing_reason = event.reason
            self._wake.set()

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
        data = self.protocol.data_to_send()
        if data:
            self.stream.write(data)

    # --- the updater ---------------------------------------------------------------------------------------

    async def _update_loop(self) -> None:
        try:
            await self._update_loop_inner()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an encoder bug must not leave a half-dead session behind
            log.exception("%s: update failed", self.peer)
            self.close(f"internal error while updating: {exc}")

    async def _update_loop_inner(self) -> None:
        sub = self.sub
        assert sub is not None
        loop = asyncio.get_running_loop()
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
            if proto.closed or not proto.has_request:
                continue
            pseudo = self._pseudo_rects()
            full, area = proto.full_request, proto.request_area
            to_send = full.copy()
            for r in area:
                to_send.update(sub.damage.intersect(r))
            if not to_send and not pseudo:
                sub.wants = True  # wait for the source to change something we were asked for
                continue
            full, area = proto.take_request()
            sub.wants = False
            for r in area:
                sub.damage.subtract(r)
            generation = proto.pixel_format_generation
            job = EncodeJob(
                frame=self.hub.frame,
                rects=tuple(to_send),
                pixel_format=effective_format(proto.pixel_format),
            )
            encoding, encoded = await loop.run_in_executor(self.executor, self.encoders.encode, job)
            if proto.closed:
                break
            if generation != proto.pixel_format_generation and self.encoders.discard(encoding):
                # the client changed its pixel format mid-encode: the result is useless, send it all again
                area_full = Region(area)
                area_full.update(full)
                proto.restore_request(area_full, area_full)
                self._pending_pseudo[:0] = pseudo
                self._wake.set()
                continue
            proto.send_update(pseudo + encoded)
            self._flush()
            await self.stream.drain()

    def _pseudo_rects(self) -> list[bytes]:
        """Pseudo-rectangles due in the next update: size and name changes, SetDesktopSize replies."""
        proto = self.protocol
        out, self._pending_pseudo = self._pending_pseudo, []
        size = self.hub.size
        if size != self._client_size:
            w, h = size
            if proto.supports(Encoding.EXTENDED_DESKTOP_SIZE):
                out.append(
                    extended_desktop_size_rect(
                        ExtendedDesktopSizeReason.SERVER,
                        ExtendedDesktopSizeStatus.NO_ERROR,
                        w,
                        h,
                        (Screen(0, 0, 0, w, h),),
                    )
                )
            elif proto.supports(Encoding.DESKTOP_SIZE):
                out.append(desktop_size_rect(w, h))
            else:
                # the client cannot resize: keep sending the part of the new frame that fits its framebuffer
                w = min(w, self._client_size[0])
                h = min(h, self._client_size[1])
            self._client_size = (w, h)
            proto.set_framebuffer_size(w, h)
            whole = Rect(0, 0, w, h)
            # the client's old request areas are in the old geometry: answer with the whole new screen
            proto.full_request.clear()
            proto.request_area.clear()
            proto.full_request.add(whole)
            proto.request_area.add(whole)
        if self.hub.name != self._client_name and proto.supports(Encoding.DESKTOP_NAME):
            out.append(desktop_name_rect(self.hub.name))
            self._client_name = self.hub.name
        return out

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
        if self.sub is not None:
            self.sub.close()
        if not self.view_only:
            self._release_input()
        self.stream.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stream.wait_closed(), 2.0)
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
