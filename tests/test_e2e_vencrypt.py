"""TLS on the RFB port (VeNCrypt X509Vnc / X509None) over real sockets, with Python's TLS as the client: the
certificate checked for 127.0.0.1, VNC Authentication inside TLS, the picture through it; "require" leaves the
plain type out; a client whose TLS fails is dropped while others are served; the web port stays as it was."""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from pathlib import Path

import numpy as np
import pytest
from rfbclient import AuthError, RFBClient

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.errors import ConfigError
from pyvnc.protocol.connection import RFBServerProtocol

W, H = 96, 64


def picture(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def client_context(cert: Path) -> ssl.SSLContext:
    """A client context that trusts only ``cert`` and checks the host name."""
    ctx = ssl.create_default_context(cafile=str(cert))
    assert ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED
    return ctx


async def test_x509vnc_authenticates_and_serves_inside_tls(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    source = PushSource(width=W, height=H)
    rgb = picture()
    source.push(rgb)
    config = ServerConfig(port=0, web_port=0, password="secret", cert=str(cert), key=str(key), rfb_tls="offer")
    async with Server(config, source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port, password="secret", tls=client_context(cert))
        assert client.security_types == bytes([19, 2])  # VeNCrypt first, VNC Authentication still there
        assert client.vencrypt_subtypes == (261,)  # X509Vnc
        tls = client.writer.get_extra_info("ssl_object")
        assert tls is not None and tls.version() in ("TLSv1.2", "TLSv1.3")
        session = server.sessions[0]
        assert session.tls is not None and session.tls.startswith(tls.version())
        client.set_encodings([0])
        client.request(incremental=False)
        await client.read_update()
        assert np.array_equal(client.fb, rgb)
        changed = picture(4)
        source.push(changed)
        await client.update_until(changed)
        # no TLS 1.3 session tickets (no viewer resumes, and TigerVNC 1.12 stalls on them now and then)
        assert tls.session is None or not tls.session.has_ticket
        # a wrong password inside TLS fails as it does without
        with pytest.raises(AuthError, match="Authentication failed"):
            await RFBClient.connect("127.0.0.1", server.port, password="wrong", tls=client_context(cert))
        # a viewer without VeNCrypt still gets in with plain VNC Authentication ("offer")
        plain = await RFBClient.connect("127.0.0.1", server.port, password="secret")
        assert plain.writer.get_extra_info("ssl_object") is None
        await plain.close()
        await client.close()


async def test_the_view_only_password_works_inside_tls(self_signed: tuple[Path, Path]) -> None:
    """X509Vnc checks both passwords as plain VNC Authentication does: the view-only one gives a session
    whose key presses do not reach the desktop."""
    cert, key = self_signed
    keys: list[int] = []
    source = PushSource(width=W, height=H, on_key=lambda keysym, down: keys.append(keysym))
    source.push(picture())
    config = ServerConfig(
        port=0, web_port=0, password="secret", view_only_password="viewer", cert=str(cert), key=str(key),
        rfb_tls="require",
    )  # fmt: skip
    async with Server(config, source=source) as server:
        viewer = await RFBClient.connect("127.0.0.1", server.port, password="viewer", tls=client_context(cert))
        assert server.sessions[0].view_only and server.sessions[0].tls is not None
        viewer.key(0x61, True)
        viewer.key(0x61, False)
        viewer.set_encodings([0])
        viewer.request(incremental=False)
        await viewer.read_update()
        assert keys == []
        await viewer.close()


async def test_require_offers_vencrypt_alone_and_x509none_without_password(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    source = PushSource(width=W, height=H)
    rgb = picture(7)
    source.push(rgb)
    config = ServerConfig(port=0, web_port=0, cert=str(cert), key=str(key), rfb_tls="require")
    async with Server(config, source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port, tls=client_context(cert))
        assert client.security_types == bytes([19]) and client.vencrypt_subtypes == (260,)  # X509None
        client.set_encodings([0])
        client.request(incremental=False)
        await client.read_update()
        assert np.array_equal(client.fb, rgb)
        # RFB 3.3 cannot negotiate VeNCrypt: refused with the reason
        with pytest.raises(AuthError, match="requires TLS"):
            await RFBClient.connect("127.0.0.1", server.port, version=b"RFB 003.003\n")
        await client.close()


async def test_a_client_whose_tls_fails_is_dropped_and_others_are_served(self_signed: tuple[Path, Path]) -> None:
    """Garbage instead of a ClientHello, and a client that does not trust the certificate: each connection
    closes with a logged reason, and a good client connected meanwhile keeps getting updates."""
    cert, key = self_signed
    source = PushSource(width=W, height=H)
    source.push(picture())
    config = ServerConfig(port=0, web_port=0, password="secret", cert=str(cert), key=str(key), rfb_tls="offer")
    async with Server(config, source=source) as server:
        good = await RFBClient.connect("127.0.0.1", server.port, password="secret", tls=client_context(cert))
        good.set_encodings([0])
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await reader.readexactly(12) == b"RFB 003.008\n"
        writer.write(b"RFB 003.008\n")
        assert await reader.readexactly(3) == bytes([2, 19, 2])
        writer.write(bytes([19]))
        assert await reader.readexactly(2) == b"\x00\x02"
        writer.write(b"\x00\x02")
        assert await reader.readexactly(6) == b"\x00\x01" + struct.pack(">I", 261)
        writer.write(struct.pack(">I", 261))
        assert await reader.readexactly(1) == b"\x01"
        writer.write(b"this is not a TLS ClientHello at all" * 4)
        # the server hangs up (perhaps after a TLS alert): the stream ends within the handshake timeout
        await asyncio.wait_for(reader.read(), 10)
        assert reader.at_eof()
        writer.close()
        untrusting = ssl.create_default_context()  # the system CAs: our self-signed certificate fails
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await RFBClient.connect("127.0.0.1", server.port, password="secret", tls=untrusting)
        for _ in range(50):
            if len(server.sessions) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(server.sessions) == 1  # both bad connections are gone
        changed = picture(9)
        source.push(changed)
        await good.update_until(changed)
        await good.close()


async def up_to_subtype(port: int, subtype: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw client through VeNCrypt's version exchange, up to sending its choice of ``subtype``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await reader.readexactly(12) == b"RFB 003.008\n"
    writer.write(b"RFB 003.008\n")
    n = (await reader.readexactly(1))[0]
    assert 19 in await reader.readexactly(n)
    writer.write(bytes([19]))
    assert await reader.readexactly(2) == b"\x00\x02"
    writer.write(b"\x00\x02")
    ok, count = await reader.readexactly(2)
    assert ok == 0 and subtype in struct.unpack(f">{count}I", await reader.readexactly(4 * count))
    return reader, writer


async def test_plaintext_sent_before_the_ack_is_refused_not_taken_as_encrypted(
    self_signed: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes sent with the subtype, before the ack: plaintext meant to pass as sent inside TLS (a ClientInit
    and a key press, which an X509None server would take as the TLS client's), and an early ClientHello
    (which TLS would never see). Each gets a failing ack and a close at once, with the reason logged; the key
    press never reaches the desktop."""
    cert, key = self_signed
    keys: list[int] = []
    source = PushSource(width=W, height=H, on_key=lambda keysym, down: keys.append(keysym))
    source.push(picture())
    config = ServerConfig(port=0, web_port=0, cert=str(cert), key=str(key), rfb_tls="require", handshake_timeout=30)
    async with Server(config, source=source) as server:
        reader, writer = await up_to_subtype(server.port, 260)
        writer.write(struct.pack(">I", 260) + b"\x01" + struct.pack(">BBxxI", 4, 1, 0x41))
        assert await asyncio.wait_for(reader.read(), 5) == b"\x00"  # failing ack, then the end of the stream
        writer.close()
        # an early ClientHello: the first bytes Python's TLS client would send
        hello_bio, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_context(cert).wrap_bio(hello_bio, out, server_hostname="127.0.0.1")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        reader, writer = await up_to_subtype(server.port, 260)
        writer.write(struct.pack(">I", 260) + out.read())
        assert await asyncio.wait_for(reader.read(), 5) == b"\x00"  # at once, not after the 30 s timeout
        writer.close()
        await asyncio.sleep(0.1)
        assert keys == []
    refused = [r for r in caplog.records if "before the server's ack" in r.getMessage()]
    assert len(refused) >= 2


async def test_plaintext_that_reaches_the_stream_before_the_pause_is_refused_too(
    self_signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other way in: the extra bytes come a moment after the subtype, once the parser has it but before
    the session pauses reading (widened here by delaying the session's TLS start), so they wait in the stream's
    buffer rather than the parser's. Also a failing ack and a close."""
    from pyvnc.session import Session

    start_tls = Session._start_tls

    async def late(self: Session) -> None:
        await asyncio.sleep(0.3)
        await start_tls(self)

    monkeypatch.setattr(Session, "_start_tls", late)
    refused: list[str] = []
    refuse_tls = RFBServerProtocol.refuse_tls

    def spy(self: RFBServerProtocol, reason: str) -> None:
        refused.append(reason)
        refuse_tls(self, reason)

    monkeypatch.setattr(RFBServerProtocol, "refuse_tls", spy)
    cert, key = self_signed
    source = PushSource(width=W, height=H)
    source.push(picture())
    config = ServerConfig(port=0, web_port=0, cert=str(cert), key=str(key), rfb_tls="require", handshake_timeout=30)
    async with Server(config, source=source) as server:
        reader, writer = await up_to_subtype(server.port, 260)
        writer.write(struct.pack(">I", 260))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"\x01" + struct.pack(">BBxxI", 4, 1, 0x41))
        assert await asyncio.wait_for(reader.read(), 5) == b"\x00"
        writer.close()
    assert refused and "before the server's ack" in refused[0]  # the session's check, not the parser's


async def test_the_command_line_server_speaks_tls(self_signed: tuple[Path, Path], tmp_path: Path) -> None:
    """``pyvnc serve`` as users run it (its own event loop, uvloop where installed) with --cert, --key and
    --rfb-tls require: a TLS client gets the demo desktop's picture."""
    import socket
    import sys

    cert, key = self_signed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    password = tmp_path / "pw"
    password.write_text("secret\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pyvnc", "serve", "--source", "demo", "--port", str(port), "--web-port", "0",
        "--password-file", str(password), "--cert", str(cert), "--key", str(key), "--rfb-tls", "require",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                client = await RFBClient.connect("127.0.0.1", port, password="secret", tls=client_context(cert))
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the server never listened")
        assert client.security_types == bytes([19]) and client.vencrypt_subtypes == (261,)
        client.set_encodings([0])
        client.request(incremental=False)
        await client.read_update()
        assert client.fb.shape[:2] == (client.height, client.width) and client.fb.any()
        await client.close()
    finally:
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert b"TLS started" in out and b"Traceback" not in out, out.decode(errors="replace")[-2000:]


async def test_shutdown_during_tls_handshakes_is_clean(
    self_signed: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The server shuts down while one client waits after the ack and another is halfway through its TLS
    handshake: both connections end, the server closes promptly, and nothing is logged as an error."""
    import time

    cert, key = self_signed
    source = PushSource(width=W, height=H)
    source.push(picture())
    config = ServerConfig(
        port=0, web_port=0, password="secret", cert=str(cert), key=str(key), rfb_tls="offer", handshake_timeout=30
    )
    server = Server(config, source=source)
    await server.start()
    waiting = await up_to_subtype(server.port, 261)
    waiting[1].write(struct.pack(">I", 261))
    assert await waiting[0].readexactly(1) == b"\x01"
    halfway = await up_to_subtype(server.port, 261)
    halfway[1].write(struct.pack(">I", 261))
    assert await halfway[0].readexactly(1) == b"\x01"
    hello_bio, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(cert).wrap_bio(hello_bio, out, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    halfway[1].write(out.read())
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await asyncio.wait_for(server.close_and_wait(), 10)
    # promptly: nothing waits for a close that TLS, having taken the stream's place, would never report
    assert time.monotonic() - started < 1.5, time.monotonic() - started
    for reader, writer in (waiting, halfway):
        await asyncio.wait_for(reader.read(), 5)
        assert reader.at_eof()
        writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_shutdown_with_an_idle_tls_client_is_prompt_and_clean(
    self_signed: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A client through TLS that stops reading (a viewer frozen, or on a dialog): the server's shutdown still
    ends its session within about a second and logs no error (TLS's close waits for the peer's close_notify,
    which never comes: the connection is dropped after a grace period)."""
    import time

    caplog.set_level(logging.INFO)
    cert, key = self_signed
    source = PushSource(width=W, height=H)
    source.push(picture())
    config = ServerConfig(port=0, web_port=0, password="secret", cert=str(cert), key=str(key), rfb_tls="require")
    server = Server(config, source=source)
    await server.start()

    def frozen_client() -> ssl.SSLSocket:
        """A blocking client through VeNCrypt and TLS that then reads nothing (so never answers close_notify)."""
        import socket

        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        assert raw.recv(12) == b"RFB 003.008\n"
        raw.sendall(b"RFB 003.008\n")
        assert raw.recv(2) == bytes([1, 19])
        raw.sendall(bytes([19]))
        assert raw.recv(2) == b"\x00\x02"
        raw.sendall(b"\x00\x02")
        assert raw.recv(6) == b"\x00\x01" + struct.pack(">I", 261)
        raw.sendall(struct.pack(">I", 261))
        assert raw.recv(1) == b"\x01"
        tls = client_context(cert).wrap_socket(raw, server_hostname="127.0.0.1")
        assert len(tls.recv(16)) == 16  # the challenge: then the viewer freezes
        return tls

    client = await asyncio.to_thread(frozen_client)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await asyncio.wait_for(server.close_and_wait(), 10)
    assert time.monotonic() - started < 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert any("disconnected" in r.getMessage() for r in caplog.records)
    client.close()


def test_a_certificate_and_key_that_do_not_go_together_are_config_errors(
    self_signed: tuple[Path, Path], tmp_path: Path
) -> None:
    """Found when the configuration is read (exit status 2 from the command line), not when TLS first starts:
    a key of another certificate, the two files swapped, and a key with a passphrase (which would otherwise
    prompt on the terminal of a server started as a service)."""
    import subprocess

    cert, key = self_signed
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(other), "2048"], check=True, capture_output=True)
    locked = tmp_path / "locked.pem"
    subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-aes256", "-passout", "pass:x", "-out", str(locked)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ConfigError, match="is not the key of the certificate"):
        ServerConfig(cert=str(cert), key=str(other))
    with pytest.raises(ConfigError, match="holds no certificate"):
        ServerConfig(cert=str(key), key=str(cert))
    with pytest.raises(ConfigError, match="encrypted with a passphrase"):
        ServerConfig(cert=str(cert), key=str(locked))
    ServerConfig(cert=str(cert), key=str(key))  # the right pair


async def test_require_without_a_certificate_is_a_config_error() -> None:
    """And "offer" too: a setting that cannot take effect is an error, not silently ignored."""
    with pytest.raises(ConfigError, match='rfb_tls: "require" needs a certificate'):
        ServerConfig(rfb_tls="require")
    with pytest.raises(ConfigError, match='rfb_tls: "offer" needs a certificate'):
        ServerConfig(rfb_tls="offer")
    with pytest.raises(ConfigError, match="rfb_tls: must be one of"):
        ServerConfig(rfb_tls="maybe")


async def test_off_by_default_even_with_a_certificate(self_signed: tuple[Path, Path]) -> None:
    """A certificate for https alone changes nothing on the RFB port: only rfb_tls turns TLS on there."""
    cert, key = self_signed
    source = PushSource(width=W, height=H)
    source.push(picture())
    config = ServerConfig(port=0, web_port=0, password="secret", cert=str(cert), key=str(key))
    async with Server(config, source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port, password="secret")
        assert client.security_types == bytes([2])
        await client.close()
