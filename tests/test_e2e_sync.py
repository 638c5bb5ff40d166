"""Over a real socket: what the server sends while a client changes state with an update being encoded, the
way TigerVNC's viewer switches pixel format under continuous updates (Fence with SyncNext carrying the new
format, then SetPixelFormat; it decodes in the new format from the fence's answer on), and stops continuous
updates (EndOfContinuousUpdates marks the last of them). The encoder is slowed down so that the client's
messages always land mid-encode; the frames are decoded with the reference decoder, switching format where
the client would."""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest
from refdecoders import RefDecoder
from rfbclient import RFBClient

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.select import EncoderSelector
from pyvnc.protocol.constants import Encoding
from pyvnc.protocol.pixelformat import PixelFormat, converter_for, decode_pixels

W, H = 96, 64
FENCE_REQUEST, FENCE_SYNC_NEXT = 1 << 31, 1 << 2
BGR233 = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)


def picture(seed: int) -> np.ndarray:
    """Blocks of a few colours: ZRLE palettes and runs."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(colours[rng.integers(0, 5, (H // 8, W // 8))], 8, 0), 8, 1))


def shown(pf: PixelFormat, rgb: np.ndarray) -> np.ndarray:
    bgrx = np.zeros((H, W, 4), np.uint8)
    bgrx[..., :3] = rgb[..., ::-1]
    return decode_pixels(pf, converter_for(pf).convert(bgrx), W, H)


class Reader:
    """Server messages in order: ("update", [rects]) with rectangles kept whole for decoding, ("eocu",) and
    ("fence", flags, payload); the server's own fence requests are answered as a client must."""

    def __init__(self, client: RFBClient) -> None:
        self.client = client
        self.bpp = 4

    async def message(self) -> tuple[object, ...]:
        c = self.client
        (mtype,) = await c.read(1)
        if mtype == 0:
            (n,) = struct.unpack(">xH", await c.read(3))
            rects = []
            for _ in range(n):
                header = await c.read(12)
                _x, _y, w, h, enc = struct.unpack(">HHHHi", header)
                if enc == Encoding.ZRLE:
                    size = await c.read(4)
                    body = size + await c.read(struct.unpack(">I", size)[0])
                elif enc == Encoding.RAW:
                    body = await c.read(w * h * self.bpp)
                else:
                    raise AssertionError(f"unexpected rectangle encoding {enc}")
                rects.append(header + body)
            return ("update", rects)
        if mtype == 150:
            return ("eocu",)
        if mtype == 248:
            flags, length = struct.unpack(">3xIB", await c.read(8))
            payload = await c.read(length)
            if flags & FENCE_REQUEST:  # the server's pacing fence: answer it
                c.writer.write(struct.pack(">B3xIB", 248, flags & ~FENCE_REQUEST, length) + payload)
            return ("fence", flags, payload)
        raise AssertionError(f"unexpected server message {mtype}")

    async def until(self, done: object, timeout: float = 10.0) -> list[tuple[object, ...]]:
        """Messages up to and including the first for which ``done(message)`` is true."""
        seen: list[tuple[object, ...]] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(self.message(), max(0.1, deadline - time.monotonic()))
            seen.append(msg)
            if done(msg):  # type: ignore[operator]
                return seen


@pytest.fixture
def slow_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    original = EncoderSelector.encode

    def slow(self: EncoderSelector, job: EncodeJob, **options: bool) -> tuple[frozenset[int], list[bytes]]:
        time.sleep(0.3)
        return original(self, job, **options)

    monkeypatch.setattr(EncoderSelector, "encode", slow)


async def start(source: PushSource, preferred: int = Encoding.ZRLE) -> tuple[Server, RFBClient, Reader, RefDecoder]:
    """A server, a client that has the first update (decoded) and has turned continuous updates on."""
    server = Server(ServerConfig(port=0, web_port=0), source=source)
    await server.start()
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.set_encodings([preferred, Encoding.RAW, Encoding.CONTINUOUS_UPDATES, Encoding.FENCE])
    client.request()
    reader = Reader(client)
    assert client.pf is not None
    decoder = RefDecoder(client.pf, W, H)
    first = (await reader.until(lambda m: m[0] == "update"))[-1]
    decoder.decode(b"".join(first[1]))  # type: ignore[arg-type]
    assert np.array_equal(decoder.fb, shown(client.pf, picture(1)))
    client.writer.write(struct.pack(">BBHHHH", 150, 1, 0, 0, W, H))  # EnableContinuousUpdates
    return server, client, reader, decoder


async def test_sync_next_fence_switches_pixel_format_between_updates(slow_encoder: None) -> None:
    """The fence comes while nothing is being encoded, SetPixelFormat only once an update (32 bpp ZRLE, which
    cannot be thrown away: its stream moved on) is being encoded. The answer must come after that update and
    before any update in the new format; answered at once, the 32 bpp update would follow it."""
    source = PushSource(width=W, height=H)
    source.push(picture(1))
    server, client, reader, decoder = await start(source)
    try:
        client.writer.write(struct.pack(">B3xIB", 248, FENCE_REQUEST | FENCE_SYNC_NEXT, 2) + b"pf")
        await asyncio.sleep(0.2)
        source.push(picture(2))  # an update starts encoding, in 32 bpp
        await asyncio.sleep(0.1)
        client.set_pixel_format(BGR233)
        await asyncio.sleep(0.5)
        source.push(picture(3))  # sent in 8 bpp
        answer = None
        while True:
            msg = await reader.message()
            if msg[0] == "fence" and msg[2] == b"pf":
                answer = msg
                decoder.pf, decoder.bpp = BGR233, 1  # the client decodes in the new format from here
                decoder.cpixel = decoder._cpixel_layout()
                reader.bpp = 1
            elif msg[0] == "update":
                decoder.decode(b"".join(msg[1]))  # type: ignore[arg-type]
                if answer is None:
                    assert np.array_equal(decoder.fb, shown(decoder.pf, picture(2))), "the 32 bpp update"
                elif np.array_equal(decoder.fb, shown(BGR233, picture(3))):
                    break
        assert answer is not None and not answer[1] & FENCE_REQUEST
    finally:
        await client.close()
        await server.close_and_wait()


async def test_end_of_continuous_updates_follows_the_update_being_encoded(slow_encoder: None) -> None:
    source = PushSource(width=W, height=H)
    source.push(picture(1))
    server, client, reader, _decoder = await start(source)
    try:
        await asyncio.sleep(0.2)
        source.push(picture(2))
        await asyncio.sleep(0.1)  # being encoded now
        client.writer.write(struct.pack(">BBHHHH", 150, 0, 0, 0, W, H))  # DisableContinuousUpdates
        seen = await reader.until(lambda m: m[0] == "eocu")
        assert [m[0] for m in seen if m[0] != "fence"] == ["update", "eocu"], seen
        # and nothing more without a request
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.message(), 0.8)
    finally:
        await client.close()
        await server.close_and_wait()


async def test_no_update_after_continuous_updates_stop_while_one_is_thrown_away(slow_encoder: None) -> None:
    """TigerVNC's way of switching pixel format, then stopping continuous updates, while a Raw update (which is
    thrown away and made anew on a format change) is being encoded: after EndOfContinuousUpdates nothing comes
    unasked (rfbproto: only in answer to requests from then on); the client's next request gets the picture
    in the new format."""
    source = PushSource(width=W, height=H)
    source.push(picture(1))
    server, client, reader, _decoder = await start(source, preferred=Encoding.RAW)
    try:
        await asyncio.sleep(0.2)
        source.push(picture(2))
        await asyncio.sleep(0.1)  # being encoded now, in 32 bpp
        client.writer.write(struct.pack(">B3xIB", 248, FENCE_REQUEST | FENCE_SYNC_NEXT, 2) + b"pf")
        client.set_pixel_format(BGR233)
        client.writer.write(struct.pack(">BBHHHH", 150, 0, 0, 0, W, H))  # DisableContinuousUpdates
        seen = await reader.until(lambda m: m[0] == "eocu")
        seen += await reader.until(lambda m: m[0] == "fence" and m[2] == b"pf")
        assert [m[0] for m in seen if m[0] != "fence"] == ["eocu"], seen  # the 32 bpp update was dropped
        reader.bpp = 1
        with pytest.raises(TimeoutError):  # and nothing comes unasked
            await asyncio.wait_for(reader.message(), 0.8)
        client.request()
        update = await reader.until(lambda m: m[0] == "update")
        decoder = RefDecoder(BGR233, W, H)
        decoder.decode(b"".join(update[-1][1]))  # type: ignore[arg-type]
        assert np.array_equal(decoder.fb, shown(BGR233, picture(2)))
    finally:
        await client.close()
        await server.close_and_wait()


async def test_cursor_of_a_thrown_away_update_is_made_anew_in_the_new_format(slow_encoder: None) -> None:
    """A client that changes its pixel format with a request outstanding (rfbproto says it must not; pyvnc
    copes) while an update with a new cursor shape is being encoded: the update is thrown away and sent again
    in the new format, its Cursor rectangle (pixels in the client's format) made anew, not resent as it was."""
    from pyvnc.capture.cursor import CursorImage

    source = PushSource(width=W, height=H)
    source.push(picture(1))
    server = Server(ServerConfig(port=0, web_port=0), source=source)
    await server.start()
    client = await RFBClient.connect("127.0.0.1", server.port)
    try:
        client.set_encodings([Encoding.RAW, Encoding.CURSOR])
        client.request()
        await client.read_update()
        assert server.hub is not None
        rgba = np.zeros((4, 4, 4), np.uint8)
        rgba[..., 0] = 255
        rgba[..., 3] = 255
        server.hub.set_cursor(CursorImage(4, 4, 1, 1, 0, rgba))
        source.push(picture(2))
        client.request(incremental=True)
        await asyncio.sleep(0.1)  # the update with the cursor is being encoded in 32 bpp
        client.set_pixel_format(BGR233)
        client.request()
        for _ in range(5):
            update = await asyncio.wait_for(client.read_update(), 5)
            if np.array_equal(client.fb, shown(BGR233, picture(2))) and client.cursor is not None:
                break
        assert client.cursor is not None and len(client.cursor[4]) == 4 * 4  # one byte a pixel
        assert np.array_equal(client.fb, shown(BGR233, picture(2))), update.rects
    finally:
        await client.close()
        await server.close_and_wait()
