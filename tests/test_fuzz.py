"""Bad input, at random: a valid client stream (every client message type, the extensions switched on) with
bytes flipped, inserted, cut short or followed by noise. The protocol parser must only ever close the
connection with a reason, never raise; over real sockets, a crowd of such clients must leave a well-behaved
client served and the server's log free of errors."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import zlib

import numpy as np
import pytest
from rfbclient import RFBClient

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.protocol.connection import ProtocolSettings, RFBServerProtocol
from pyvnc.protocol.constants import SecurityType, VeNCryptSubtype
from pyvnc.protocol.messages import AuthRequested, ClientInitReceived, TLSRequested

EXTENDED_CLIPBOARD = -1063131698
ENCODINGS = [0, 1, 2, 5, 6, 7, 16, -260, 21, -23, -247, -223, -308, -312, -313, -239, -314, -307, -258, -261, -316]


def valid_stream() -> list[bytes]:
    """The handshake (3.8, security None, shared) and one of each client message."""
    pf = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    encodings = [*ENCODINGS, EXTENDED_CLIPBOARD]
    clip = struct.pack(">I", (1 << 28) | 1) + zlib.compress(struct.pack(">I", 4) + b"abc\0")
    return [
        b"RFB 003.008\n",
        b"\x01",
        b"\x01",
        b"\x00\x00\x00\x00" + pf,
        struct.pack(">BxH", 2, len(encodings)) + struct.pack(f">{len(encodings)}i", *encodings),
        struct.pack(">BBHHHH", 3, 0, 0, 0, 100, 80),
        struct.pack(">BBxxI", 4, 1, 0x61),
        struct.pack(">BBHH", 5, 0x81, 10, 20) + b"\x01",
        struct.pack(">B3xI", 6, 5) + b"hello",
        struct.pack(">B3xi", 6, -len(clip)) + clip,
        struct.pack(">BBHHHH", 150, 1, 0, 0, 100, 80),
        struct.pack(">B3xIB", 248, (1 << 31) | 0b101, 2) + b"xy",
        bytes([251, 0]) + struct.pack(">HHBx", 300, 200, 1) + struct.pack(">IHHHHI", 1, 0, 0, 300, 200, 0),
        struct.pack(">BBHII", 255, 0, 1, 0x61, 30),
        struct.pack(">BBHHHH", 3, 1, 0, 0, 100, 80),
    ]


def mutated(rng: random.Random) -> bytes:
    parts = valid_stream()
    data = bytearray(b"".join(parts))
    head = len(parts[0]) + 2  # past the version and the security choice: the rest is fair game
    kind = rng.choice(["flip", "insert", "truncate", "duplicate", "noise"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(head, len(data))] = rng.randrange(256)
    elif kind == "insert":
        k = rng.randrange(head, len(data))
        data[k:k] = rng.randbytes(rng.randint(1, 20))
    elif kind == "truncate":
        data = data[: rng.randrange(head, len(data))]
    elif kind == "duplicate":
        a = rng.randrange(head, len(data))
        b = min(len(data), a + rng.randint(1, 40))
        data[b:b] = data[a:b]
    else:
        data = bytearray(b"".join(parts[:4])) + rng.randbytes(rng.randint(1, 300))
    return bytes(data)


def test_mutated_client_streams_only_ever_close_the_connection() -> None:
    rng = random.Random(20261201)
    closed = 0
    for _ in range(1500):
        data = mutated(rng)
        proto = RFBServerProtocol(ProtocolSettings(security_types=(SecurityType.NONE, SecurityType.VNC_AUTH)))
        i = 0
        while i < len(data) and not proto.closed:
            n = rng.randint(1, 64)
            proto.receive_data(data[i : i + n])  # must not raise
            i += n
            for event in proto.events_received():
                if isinstance(event, AuthRequested):
                    proto.accept_auth()
                elif isinstance(event, ClientInitReceived):
                    proto.send_server_init(100, 80, "x")
            proto.data_to_send()
            proto.answer_fence()
        if proto.closed:
            closed += 1
            assert proto.close_reason
    assert closed > 750  # most mutations are caught as errors (1002 of 1500); the others parse as valid messages


def test_mutated_vencrypt_handshakes_only_ever_close_the_connection() -> None:
    """The VeNCrypt exchange (versions, subtype list, choice, ack, then VNC Authentication inside TLS, played
    here as plain bytes after ``tls_started()``) mutated the same ways: the parser closes with a reason or
    goes on, and never reaches authentication with a subtype it did not offer."""
    rng = random.Random(20261202)
    settings = ProtocolSettings(
        security_types=(SecurityType.VENCRYPT, SecurityType.VNC_AUTH), vencrypt_subtypes=(VeNCryptSubtype.X509_VNC,)
    )
    stream = b"RFB 003.008\n" + b"\x13" + b"\x00\x02" + struct.pack(">I", 261) + bytes(16) + b"\x01"
    closed = tls = 0
    for _ in range(1500):
        data = bytearray(stream)
        for _ in range(rng.randint(1, 4)):
            if len(data) <= 13:
                break
            kind = rng.choice(["flip", "insert", "truncate"])
            if kind == "flip":
                data[rng.randrange(12, len(data))] = rng.randrange(256)
            elif kind == "insert":
                k = rng.randrange(12, len(data))
                data[k:k] = rng.randbytes(rng.randint(1, 8))
            else:
                data = data[: rng.randrange(13, len(data))]
        proto = RFBServerProtocol(settings)
        i = 0
        while i < len(data) and not proto.closed:
            n = rng.randint(1, 8)
            proto.receive_data(bytes(data[i : i + n]))  # must not raise
            i += n
            for event in proto.events_received():
                if isinstance(event, TLSRequested):
                    assert event.subtype == VeNCryptSubtype.X509_VNC
                    tls += 1
                    proto.accept_tls()
                    proto.tls_started()
                elif isinstance(event, AuthRequested):
                    assert proto.security_type == SecurityType.VNC_AUTH or proto.vencrypt_subtype == 261
                    proto.accept_auth()
            proto.data_to_send()
        if proto.closed:
            closed += 1
            assert proto.close_reason
    assert closed > 300 and tls > 100, (closed, tls)  # both ways out were taken many times


async def test_a_crowd_of_bad_clients_leaves_a_good_one_served(caplog: pytest.LogCaptureFixture) -> None:
    """120 bad clients over TCP and 40 through the WebSocket bridge, in batches, while a good one keeps
    taking updates."""
    caplog.set_level(logging.INFO)
    rng = random.Random(7)
    source = PushSource(width=100, height=80)
    source.push(np.zeros((80, 100, 3), np.uint8))

    async def bad_client(port: int, data: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(0, len(data), 100):
                writer.write(data[i : i + 100])
                await writer.drain()
            await asyncio.wait_for(reader.read(1 << 16), 0.2)  # whatever the server says, then hang up
        except (OSError, TimeoutError):
            pass
        writer.close()

    async def bad_browser(port: int, data: bytes) -> None:
        """The same through the WebSocket bridge: binary messages of the stream, some of them text."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        try:
            async with connect(f"ws://127.0.0.1:{port}/websockify", subprotocols=["binary"]) as ws:  # type: ignore[list-item]
                for i in range(0, len(data), 100):
                    chunk = data[i : i + 100]
                    await ws.send(chunk.decode("latin-1") if rng.random() < 0.1 else chunk)
                await asyncio.wait_for(ws.recv(), 0.2)
        except (OSError, TimeoutError, WebSocketException):
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web_port = int(s.getsockname()[1])
    async with Server(ServerConfig(port=0, web_port=web_port), source=source) as server:
        good = await RFBClient.connect("127.0.0.1", server.port)
        good.set_encodings([0])
        good.request()
        await good.read_update()
        for batch in range(8):
            await asyncio.gather(*(bad_client(server.port, mutated(rng)) for _ in range(15)))
            await asyncio.gather(*(bad_browser(web_port, mutated(rng)) for _ in range(5)))
            frame = np.random.default_rng(batch).integers(0, 256, (80, 100, 3), dtype=np.uint8)
            source.push(frame)
            good.request(incremental=True)
            await asyncio.wait_for(good.read_update(), 10)
            assert np.array_equal(good.fb, frame)
        await good.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any("closing:" in r.getMessage() for r in caplog.records)  # the bad ones were told why
