"""A small byte-stream interface, so TCP and WebSocket clients run the same session code."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable
from typing import Protocol, runtime_checkable


class Stream(Protocol):
    """A bidirectional byte stream to one client."""

    #: the peer's address, for logs
    peer: str

    async def read(self) -> bytes:
        """The next bytes from the client; ``b""`` at end of stream."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the client."""

    def writelines(self, chunks: list[bytes]) -> None:
        """Queue several pieces of bytes for the client, in order, without joining them first."""

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""

    def close(self) -> None:
        """Close the stream (idempotent)."""

    async def wait_closed(self) -> None:
        """Wait until the stream is closed."""


@runtime_checkable
class TLSStream(Stream, Protocol):
    """A :class:`Stream` that can turn into TLS mid-connection (VeNCrypt): TCP, not WebSocket (a browser's
    WebSocket is encrypted by wss instead)."""

    def pause_reading(self) -> None: ...

    def buffered(self) -> int: ...

    async def start_tls(self, context: ssl.SSLContext) -> str: ...


class _Listener(Protocol):
    @property
    def sockets(self) -> Iterable[socket.socket]: ...


def listening_addresses(servers: Iterable[_Listener]) -> list[tuple[str, int]]:
    """(host, port) of every socket of ``servers`` (asyncio or websockets servers)."""
    out = []
    for srv in servers:
        for sock in srv.sockets:
            name = sock.getsockname()
            out.append((str(name[0]), int(name[1])))
    return out


#: seconds a closing TLS connection has to send what is queued before it is dropped
TLS_CLOSE_GRACE = 1.0


def _no_passphrase() -> str:
    raise ValueError("the private key is encrypted with a passphrase; pyvnc needs an unencrypted key file")


def server_tls_context(cert: str, key: str, tickets: bool = True) -> ssl.SSLContext:
    """The TLS server context of the certificate chain ``cert`` and its private ``key`` (PEM files), for the
    web listener's https/wss and for VeNCrypt on the RFB port; TLS 1.2 at least (Python's default).

    ``tickets`` False sends no TLS 1.3 session tickets. VNC viewers never resume a TLS session, and
    TigerVNC 1.12 stalls now and then when a ticket arrives with the first data after the handshake (about one
    connection in three here; none in 24 without tickets)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key, password=_no_passphrase)  # never a passphrase prompt on the terminal
    if not tickets:
        context.num_tickets = 0
    return context


def format_peer(peername: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) from a socket's peer name."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)


class TCPStream:
    """A :class:`Stream` over asyncio's TCP streams."""

    READ_SIZE = 1 << 16

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.peer = format_peer(writer.get_extra_info("peername"))
        #: the socket's own transport: TLS wraps it, and a failed start_tls may leave the writer without any
        self._socket_transport = writer.transport
        #: True once start_tls succeeded; True once it failed
        self._tls = False
        self._tls_failed = False
        # bounded write buffer: drain() waits above 256 KiB
        writer.transport.set_write_buffer_limits(high=1 << 18)

    async def read(self) -> bytes:
        try:
            return await self._reader.read(self.READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    def _closing(self) -> bool:
        # a start_tls cut short by a close leaves the writer without a transport (CPython 3.11)
        transport = self._writer.transport
        return transport is None or transport.is_closing()

    def write(self, data: bytes) -> None:
        if data and not self._closing():
            self._writer.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        if chunks and not self._closing():
            self._writer.writelines(chunks)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        transport = self._writer.transport
        if transport is None:
            self._socket_transport.close()
        elif not self._closing():
            self._writer.close()
            if self._tls:
                # TLS's close waits for the peer's close_notify (for 30 s), and a reader waiting meanwhile
                # is not woken: give what is queued (and our close_notify) a moment, then drop the connection
                asyncio.get_running_loop().call_later(TLS_CLOSE_GRACE, transport.abort)

    async def wait_closed(self) -> None:
        if self._tls_failed:  # nothing would ever tell the reader's protocol: the socket is closed, done
            return
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    def _failed_tls(self) -> None:
        """A TLS handshake that did not finish took the connection down with it: close the socket for good.
        (The stream's own protocol is never told, as TLS had taken its place: :meth:`wait_closed` knows.)"""
        self._tls_failed = True
        self._socket_transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket (until :meth:`start_tls`), so that what the client sends next stays
        in the socket for TLS rather than being read as plain bytes."""
        pause = getattr(self._writer.transport, "pause_reading", None)  # uvloop's is no asyncio.ReadTransport
        if callable(pause):
            pause()

    def buffered(self) -> int:
        """Bytes read from the socket that :meth:`read` has not returned yet."""
        buffer: bytearray = getattr(self._reader, "_buffer", bytearray())  # StreamReader has no public count
        return len(buffer)

    async def start_tls(self, context: ssl.SSLContext) -> str:
        """Turn the connection into TLS as its server (queued bytes are sent first); returns the TLS version
        and cipher, for logs. Raises :class:`ssl.SSLError` or :class:`OSError` (ConnectionError when the
        connection was closed meanwhile) when the handshake fails."""
        try:
            await self._writer.start_tls(context)
        except AttributeError as exc:  # CPython 3.11: closed during the handshake, start_tls gets no transport
            # and leaves the writer without one: give it the socket's back, so that closing it (and its own
            # cleanup) works
            setattr(self._writer, "_transport", self._socket_transport)  # noqa: B010
            self._failed_tls()
            raise ConnectionError("the connection closed during the TLS handshake") from exc
        except BaseException:
            self._failed_tls()
            raise
        transport = self._writer.transport
        if transport is None:  # pragma: no cover - the same, on versions where start_tls does not raise
            raise ConnectionError("the connection closed during the TLS handshake")
        self._tls = True
        transport.set_write_buffer_limits(high=1 << 18)
        tls = self._writer.get_extra_info("ssl_object")
        if not isinstance(tls, ssl.SSLObject):  # pragma: no cover - start_tls always makes one
            return "TLS"
        cipher = tls.cipher()
        return f"{tls.version()} {cipher[0] if cipher else ''}".strip()
