"""The web listener: our noVNC page, noVNC's files, and RFB over WebSocket for browsers.

Built on the ``websockets`` library. ``/websockify`` (noVNC's default path) upgrades to a WebSocket whose
binary messages carry the RFB byte stream; the connection is handed to :meth:`Server.handle_stream`, the same
session code TCP clients get. Plain GET requests are answered from ``web/`` (our page) and from noVNC's npm
package installed under ``web/node_modules/@novnc/novnc`` (served at ``/novnc/`` and as ``/vnc.html``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import mimetypes
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server as WSServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from .config import ServerConfig
from .streams import Stream, format_peer, listening_addresses, server_tls_context

log = logging.getLogger(__name__)
#: the websockets library logs every HTTP request at INFO; pyvnc logs connections itself, so only its
#: warnings and errors are shown unless this logger's level is lowered
_ws_log = logging.getLogger(__name__ + ".websockets")
_ws_log.setLevel(logging.WARNING)

#: where our page lives: the repository's web/ folder (next to src/ in a checkout)
WEB_ROOT = Path(__file__).resolve().parent.parent.parent / "web"
NOVNC_DIR = Path("node_modules") / "@novnc" / "novnc"
WEBSOCKET_PATH = "/websockify"
NOVNC_MISSING = (
    "<!doctype html><meta charset=utf-8><title>pyvnc</title>"
    "<p>noVNC is not installed: run <code>scripts/setup</code> (or <code>npm install</code> in "
    "<code>web/</code>) and reload this page. VNC viewers can still connect to the RFB port.</p>"
)


NOVNC_VNC_HTML = (
    "<!doctype html><meta charset=utf-8><title>pyvnc</title>"
    "<p>noVNC's own <code>vnc.html</code> is not part of its npm package; use <a href='/'>pyvnc's page</a>, "
    "or put a noVNC checkout's <code>vnc.html</code>, <code>app/</code> beside <code>core/</code> in "
    "<code>web/node_modules/@novnc/novnc</code>.</p>"
)


class WebSocketStream:
    """A :class:`~pyvnc.streams.Stream` over one WebSocket connection (binary messages)."""

    #: drain() waits while more than this many bytes are queued
    HIGH_WATER = 1 << 18

    def __init__(self, conn: ServerConnection) -> None:
        self._conn = conn
        self.peer = format_peer(conn.remote_address)
        self._buf = bytearray()
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._closer: asyncio.Future[None] | None = None
        self._pump = asyncio.create_task(self._send_loop(), name=f"pyvnc-ws-send-{self.peer}")

    async def read(self) -> bytes:
        try:
            message = await self._conn.recv()
        except ConnectionClosed:
            return b""
        if isinstance(message, str):
            # RFB needs binary frames; text frames (the old base64 protocol) are not spoken here
            log.warning("%s: text WebSocket message; only binary messages carry RFB", self.peer)
            return b""
        return message

    def write(self, data: bytes) -> None:
        if data and not self._closed:
            self._buf += data
            self._drained.clear()
            self._wakeup.set()

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    async def drain(self) -> None:
        while len(self._buf) > 0 and not self._closed:
            await self._drained.wait()

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._buf:
                    data = bytes(self._buf)
                    self._buf.clear()
                    await self._conn.send(data)  # waits while the transport is above its write limit
                self._drained.set()
        except ConnectionClosed:
            self._closed = True
            self._drained.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drained.set()
        self._closer = asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        # let queued bytes (a close reason, say) go out first, briefly
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._flush_rest()
        self._pump.cancel()
        with contextlib.suppress(Exception):
            await self._conn.close()

    async def _flush_rest(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            await self._conn.send(data)

    async def wait_closed(self) -> None:
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer
        with contextlib.suppress(Exception):
            await self._conn.wait_closed()
        self._pump.cancel()


class WebListener:
    """Serves the page, noVNC's files and ``/websockify`` on ``config.web_port``."""

    def __init__(
        self, config: ServerConfig, handle_stream: Callable[[Stream], Awaitable[None]], web_root: Path = WEB_ROOT
    ) -> None:
        self.config = config
        self._handle_stream = handle_stream
        self.web_root = web_root
        self.novnc_root = web_root / NOVNC_DIR
        self._servers: list[WSServer] = []
        self._connections: set[ServerConnection] = set()

    @property
    def scheme(self) -> str:
        return "https" if self.config.cert else "http"

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return listening_addresses(self._servers)

    async def start(self) -> None:
        cfg = self.config
        ssl_ctx: ssl.SSLContext | None = None
        if cfg.cert and cfg.key:
            ssl_ctx = server_tls_context(cfg.cert, cfg.key)
        if not (self.novnc_root / "core" / "rfb.js").is_file():
            log.warning("noVNC is not installed in %s: run scripts/setup (npm install in web/)", self.web_root)
        port = cfg.web_port
        for host in cfg.listen:
            srv = await serve(
                self._on_connection,
                host,
                port,
                process_request=self._process_request,
                subprotocols=[Subprotocol("binary")],
                select_subprotocol=_select_subprotocol,
                max_size=cfg.web_max_message,
                open_timeout=cfg.handshake_timeout,
                ping_interval=20,
                compression=None,  # RFB data is compressed already, or meant to be cheap
                server_header="pyvnc",
                logger=_ws_log,
                ssl=ssl_ctx,
                reuse_address=True,
            )
            self._servers.append(srv)
            if port == 0:
                port = int(srv.sockets[0].getsockname()[1])
        for host, p in self.addresses:
            log.info("serving the web page on %s://%s/", self.scheme, format_peer((host, p)))

    def close(self) -> None:
        for srv in self._servers:
            srv.close(close_connections=False)

    async def wait_closed(self) -> None:
        for srv in self._servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await srv.wait_closed()

    # --- WebSocket connections -----------------------------------------------------------------------------

    async def _on_connection(self, conn: ServerConnection) -> None:
        stream = WebSocketStream(conn)
        try:
            await self._handle_stream(stream)
        finally:
            stream.close()
            await stream.wait_closed()

    # --- HTTP ----------------------------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if path == WEBSOCKET_PATH:
            if not upgrade:
                return _text(http.HTTPStatus.UPGRADE_REQUIRED, "this URL speaks WebSocket (RFB)\n")
            if not self._origin_allowed(request.headers):
                log.warning(
                    "%s: WebSocket refused: origin %r not allowed",
                    format_peer(conn.remote_address),
                    request.headers.get("Origin"),
                )
                return _text(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
            return None  # continue with the WebSocket handshake
        if upgrade:
            return _text(http.HTTPStatus.NOT_FOUND, f"WebSocket connections go to {WEBSOCKET_PATH}\n")
        return self._static(path)

    def _origin_allowed(self, headers: Headers) -> bool:
        origin = headers.get("Origin")
        if origin is None:
            return True  # not a browser (browsers always send Origin on WebSocket requests)
        origin = origin.rstrip("/")
        if self.config.web_origins:
            return origin in self.config.web_origins
        host = headers.get("Host", "")
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()

    def _static(self, path: str) -> Response:
        path = unquote(path)
        target: Path | None
        if path == "/favicon.ico":
            return _response(http.HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        novnc_ok = (self.novnc_root / "core" / "rfb.js").is_file()
        if path in ("/", "/index.html"):
            if not novnc_ok:
                return _response(http.HTTPStatus.OK, NOVNC_MISSING.encode(), "text/html; charset=utf-8")
            target = self.web_root / "index.html"
        elif path == "/vnc.html":
            target = self.novnc_root / "vnc.html"
        elif path.startswith("/novnc/"):
            target = _inside(self.novnc_root, path[len("/novnc/") :])
        elif path.startswith(("/app/", "/core/", "/vendor/")) or path in ("/package.json",):
            # vnc.html loads its modules relative to itself
            target = _inside(self.novnc_root, path.lstrip("/"))
        else:
            target = _inside(self.web_root / "static", path.lstrip("/"))
        if target is None or not target.is_file():
            if path == "/vnc.html":
                return _response(http.HTTPStatus.NOT_FOUND, NOVNC_VNC_HTML.encode(), "text/html; charset=utf-8")
            return _text(http.HTTPStatus.NOT_FOUND, "not found\n")
        try:
            body = target.read_bytes()
        except OSError:
            return _text(http.HTTPStatus.NOT_FOUND, "not found\n")
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix in (".js", ".mjs"):
            ctype = "text/javascript"
        if ctype.startswith("text/") or ctype in ("application/json", "image/svg+xml"):
            ctype += "; charset=utf-8"
        return _response(http.HTTPStatus.OK, body, ctype)


def _inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if it stays inside ``root`` (no ``..`` escapes), else None."""
    try:
        target = (root / rel).resolve()
        target.relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return target


def _select_subprotocol(conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Accept noVNC's ``binary`` subprotocol when offered; no subprotocol is fine too."""
    return Subprotocol("binary") if "binary" in offered else None


def _response(status: http.HTTPStatus, body: bytes, ctype: str) -> Response:
    headers = Headers()
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Content-Type"] = ctype
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-cache"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Connection"] = "close"
    return Response(status.value, status.phrase, headers, body)


def _text(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")
