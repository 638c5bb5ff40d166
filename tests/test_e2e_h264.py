"""Open H.264 over a real socket: a server with ``h264`` on, and the test client (:mod:`rfbclient`) decoding
with libavcodec as the spec describes. The whole screen is one video context; the painted cursor goes over it
in another encoding; moved content is not sent as CopyRect; with ``h264`` off the server never sends it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from enc_content import corpus_available, corpus_frame
from h264view import IDR, OPEN_H264, RESET_ALL_CONTEXTS, SLICE, psnr
from rfbclient import RFBClient

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.capture.cursor import CursorImage, paint_cursor
from pyvnc.capture.scroll import Copy
from pyvnc.encoders.h264 import available
from pyvnc.protocol.pixelformat import PixelFormat
from pyvnc.region import Rect

pytestmark = [
    pytest.mark.skipif(not available(), reason="PyAV with libx264 is not installed"),
    pytest.mark.skipif(not corpus_available(), reason="corpus images not available"),
]

W, H = 640, 360
COPY_RECT, RAW = 1, 0


def picture(y: int = 300, x: int = 400) -> np.ndarray:
    """RGB of a piece of the corpus web page (text and pictures)."""
    return np.ascontiguousarray(corpus_frame("webpage")[y : y + H, x : x + W, 2::-1])


async def video_client(port: int) -> RFBClient:
    """A client that lists H.264 first (then Raw, and no cursor pseudo-encoding) and has asked for the whole
    screen."""
    client = await RFBClient.connect("127.0.0.1", port)
    client.set_encodings([OPEN_H264, RAW])
    client.request(incremental=False)
    return client


def painted(rgb: np.ndarray, cursor: CursorImage, x: int, y: int) -> np.ndarray:
    bgrx = np.zeros((*rgb.shape[:2], 4), np.uint8)
    bgrx[..., :3] = rgb[..., ::-1]
    return paint_cursor(bgrx, cursor, x, y)[..., 2::-1]


async def test_video_with_the_painted_cursor_over_it() -> None:
    """A client listing H.264 first, and no cursor pseudo-encoding: each update is one H.264 rectangle of the
    whole screen and then the painted cursor's area in Raw, exact, over the video. Changes come as P-frames
    and show; where the pointer was, the video shows the content again."""
    arrow = CursorImage(12, 18, 1, 1, 0, np.random.default_rng(4).integers(0, 256, (18, 12, 4), dtype=np.uint8))
    source = PushSource(width=W, height=H)
    rgb = picture()
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source) as server:
        assert server.hub is not None
        server.hub.set_cursor(arrow)
        server.hub.set_pointer(100, 80)
        client = await video_client(server.port)
        update = await client.read_update()
        area = server.hub.cursor_area()
        assert area is not None
        assert update.rects == [(0, 0, W, H, OPEN_H264), (*area, RAW)]
        first = client.h264.shown[-1]
        assert first.flags == RESET_ALL_CONTEXTS and IDR in first.nal_types
        want = painted(rgb, arrow, 100, 80)
        assert psnr(client.fb, want) >= 30
        ax, ay, aw, ah = area
        assert np.array_equal(client.fb[ay : ay + ah, ax : ax + aw], want[ay : ay + ah, ax : ax + aw])

        # a change elsewhere: a P-frame of the whole screen, and the cursor again on top
        rgb = rgb.copy()
        rgb[200:260, 300:420] = (200, 30, 30)
        source.push(rgb, [(300, 200, 120, 60)])  # away from the cursor
        await asyncio.sleep(0.1)
        client.request(incremental=True)
        update = await client.read_update()
        # the frame repaints the whole screen, so the cursor comes again though nothing changed under it
        assert update.rects == [(0, 0, W, H, OPEN_H264), (*area, RAW)]
        assert np.array_equal(client.fb[ay : ay + ah, ax : ax + aw], want[ay : ay + ah, ax : ax + aw])
        assert client.h264.shown[-1].nal_types == [SLICE] and client.h264.shown[-1].flags == 0
        assert np.abs(client.fb[210:250, 310:410].reshape(-1, 3).mean(axis=0) - (200, 30, 30)).max() <= 6
        assert psnr(client.fb, painted(rgb, arrow, 100, 80)) >= 30

        # the pointer moves away: the old place shows the content, from the video
        server.hub.set_pointer(500, 250)
        client.request(incremental=True)
        await client.read_update()
        old = (slice(ay, ay + ah), slice(ax, ax + aw))
        assert psnr(client.fb[old], rgb[old]) >= 30
        assert psnr(client.fb, painted(rgb, arrow, 500, 250)) >= 30
        await client.close()


async def test_moved_content_goes_in_the_video_not_as_copyrect() -> None:
    """CopyRect listed too: content moved on screen is still sent in the next H.264 frame (which redraws the
    whole context from the client's decoder, so a copy first would be wasted)."""
    source = PushSource(width=W, height=H)
    rgb = picture()
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source) as server:
        assert server.hub is not None
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([OPEN_H264, COPY_RECT, RAW, -239])
        client.request(incremental=False)
        await client.read_update()
        scrolled = picture(y=340)  # the page 40 rows further down
        frame = np.zeros((H, W, 4), np.uint8)
        frame[..., :3] = scrolled[..., ::-1]
        server.hub.publish(frame, [Rect(0, H - 40, W, 40)], [Copy(Rect(0, 0, W, H - 40), 0, 40)])
        client.request(incremental=True)
        update = await client.read_update()
        assert [r[4] for r in update.rects] == [OPEN_H264]
        assert psnr(client.fb, scrolled) >= 30
        await client.close()


async def test_a_while_in_16_bits_then_video_again() -> None:
    """The client goes to 16 bits (no H.264 there: Raw), the screen changes, the client comes back to 32 bits
    and asks for small changes only: the next H.264 frame, in the same stream, shows the whole screen as it
    is now (the video's own last picture is long out of date)."""
    rgb565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
    true32 = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)
    source = PushSource(width=W, height=H)
    rgb = picture()
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_pixel_format(true32)
        client.set_encodings([OPEN_H264, RAW])
        client.request(incremental=False)
        await client.read_update()
        assert psnr(client.fb, rgb) >= 30
        client.set_pixel_format(rgb565)
        client.request(incremental=False)
        update = await client.read_update()
        assert {r[4] for r in update.rects} == {RAW}
        rgb = picture(y=600, x=900)  # a new screen, sent in Raw
        source.push(rgb)
        await asyncio.sleep(0.1)
        client.request(incremental=True)
        await client.read_update()
        assert psnr(client.fb, rgb) >= 35  # the new screen, in 16 bits
        client.set_pixel_format(true32)
        rgb = rgb.copy()
        rgb[50:70, 50:150] = (0, 0, 250)
        source.push(rgb, [(50, 50, 100, 20)])
        await asyncio.sleep(0.1)
        client.request(incremental=True)
        update = await client.read_update()
        assert [r[4] for r in update.rects] == [OPEN_H264] and client.h264.shown[-1].flags == 0
        assert psnr(client.fb, rgb) >= 30
        await client.close()


async def test_a_client_that_cannot_be_told_of_a_new_size_gets_video_of_its_own_size() -> None:
    """No DesktopSize pseudo-encoding: when the screen grows, the video stays the size the client knows
    (rfbproto forbids rectangles outside its framebuffer), showing the top-left of the new screen."""
    source = PushSource(width=W, height=H)
    source.push(picture())
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source) as server:
        client = await video_client(server.port)
        await client.read_update()
        bigger = np.ascontiguousarray(corpus_frame("photo")[100 : 100 + H + 120, 200 : 200 + W + 160, 2::-1])
        source.push(bigger)
        await asyncio.sleep(0.1)
        client.request(incremental=False)
        update = await client.read_update()
        assert update.rects == [(0, 0, W, H, OPEN_H264)]
        assert psnr(client.fb, bigger[:H, :W]) >= 30
        await client.close()


@pytest.mark.parametrize("encodings", [[OPEN_H264, COPY_RECT, RAW, -239], [COPY_RECT, RAW, -239]])
async def test_moved_content_beyond_the_known_framebuffer_is_clipped(encodings: list[int]) -> None:
    """A client that cannot be told of a bigger screen, with CopyRect listed: content moved on the grown
    (odd-width) screen, partly outside what the client knows, is clipped to its framebuffer, in video and in
    Raw alike (before, the H.264 encoder failed on it and Raw went outside the framebuffer)."""
    source = PushSource(width=W, height=H)
    source.push(picture())
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source) as server:
        assert server.hub is not None
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings(encodings)
        client.request(incremental=False)
        await client.read_update()
        grown = np.zeros((H + 41, W + 161, 4), np.uint8)
        grown[..., :3] = np.ascontiguousarray(corpus_frame("photo")[: H + 41, : W + 161, :3])
        server.hub.publish(grown)
        client.request(incremental=False)
        await client.read_update()
        moved = grown.copy()
        moved[0:40, 500:800] = grown[50:90, 300:600]  # from inside what the client knows to partly outside
        server.hub.publish(moved, [], [Copy(Rect(500, 0, 300, 40), 300, 50)])
        client.request(incremental=True)
        update = await client.read_update()
        assert all(x + w <= W and y + h <= H for x, y, w, h, _ in update.rects), update.rects
        assert psnr(client.fb, moved[:H, :W, 2::-1]) >= 30
        assert server.sessions and server.sessions[0].established  # still served
        await client.close()


async def test_a_new_quality_level_resends_a_still_screen() -> None:
    """The screen does not change, the client raises its quality level: the video starts over at once at the
    new level (before, the old quality stayed until something changed)."""
    source = PushSource(width=W, height=H)
    rgb = picture()
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([OPEN_H264, RAW, -32])  # quality level 0
        client.request(incremental=False)
        await client.read_update()
        low = psnr(client.fb, rgb)
        client.set_encodings([OPEN_H264, RAW, -23])  # quality level 9
        client.request(incremental=True)
        await asyncio.wait_for(client.read_update(), 5)
        shown = client.h264.shown[-1]
        assert shown.flags == RESET_ALL_CONTEXTS and IDR in shown.nal_types
        assert psnr(client.fb, rgb) > low + 5, (low, psnr(client.fb, rgb))
        assert server.sessions
        await client.close()


async def test_off_by_default_even_when_listed_first() -> None:
    source = PushSource(width=W, height=H)
    rgb = picture()
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        client = await video_client(server.port)
        update = await client.read_update()
        assert {r[4] for r in update.rects} == {RAW} and np.array_equal(client.fb, rgb)
        await client.close()


async def test_h264_on_without_libx264_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where PyAV lacks libx264, ``h264 = true`` cannot take effect: the server says so when it starts."""
    import pyvnc.server

    monkeypatch.setattr(pyvnc.server, "h264_available", lambda: False)
    source = PushSource(width=W, height=H)
    source.push(picture())
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source):
        pass
    assert any("H.264 is never sent" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_a_client_leaving_mid_encode_frees_the_encoder_before_memory_is_handed_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client hangs up while its frame is being encoded: the session's end waits for that encode (still
    holding the H.264 encoder in the pool) before dropping the encoders and handing memory back."""
    import threading
    import time

    import pyvnc.session
    from pyvnc.encoders.h264 import H264Encoder

    started, finished, released = threading.Event(), [], []
    encode = H264Encoder.encode

    def slow(self: H264Encoder, job: object) -> list[bytes]:
        started.set()
        time.sleep(0.5)
        out = encode(self, job)  # type: ignore[arg-type]
        finished.append(time.monotonic())
        return out

    def release() -> bool:
        released.append(time.monotonic())
        return True

    monkeypatch.setattr(H264Encoder, "encode", slow)
    monkeypatch.setattr(pyvnc.session, "release_free_memory", release)
    source = PushSource(width=W, height=H)
    source.push(picture())
    async with Server(ServerConfig(port=0, web_port=0, h264=True), source=source) as server:
        client = await video_client(server.port)
        await asyncio.to_thread(started.wait, 5)
        await client.close()  # while the frame is being encoded
        for _ in range(100):
            if released:
                break
            await asyncio.sleep(0.05)
        assert not server.sessions
    assert finished and released and released[0] >= finished[0]
