"""Browser sessions end to end: our noVNC page in Debian's Chromium, driven by playwright."""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pyvnc import DemoSource, PushSource, Server, ServerConfig

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
    pytest.mark.skipif(
        not (ROOT / "web" / "node_modules" / "@novnc" / "novnc" / "core" / "rfb.js").exists(),
        reason="noVNC is not installed in web/ (scripts/setup installs it)",
    ),
]

playwright_api = pytest.importorskip("playwright.async_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        await b.close()


async def open_page(browser: Any, url: str, **context: Any) -> Any:
    ctx = await browser.new_context(viewport={"width": 1100, "height": 800}, **context)
    page = await ctx.new_page()
    await page.goto(url)
    return page


async def wait_status(page: Any, text: str, timeout: float = 15000) -> str:
    await page.wait_for_function(
        "t => document.getElementById('status').textContent.includes(t)", arg=text, timeout=timeout
    )
    return str(await page.text_content("#status"))


async def canvas_rgb(page: Any) -> np.ndarray:
    url = await page.evaluate("document.querySelector('#screen canvas').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


async def wait_canvas_equals(page: Any, expected: np.ndarray, timeout: float = 10) -> np.ndarray:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await canvas_rgb(page)
        if got.shape == expected.shape and np.array_equal(got, expected):
            return got
        if loop.time() > deadline:
            return got
        await asyncio.sleep(0.2)


def rgb_of(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame[..., 2::-1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


async def wait_canvas_close(page: Any, expected: np.ndarray, db: float = 30, timeout: float = 10) -> float:
    """Wait until the canvas is within ``db`` PSNR of ``expected`` (lossy Tight JPEG); return the PSNR."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await canvas_rgb(page)
        value = psnr(got, expected) if got.shape == expected.shape else 0.0
        if value >= db or loop.time() > deadline:
            return value
        await asyncio.sleep(0.2)


def few_colour_frame(h: int, w: int, seed: int = 11) -> np.ndarray:
    """Desktop-like content with few colours (windows, text-like strokes): Tight sends it losslessly."""
    rng = np.random.default_rng(seed)
    frame = np.full((h, w, 3), (40, 70, 120), np.uint8)
    frame[40 : h - 40, 60 : w - 60] = (235, 235, 235)
    frame[40:64, 60 : w - 60] = (30, 90, 160)
    glyphs = rng.random((h - 120, w - 140)) < 0.25
    text = frame[80 : h - 40, 70 : w - 70]
    text[glyphs] = (20, 20, 20)
    return frame


async def test_page_connects_and_canvas_equals_frame(browser: Any) -> None:
    """noVNC asks for Tight with quality 6: few-colour content arrives losslessly, pixel for pixel."""
    web = free_port()
    source = PushSource(width=640, height=400)
    expected = few_colour_frame(400, 640)
    source.push(expected)
    async with Server(ServerConfig(port=0, web_port=web), source=source) as server:
        page = await open_page(browser, f"http://127.0.0.1:{web}/")
        await wait_status(page, "Connected")
        got = await wait_canvas_equals(page, expected)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected)
        assert len(server.sessions) == 1
        await page.context.close()
        for _ in range(50):  # a browser that leaves leaves nothing behind
            if not server.sessions:
                break
            await asyncio.sleep(0.1)
        assert server.sessions == []


async def test_password_prompt_typing_clicks_and_clipboard(browser: Any) -> None:
    web = free_port()
    keys: list[tuple[int, bool]] = []
    pointer: list[tuple[int, int, int]] = []
    clip: list[str] = []
    source = PushSource(
        width=600,
        height=300,
        on_key=lambda k, d: keys.append((k, d)),
        on_pointer=lambda x, y, b: pointer.append((x, y, b)),
        on_clipboard=clip.append,
    )
    frame = np.zeros((300, 600, 3), np.uint8)
    frame[:, :, 1] = np.arange(600, dtype=np.uint16)[None, :] % 256
    source.push(frame)
    async with Server(ServerConfig(port=0, web_port=web, password="letmein"), source=source):
        page = await open_page(browser, f"http://127.0.0.1:{web}/")
        await page.wait_for_selector("#password-form:not([hidden])", timeout=15000)
        await page.fill("#password", "letmein")
        await page.click("#password-form button")
        await wait_status(page, "Connected")
        assert await wait_canvas_close(page, frame) >= 30  # a gradient: sent as Tight JPEG

        # typing reaches the server as keysyms
        canvas = page.locator("#screen canvas")
        await canvas.click(position={"x": 10, "y": 10})
        await page.keyboard.type("Hi!")
        for _ in range(50):
            if (ord("!"), False) in keys:
                break
            await asyncio.sleep(0.1)
        downs = [k for k, d in keys if d]
        assert [k for k in downs if k in (ord("H"), ord("i"), ord("!"))] == [ord("H"), ord("i"), ord("!")]

        # a click lands where it was made: the page scales the desktop to the window, so aim at the middle
        # of desktop pixel (123, 77) on the scaled canvas
        box = await canvas.bounding_box()
        assert box is not None
        sx, sy = box["width"] / 600, box["height"] / 300
        pointer.clear()
        await page.mouse.click(box["x"] + 123.5 * sx, box["y"] + 77.5 * sy)
        for _ in range(50):
            if any(b == 1 for _x, _y, b in pointer) and pointer[-1][2] == 0:
                break
            await asyncio.sleep(0.1)
        presses = [(x, y) for x, y, b in pointer if b == 1]
        assert presses and presses[0] == (123, 77)

        # noVNC's clipboard reaches the server
        await page.click("#clipboard-toggle")
        await page.fill("#clipboard", "from the browser")
        await page.click("#clipboard-send")
        for _ in range(50):
            if clip:
                break
            await asyncio.sleep(0.1)
        assert clip == ["from the browser"]


async def test_photo_arrives_as_tight_jpeg_above_30_db(browser: Any) -> None:
    photo = ROOT.parent / "shared" / "corpus" / "photo.png"
    if not photo.exists():  # shared/ sits beside the checkout; /work/shared is its usual place here
        photo = Path("/work/shared/corpus/photo.png")
    if not photo.exists():
        pytest.skip("the corpus is not beside the checkout")
    rgb = np.asarray(Image.open(photo).convert("RGB"))[200:740, 300:1260]
    web = free_port()
    source = PushSource(width=rgb.shape[1], height=rgb.shape[0])
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=web), source=source) as server:
        page = await open_page(browser, f"http://127.0.0.1:{web}/")
        await wait_status(page, "Connected")
        value = await wait_canvas_close(page, rgb, db=30)
        assert value >= 30, value
        got = await canvas_rgb(page)
        assert not np.array_equal(got, rgb)  # lossy indeed: it went as JPEG
        assert server.sessions[0].encoders.encoding_for(server.sessions[0].protocol.pixel_format) == 7


async def test_h264_video_in_the_browser_when_the_server_allows_it(
    browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``h264`` on, noVNC (which lists Open H.264 first where WebCodecs decodes it) gets the screen as
    H.264 video, decoded by Chromium's own decoder: the canvas shows the page at 30 dB or better, and a change
    arrives as a later frame of the same stream."""
    from pyvnc.encoders.h264 import H264Encoder, available

    if not available():
        pytest.skip("PyAV with libx264 is not installed")
    flags: list[int] = []
    encode = H264Encoder.encode

    def spy(self: H264Encoder, job: Any) -> list[bytes]:
        out = encode(self, job)
        flags.extend(int.from_bytes(r[16:20], "big") for r in out)
        return out

    monkeypatch.setattr(H264Encoder, "encode", spy)
    page_png = ROOT.parent / "shared" / "corpus" / "webpage.png"
    if not page_png.exists():
        page_png = Path("/work/shared/corpus/webpage.png")
    if not page_png.exists():
        pytest.skip("the corpus is not beside the checkout")
    rgb = np.asarray(Image.open(page_png).convert("RGB"))[200:740, 300:1260].copy()
    web = free_port()
    source = PushSource(width=rgb.shape[1], height=rgb.shape[0])
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=web, h264=True), source=source) as server:
        page = await open_page(browser, f"http://127.0.0.1:{web}/")
        await wait_status(page, "Connected")
        value = await wait_canvas_close(page, rgb, db=30)
        assert value >= 30, value
        session = server.sessions[0]
        assert session.encoders.encoding_for(session.protocol.pixel_format) == 50
        assert flags and flags[0] == 2  # the stream began with ResetAllContexts
        rgb[100:180, 200:500] = (30, 160, 60)
        source.push(rgb)
        value = await wait_canvas_close(page, rgb, db=30)
        got = await canvas_rgb(page)
        assert value >= 30, value
        assert np.abs(got[110:170, 210:490].reshape(-1, 3).mean(axis=0) - (30, 160, 60)).max() <= 6
        assert len(flags) >= 2 and set(flags[1:]) == {0}  # later frames of the same stream
        await page.context.close()


async def test_compression_changed_mid_session(browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """noVNC's compression setting changed while connected (it sends SetEncodings again): the server carries
    its Tight zlib streams on at each new level with freshly primed deflaters, and noVNC's inflaters (pako)
    read on: every picture exact. (That the level takes effect is shown byte by byte in tests/encoders.)"""
    from pyvnc.encoders.tightzlib import ZStreams

    primed: list[int] = []  # levels of the deflaters that took a stream over
    fresh = ZStreams._fresh

    def spy(self: ZStreams, level: int, window: bytes) -> Any:
        primed.append(level)
        return fresh(self, level, window)

    monkeypatch.setattr(ZStreams, "_fresh", spy)
    web = free_port()
    source = PushSource(width=640, height=400)
    source.push(few_colour_frame(400, 640))
    async with Server(ServerConfig(port=0, web_port=web), source=source) as server:
        page = await open_page(browser, f"http://127.0.0.1:{web}/")
        await wait_status(page, "Connected")
        assert np.array_equal(await wait_canvas_equals(page, few_colour_frame(400, 640)), few_colour_frame(400, 640))
        session = server.sessions[0]
        for i, level in enumerate((9, 0, 5, 1, 9)):
            await page.evaluate(f"window.pyvnc.rfb.compressionLevel = {level}")
            for _ in range(50):
                if session.encoders.compress == level:
                    break
                await asyncio.sleep(0.05)
            assert session.encoders.compress == level
            frame = few_colour_frame(400, 640, seed=20 + i)
            source.push(frame)
            assert np.array_equal(await wait_canvas_equals(page, frame), frame), level
        assert len(set(primed)) >= 2, primed  # the streams went on at more than one new level
        await page.context.close()


async def test_wrong_password_shows_error(browser: Any) -> None:
    web = free_port()
    source = PushSource(width=64, height=64)
    async with Server(ServerConfig(port=0, web_port=web, password="right"), source=source):
        page = await open_page(browser, f"http://127.0.0.1:{web}/?password=wrong")
        text = await wait_status(page, "Security failure", timeout=20000)
        assert "Authentication failed" in text


async def test_wss_with_self_signed_certificate(browser: Any, self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    web = free_port()
    source = DemoSource(320, 200, animate=False)
    config = ServerConfig(port=0, web_port=web, cert=str(cert), key=str(key))
    async with Server(config, source=source) as server:
        page = await open_page(browser, f"https://127.0.0.1:{web}/", ignore_https_errors=True)
        await wait_status(page, "Connected")
        assert server.hub is not None
        expected = rgb_of(server.hub.frame)
        assert await wait_canvas_close(page, expected) >= 30
        assert await page.evaluate("location.protocol") == "https:"


async def test_foreign_origin_refused_and_missing_novnc_message(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    web = free_port()
    source = PushSource(width=8, height=8)
    async with Server(ServerConfig(port=0, web_port=web), source=source):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{web}/websockify", origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
        async with connect(f"ws://127.0.0.1:{web}/websockify", subprotocols=["binary"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "binary"
            assert await ws.recv() == b"RFB 003.008\n"


async def test_page_without_novnc_says_how_to_install(tmp_path: Path) -> None:
    """With web/node_modules missing, the server still serves RFB and the page names the fix in one line."""
    import urllib.request

    from pyvnc.web import WebListener

    async def handle(stream: Any) -> None:  # no WebSocket clients in this test
        stream.close()

    (tmp_path / "index.html").write_text("<!doctype html><p>page")
    listener = WebListener(ServerConfig(port=0, web_port=free_port()), handle, web_root=tmp_path)
    await listener.start()
    try:
        port = listener.addresses[0][1]
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/").read().decode())
        assert "noVNC is not installed" in body and "scripts/setup" in body
    finally:
        listener.close()
        await listener.wait_closed()


def x_screen_size(display: str) -> tuple[int, int]:
    """The X screen's size as the X server reports it (xdpyinfo's "dimensions")."""
    out = subprocess.run(
        ["xdpyinfo", "-display", display], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    w, h = out.split("dimensions:", 1)[1].split()[0].split("x")
    return int(w), int(h)


@pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xrandr") is None or shutil.which("xdpyinfo") is None,
    reason="Xvfb, xrandr or xdpyinfo is not installed",
)
async def test_resize_remote_makes_the_virtual_display_fit_the_window(browser: Any) -> None:
    """``/?resize=remote``: noVNC (resizeSession) sends SetDesktopSize for its element's size; the managed Xvfb
    really takes that size, and follows when the window is resized."""
    from pyvnc.capture.xvfb import XvfbSource

    web = free_port()
    source = XvfbSource(640, 480)
    async with Server(ServerConfig(port=0, web_port=web), source=source) as server:
        assert source.display is not None
        page = await open_page(browser, f"http://127.0.0.1:{web}/?resize=remote")
        await wait_status(page, "Connected")
        for viewport in ({"width": 1100, "height": 800}, {"width": 900, "height": 640}):
            await page.set_viewport_size(viewport)
            box = await page.evaluate(
                "(() => { const r = document.getElementById('screen').getBoundingClientRect();"
                " return [Math.floor(r.width), Math.floor(r.height)]; })()"
            )
            want = (int(box[0]), int(box[1]))
            assert want[0] <= viewport["width"] and want[1] < viewport["height"]  # the bar takes some height
            for _ in range(100):
                if server.hub is not None and server.hub.size == want:
                    break
                await asyncio.sleep(0.1)
            assert server.hub is not None and server.hub.size == want
            assert await asyncio.to_thread(x_screen_size, source.display) == want
            for _ in range(50):  # the canvas follows
                size = await page.evaluate(
                    "[document.querySelector('#screen canvas').width, document.querySelector('#screen canvas').height]"
                )
                if tuple(size) == want:
                    break
                await asyncio.sleep(0.1)
            assert tuple(size) == want
        await page.context.close()


@pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("setxkbmap") is None, reason="Xvfb or setxkbmap is not installed"
)
async def test_novnc_types_by_key_position_with_qemu_key_events(browser: Any) -> None:
    """noVNC sends QEMU Extended Key Events once the server confirms them: the X server gets the key's
    position, not its symbol. With a German layout on the X side, the keys where a US keyboard has Z and Y
    type y and z — which keysym-only typing (z, y) could never produce."""
    from xhelpers import Recorder, private_xvfb

    from pyvnc.capture.x11 import X11Source

    web = free_port()
    with private_xvfb() as display:
        subprocess.run(["setxkbmap", "-display", display, "de"], check=True, timeout=30)
        recorder = Recorder(display)
        try:
            async with Server(ServerConfig(port=0, web_port=web), source=X11Source(display)):
                page = await open_page(browser, f"http://127.0.0.1:{web}/")
                await wait_status(page, "Connected")
                recorder.clear()
                # until the server's confirmation of QEMU key events reaches noVNC, keys go as keysyms (z)
                for _ in range(20):
                    await page.keyboard.press("KeyZ")
                    (event,) = await asyncio.to_thread(recorder.typed, 1, 10)
                    if event["text"] == "y":
                        break
                assert event["text"] == "y"
                for code in ("KeyY", "Digit1", "KeyZ"):
                    await page.keyboard.press(code)
                events = await asyncio.to_thread(recorder.typed, 3, 10)
                assert [e["text"] for e in events] == ["z", "1", "y"]
                await page.context.close()
        finally:
            recorder.close()
