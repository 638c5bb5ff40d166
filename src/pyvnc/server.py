"""``Server``: listeners, the session registry, the frame source and the encoder executor.

Use it as ``asyncio.run(Server(config, source=...).serve_forever())`` or ``async with Server(...) as server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from ._malloc import tune_malloc
from .capture.base import FrameSource
from .config import ServerConfig
from .encoders import parallel
from .encoders.h264 import available as h264_available
from .hub import FrameHub
from .session import Session
from .streams import Stream, TCPStream, TLSStream, format_peer, listening_addresses, server_tls_context
from .web import WebListener

log = logging.getLogger(__name__)


class Server:
    """A VNC server: serves ``source`` (or the source ``config.source`` names) to RFB clients."""

    def __init__(self, config: ServerConfig | None = None, source: FrameSource | None = None) -> None:
        self.config = config or ServerConfig()
        self._source = source
        self.hub: FrameHub | None = None
        self._servers: list[asyncio.Server] = []
        self.web: WebListener | None = None
        self._sessions: set[Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None
        #: the TLS context of VeNCrypt on the RFB port (cert and key set, rfb_tls not "off")
        self._tls: ssl.SSLContext | None = None
        self._started = False
        self._closing = False
        self._closed = asyncio.Event()
        self._stop_requested: asyncio.Event | None = None

    # --- properties ----------------------------------------------------------------------------------------

    @property
    def source(self) -> FrameSource:
        if self._source is None:
            raise RuntimeError("the server has not been started")
        return self._source

    @property
    def sockets_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket, once started."""
        return listening_addresses(self._servers)

    @property
    def port(self) -> int:
        """The RFB port actually listened on (useful with ``port=0``)."""
        addrs = self.sockets_addresses
        if not addrs:
            raise RuntimeError("the server is not listening")
        return addrs[0][1]

    @property
    def web_port(self) -> int:
        """The port the web listener listens on."""
        if self.web is None or not self.web.addresses:
            raise RuntimeError("the web listener is not running")
        return self.web.addresses[0][1]

    @property
    def sessions(self) -> list[Session]:
        return list(self._sessions)

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the source and the listeners; return once clients can connect."""
        if self._started:
            return
        self._started = True
        tune_malloc()
        cfg = self.config
        if cfg.encode_threads is not None:
            parallel.set_cores(cfg.encode_threads)
        if self._source is None:
            from .capture.factory import create_source

            self._source = create_source(cfg)
        name = cfg.desktop_name or self._source.name
        self.hub = FrameHub(name)
        if cfg.h264 and not h264_available():
            log.warning("h264 is on, but PyAV with libx264 is not installed here: H.264 is never sent")
        if cfg.cert and cfg.key and cfg.rfb_tls != "off":
            self._tls = server_tls_context(cfg.cert, cfg.key, tickets=False)
        self._executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="pyvnc")
        try:
            await self._source.start(self.hub, cfg.max_fps)
            port = cfg.port
            for host in cfg.listen:
                srv = await asyncio.start_server(self._on_tcp_client, host, port, reuse_address=True)
                self._servers.append(srv)
                if port == 0:  # every address shares the port the first one got
                    port = int(srv.sockets[0].getsockname()[1])
            if cfg.web_port:
                self.web = WebListener(cfg, self.handle_stream)
                await self.web.start()
        except BaseException:
            await self._teardown()
            raise
        for host, p in self.sockets_addresses:
            log.info("listening for VNC clients on %s", format_peer((host, p)))

    async def serve_forever(self) -> None:
        """Serve until cancelled, ``close()`` is called, or SIGINT/SIGTERM arrives; then shut down cleanly."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or not supported here
        try:
            await self.start()
            assert self.hub is not None
            stop = asyncio.ensure_future(self._stop_requested.wait())
            failed = asyncio.ensure_future(self.hub.failed_event.wait())
            try:
                await asyncio.wait([stop, failed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                failed.cancel()
            if self.hub.failed is not None:
                # one clear line; clients are closed with the reason; no restart loop: a supervisor
                # (systemd, say) decides whether to start pyvnc again
                log.error("the screen source failed: %s; shutting down", self.hub.failed)
                self._close_sessions(f"screen source failed: {self.hub.failed}")
                raise self.hub.failed
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.close_and_wait()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s: shutting down", sig.name)
        self.close()

    def close(self) -> None:
        """Ask the server to stop: no new clients; sessions are closed by ``wait_closed()``."""
        if self._stop_requested is not None:
            self._stop_requested.set()
        for srv in self._servers:
            srv.close()
        if self.web is not None:
            self.web.close()
        self._close_sessions("server shutting down")

    def _close_sessions(self, reason: str) -> None:
        for session in list(self._sessions):
            session.close(reason)

    async def wait_closed(self) -> None:
        """Wait until listeners, sessions, the source and the executor are all gone."""
        await self._teardown()

    async def close_and_wait(self) -> None:
        self.close()
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_and_wait()

    async def _teardown(self) -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            for srv in self._servers:
                srv.close()
            if self.web is not None:
                self.web.close()
            for session in list(self._sessions):
                session.close("server shutting down")
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)
            for task in list(self._tasks):
                task.cancel()
            for srv in self._servers:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await srv.wait_closed()
            if self.web is not None:
                await self.web.wait_closed()
            if self._source is not None and self.hub is not None:
                try:
                    await self._source.stop()
                except Exception:
                    log.exception("error while stopping the frame source")
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
        finally:
            self._closed.set()

    # --- clients -------------------------------------------------------------------------------------------

    async def _on_tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await self.handle_stream(TCPStream(reader, writer))

    def _pending_handshakes(self) -> int:
        return sum(1 for s in self._sessions if not s.established)

    async def handle_stream(self, stream: Stream) -> None:
        """Serve one client over ``stream`` until it leaves (used by the TCP and WebSocket listeners)."""
        if self._closing or self.hub is None or self._executor is None:
            stream.close()
            return
        cfg = self.config
        if self._pending_handshakes() >= cfg.max_pending_handshakes:
            log.warning("%s: refused: too many connections in handshake", stream.peer)
            stream.close()
            return
        established = sum(1 for s in self._sessions if s.established)
        refuse = "too many clients" if established >= cfg.max_clients else None
        session = Session(
            stream,
            config=cfg,
            hub=self.hub,
            source=self.source,
            executor=self._executor,
            on_client_init=self._on_client_init,
            refuse_reason=refuse,
            tls=self._tls if isinstance(stream, TLSStream) else None,  # a browser has wss instead
        )
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._tasks.discard(task)

    def _on_client_init(self, session: Session, shared_flag: bool) -> str | None:
        """Apply the sharing policy when ``session`` sends ClientInit; a string refuses the client."""
        cfg = self.config
        established = [s for s in self._sessions if s.established and s is not session]
        if len(established) >= cfg.max_clients:
            return "too many clients"
        policy = cfg.share_policy
        shared = True if policy == "always" else False if policy == "never" else shared_flag
        session.shared = shared
        if not shared and not session.view_only:
            # rfbproto 7.3.1: an exclusive client disconnects the others (a view-only client never does)
            for other in established:
                log.info("%s: disconnected: %s asked for exclusive access", other.peer, session.peer)
                other.close("another client asked for exclusive access")
        return None
