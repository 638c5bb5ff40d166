"""A real X display (Xvfb) served end to end: pixels equal an mss grab, changes reach the client, and the
X server going away ends the server cleanly."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rfbclient import RFBClient
from xhelpers import RootPainter, grab, xvfb_process

from pyvnc import Server, ServerConfig
from pyvnc.capture.cursor import CursorImage, CursorWatcher, paint_cursor
from pyvnc.capture.x11 import X11Source
from pyvnc.errors import CaptureError

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")


@pytest.fixture
def xvfb() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with xvfb_process() as x:
        yield x.proc, x.display


async def test_client_frame_equals_mss_grab_and_changes_arrive(xvfb: tuple[subprocess.Popen[bytes], str]) -> None:
    _proc, display = xvfb
    painter = RootPainter(display)
    painter.rect(0, 0, 640, 480, 0x336699)
    async with Server(ServerConfig(port=0, web_port=0, max_fps=240), source=X11Source(display)) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0, -239])  # the client draws the cursor: the framebuffer is the bare screen
        client.request()
        await client.read_update()
        assert np.array_equal(client.fb, grab(display))
        rng = np.random.default_rng(5)
        # hundreds of one-pixel and glyph-sized drawings anywhere on screen: every one must reach the client
        for i in range(200):
            w, h = (1, 1) if i % 2 else (int(rng.integers(5, 10)), int(rng.integers(9, 16)))
            x, y = int(rng.integers(0, 641 - w)), int(rng.integers(0, 481 - h))
            painter.rect(x, y, w, h, int(rng.integers(0, 1 << 24)))
            expected = grab(display)
            for _ in range(5):  # a cursor-shape update may come first
                client.request(incremental=True)
                update = await asyncio.wait_for(client.read_update(), 5)
                if np.array_equal(client.fb, expected):
                    break
            assert np.array_equal(client.fb, expected), (i, x, y, w, h)
            # damage is tight: the update covers the drawing, not a band of the screen
            area = sum(rw * rh for _x, _y, rw, rh, enc in update.rects if enc >= 0)
            assert area <= max(w * h, 1) * 4, update.rects
        painter.close()
        await client.close()


async def test_scrolling_arrives_as_copyrect(xvfb: tuple[subprocess.Popen[bytes], str]) -> None:
    _proc, display = xvfb
    painter = RootPainter(display)
    painter.text_window()
    async with Server(ServerConfig(port=0, web_port=0), source=X11Source(display)) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([1, 0, -239])
        client.request()
        await client.read_update()
        for step in range(5):
            painter.scroll_window(step)
            expected = grab(display)
            got_copy = False
            for _ in range(5):
                client.request(incremental=True)
                update = await asyncio.wait_for(client.read_update(), 5)
                got_copy = got_copy or any(r[4] == 1 for r in update.rects)
                if np.array_equal(client.fb, expected):
                    break
            assert np.array_equal(client.fb, expected), step
            assert got_copy, update.rects
            raw_area = sum(r[2] * r[3] for r in update.rects if r[4] == 0)
            assert raw_area < 560 * 380 // 2, update.rects  # only the exposed strip travels as pixels
        await client.close()
    painter.close()


def pointer_scene(display: str, rgb: int, x: int, y: int) -> tuple[RootPainter, np.ndarray]:
    """A one-colour X screen with the pointer at (x, y): the painter, and a grab of the screen (RGB), which
    has no pointer in it."""
    painter = RootPainter(display)
    painter.rect(0, 0, 640, 480, rgb)
    painter.d.screen().root.warp_pointer(x, y)
    painter.d.sync()
    return painter, grab(display)


def current_shape(display: str) -> CursorImage:
    """The pointer's shape now, as the X server gives it."""
    watcher = CursorWatcher(display)
    shape = watcher.current()
    watcher.close()
    assert shape is not None and shape.width > 0
    return shape


def painted(screen: np.ndarray, shape: CursorImage, x: int, y: int) -> np.ndarray:
    """``screen`` (RGB) with ``shape`` painted at the pointer (x, y), as the server paints it in."""
    bgrx = np.zeros((*screen.shape[:2], 4), np.uint8)
    bgrx[..., :3] = screen[..., ::-1]
    return np.ascontiguousarray(paint_cursor(bgrx, shape, x, y)[..., 2::-1])


async def test_cursor_shape_sent_or_painted(xvfb: tuple[subprocess.Popen[bytes], str]) -> None:
    _proc, display = xvfb
    painter, bare = pointer_scene(display, 0x202020, 200, 150)
    shape = current_shape(display)
    async with Server(ServerConfig(port=0, web_port=0), source=X11Source(display)) as server:
        # a client that draws cursors gets the shape with its hotspot, and a framebuffer without it
        drawer = await RFBClient.connect("127.0.0.1", server.port)
        drawer.set_encodings([0, -314, -239])
        drawer.request()
        for _ in range(10):
            await asyncio.wait_for(drawer.read_update(), 5)
            if drawer.cursor is not None:
                break
            drawer.request(incremental=True)
        assert drawer.cursor is not None
        x, y, w, h, rgba, _mask = drawer.cursor
        assert (x, y, w, h) == (shape.hot_x, shape.hot_y, shape.width, shape.height)
        assert len(rgba) == w * h * 4
        assert np.array_equal(drawer.fb, bare)
        # a client that cannot draw it sees it painted in at the pointer
        plain = await RFBClient.connect("127.0.0.1", server.port)
        plain.request()
        expected = painted(bare, shape, 200, 150)
        for _ in range(20):
            await asyncio.wait_for(plain.read_update(), 5)
            if np.array_equal(plain.fb, expected):
                break
            plain.request(incremental=True)
        assert np.array_equal(plain.fb, expected)
        # the pointer moves: its old area is restored and it is painted at the new place, over the frame
        painter.d.screen().root.warp_pointer(330, 260)
        painter.d.sync()
        moved = painted(bare, shape, 330, 260)
        await plain.update_until(moved, tries=40)
        await drawer.close()
        await plain.close()
    painter.close()


async def test_cursor_switched_between_painted_and_drawn(xvfb: tuple[subprocess.Popen[bytes], str]) -> None:
    """A client that starts drawing the cursor itself mid-session (SetEncodings with a cursor pseudo-encoding)
    gets the area under the painted one back bare, with nothing changing on the screen; one that stops
    drawing it gets it painted in again."""
    _proc, display = xvfb
    painter, bare = pointer_scene(display, 0x305070, 250, 180)
    with_pointer = painted(bare, current_shape(display), 250, 180)
    assert not np.array_equal(with_pointer, bare)
    async with Server(ServerConfig(port=0, web_port=0), source=X11Source(display)) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0])
        client.request()
        await asyncio.wait_for(client.read_update(), 5)
        if not np.array_equal(client.fb, with_pointer):
            await client.update_until(with_pointer, tries=40)
        client.set_encodings([0, -239])  # from now on it draws the cursor
        await client.update_until(bare, tries=40)
        assert client.cursor is not None
        client.set_encodings([0])  # and now it does not
        await client.update_until(with_pointer, tries=40)
        await client.close()
    painter.close()


async def test_cursor_shape_changes_reach_drawing_and_painted_clients(
    xvfb: tuple[subprocess.Popen[bytes], str],
) -> None:
    """The pointer takes another shape (a font cursor set on the root window, as over a text field): a client
    that draws cursors gets the new shape, and one that does not sees the new shape painted in."""
    _proc, display = xvfb
    painter, bare = pointer_scene(display, 0x305070, 250, 180)
    async with Server(ServerConfig(port=0, web_port=0), source=X11Source(display)) as server:
        drawer = await RFBClient.connect("127.0.0.1", server.port)
        drawer.set_encodings([0, -239])
        plain = await RFBClient.connect("127.0.0.1", server.port)
        plain.set_encodings([0])
        for client in (drawer, plain):
            client.request()
            await asyncio.wait_for(client.read_update(), 5)
        for _ in range(20):
            if drawer.cursor is not None and np.array_equal(drawer.fb, bare):
                break
            drawer.request(incremental=True)
            await asyncio.wait_for(drawer.read_update(), 5)
        first = drawer.cursor
        assert first is not None and np.array_equal(drawer.fb, bare)
        font = painter.d.open_font("cursor")
        xterm = font.create_glyph_cursor(font, 152, 153, (0, 0, 0), (65535, 65535, 65535))  # XC_xterm
        painter.root.change_attributes(cursor=xterm)
        painter.d.sync()
        shape = current_shape(display)
        for _ in range(40):
            if drawer.cursor is not None and drawer.cursor != first:
                break
            drawer.request(incremental=True)
            await asyncio.wait_for(drawer.read_update(), 5)
        assert drawer.cursor is not None and drawer.cursor[:4] == (shape.hot_x, shape.hot_y, shape.width, shape.height)
        assert np.array_equal(drawer.fb, bare)
        await plain.update_until(painted(bare, shape, 250, 180), tries=40)
        await drawer.close()
        await plain.close()
    painter.close()


async def test_x_server_going_away_ends_serving(xvfb: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, display = xvfb
    server = Server(ServerConfig(port=0, web_port=0), source=X11Source(display))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):
        try:
            port = server.port
            break
        except RuntimeError:
            await asyncio.sleep(0.05)
    client = await RFBClient.connect("127.0.0.1", port)
    client.request()
    await client.read_update()
    proc.kill()
    proc.wait(5)
    client.request(incremental=True)
    with pytest.raises(CaptureError):
        await asyncio.wait_for(task, 15)

    async def until_eof() -> None:
        while await client.reader.read(65536):
            pass

    await asyncio.wait_for(until_eof(), 5)  # the server closed the connection


def send_set_desktop_size(client: RFBClient, w: int, h: int) -> None:
    """SetDesktopSize (rfbproto 7.5.9) for one screen of w × h, then an incremental update request."""
    import struct

    msg = bytes([251, 0]) + struct.pack(">HHBx", w, h, 1) + struct.pack(">IHHHHI", 0, 0, 0, w, h, 0)
    client.writer.write(msg)
    client.request(incremental=True)


async def desktop_size_answer(client: RFBClient) -> tuple[int, int, int, int, int]:
    """The next ExtendedDesktopSize rectangle (x = reason, y = status, w, h, encoding), asking again as needed."""
    for _ in range(10):
        update = await asyncio.wait_for(client.read_update(), 10)
        eds = [r for r in update.rects if r[4] == -308]
        if eds:
            return eds[0]
        client.request(incremental=True)
    raise AssertionError("no ExtendedDesktopSize answer")


@pytest.mark.skipif(shutil.which("xrandr") is None, reason="xrandr is not installed")
async def test_set_desktop_size_resizes_managed_xvfb_and_xrandr_changes_reach_clients() -> None:

    from pyvnc.capture.xvfb import XvfbSource

    source = XvfbSource(640, 480)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        asker = await RFBClient.connect("127.0.0.1", server.port)
        other = await RFBClient.connect("127.0.0.1", server.port)
        for c in (asker, other):
            c.set_encodings([0, -308, -239])  # clients draw the cursor: frames are the bare screen
            c.request()
            await c.read_update()
            assert (c.width, c.height) == (640, 480)
        send_set_desktop_size(asker, 800, 600)
        other.request(incremental=True)
        assert (await desktop_size_answer(asker))[:4] == (1, 0, 800, 600)  # reason: this client, status: no error
        assert (asker.width, asker.height) == (800, 600)
        for _ in range(10):
            await asyncio.wait_for(other.read_update(), 10)
            if (other.width, other.height) == (800, 600):
                break
            other.request(incremental=True)
        assert (other.width, other.height) == (800, 600)
        assert source.display is not None
        # beyond the maximum: out of resources, nothing changes
        send_set_desktop_size(asker, 9000, 600)
        assert (await desktop_size_answer(asker))[:2] == (1, 2)
        assert np.array_equal(asker.fb, grab(source.display))
        await asker.close()
        await other.close()


async def test_vncdotool_capture_equals_mss_grab(xvfb: tuple[subprocess.Popen[bytes], str], tmp_path: Path) -> None:
    """vncdotool asks for the Cursor pseudo-encoding, so its picture is the bare screen, as mss grabs it."""
    _proc, display = xvfb
    painter = RootPainter(display)
    rng = np.random.default_rng(3)
    for _ in range(50):
        painter.rect(int(rng.integers(0, 600)), int(rng.integers(0, 440)), 40, 30, int(rng.integers(0, 1 << 24)))
    painter.close()
    async with Server(ServerConfig(port=0, web_port=0), source=X11Source(display)) as server:
        out = tmp_path / "cap.png"
        vncdo = str(Path(sys.executable).with_name("vncdo"))
        proc = await asyncio.create_subprocess_exec(
            vncdo,
            "-s",
            f"127.0.0.1::{server.port}",
            "capture",
            str(out),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        text, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, text
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), grab(display))


@pytest.mark.skipif(shutil.which("xrandr") is None, reason="xrandr is not installed")
async def test_set_desktop_size_is_grabbed_at_the_new_size_without_a_damage_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After resizing its Xvfb, the source reconnects and grabs at the new size by itself: it does not rely on
    a damage report to learn the new geometry (here no report ever tells it)."""

    from pyvnc.capture.xdamage import DamageWatcher
    from pyvnc.capture.xvfb import XvfbSource

    original = DamageWatcher.take

    def blind(self: DamageWatcher) -> bool:
        dirty = original(self)
        self.root_size = None  # as if no report had come since the resize
        return dirty

    monkeypatch.setattr(DamageWatcher, "take", blind)
    source = XvfbSource(640, 480)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0, -308, -239])
        client.request()
        await client.read_update()
        send_set_desktop_size(client, 720, 400)
        assert (await desktop_size_answer(client))[:4] == (1, 0, 720, 400)  # this client, no error, the new size
        assert server.hub is not None and server.hub.size == (720, 400)
        await client.close()
