"""Input end to end: real clients over RFB → pyvnc → XTEST → an X program that records what it receives."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rfbclient import RFBClient
from xhelpers import Recorder

from pyvnc import Server, ServerConfig
from pyvnc.capture.cursor import cursor_bounds
from pyvnc.capture.x11 import X11Source

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")

VNCDO = str(Path(sys.executable).with_name("vncdo"))


@pytest.fixture
async def server(display: str, recorder: Recorder) -> AsyncIterator[Server]:
    """A server on the module's display; the X event recorder's window is on it too (so captures show it)."""
    recorder.clear()
    async with Server(ServerConfig(port=0, web_port=0), source=X11Source(display)) as srv:
        yield srv


async def vncdo(port: int, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        VNCDO, "-s", f"127.0.0.1::{port}", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()


async def typed_text(recorder: Recorder, count: int) -> str:
    events = await asyncio.to_thread(recorder.typed, count, 10)
    return "".join(e["text"] for e in events)


async def test_vncdotool_typing_arrives(server: Server, recorder: Recorder) -> None:
    text = "Hello, World! 42 ~#"
    await vncdo(server.port, "type", text)
    assert await typed_text(recorder, len(text)) == text
    # non-ASCII Latin-1: vncdotool sends the code point, which is the Latin-1 keysym
    await vncdo(server.port, "type", "éßü")
    assert await typed_text(recorder, 3) == "éßü"


async def test_unicode_keysym_and_function_keys(server: Server, recorder: Recorder) -> None:
    client = await RFBClient.connect("127.0.0.1", server.port)
    for keysym in (0x010020AC, 0x0100263A, 0xFFC2, 0xFF0D):  # €, ☺, F5, Return
        client.key(keysym, True)
        client.key(keysym, False)
    await client.writer.drain()
    events = await asyncio.to_thread(recorder.typed, 4, 10)
    assert [e["keysym"] for e in events] == [0x20AC, 0x0100263A, 0xFFC2, 0xFF0D]
    assert events[0]["text"] == "€"
    await client.close()


async def test_clicks_drags_and_wheel_land_exactly(server: Server, recorder: Recorder) -> None:
    def buttons(count: int) -> list[dict[str, int]]:
        return recorder.collect(lambda e: e["type"] == "button", count, 10)

    await vncdo(server.port, "move", "123", "77", "click", "1")
    got = await asyncio.to_thread(buttons, 2)
    assert [(e["button"], e["down"], e["x"], e["y"]) for e in got] == [(1, True, 123, 77), (1, False, 123, 77)]
    await vncdo(server.port, "move", "10", "20", "mousedown", "3", "move", "300", "200", "mouseup", "3")
    got = await asyncio.to_thread(buttons, 2)
    assert [(e["button"], e["down"], e["x"], e["y"]) for e in got] == [(3, True, 10, 20), (3, False, 300, 200)]
    for wheel in (4, 5, 6, 7):
        await vncdo(server.port, "move", "50", "60", "click", str(wheel))
        got = await asyncio.to_thread(buttons, 2)
        assert [(e["button"], e["x"], e["y"]) for e in got] == [(wheel, 50, 60), (wheel, 50, 60)]


async def test_held_keys_released_when_client_leaves(server: Server, recorder: Recorder) -> None:
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.key(ord("q"), True)
    client.pointer(5, 5, 1)
    await client.writer.drain()
    await asyncio.to_thread(recorder.collect, lambda e: e["type"] == "key" and e["keysym"] == ord("q"), 1, 10)
    await client.close()
    released = await asyncio.to_thread(
        recorder.collect,
        lambda e: (
            (e["type"] == "key" and e["keysym"] == ord("q") and not e["down"])
            or (e["type"] == "button" and not e["down"])
        ),
        2,
        10,
    )
    assert len(released) == 2


CAPS_LOCK = 0xFFE5


async def test_led_state_follows_the_desktop(server: Server, recorder: Recorder) -> None:
    """QEMU LED State: the LEDs in the first update, and again in the next update each time they change on the
    X server (here Caps Lock pressed by another client); a client that did not ask gets none."""
    watcher = await RFBClient.connect("127.0.0.1", server.port)
    other = await RFBClient.connect("127.0.0.1", server.port)
    typist = await RFBClient.connect("127.0.0.1", server.port)
    try:
        watcher.set_encodings([0, -261])
        other.set_encodings([0])
        for client in (watcher, other):
            client.request(incremental=False)
        await watcher.read_update()
        await other.read_update()
        assert len(watcher.leds) == 1 and other.leds == []
        base = watcher.leds[0]

        async def next_leds(count: int) -> list[int]:
            while len(watcher.leds) < count:
                watcher.request(incremental=True)
                await asyncio.wait_for(watcher.read_update(), 10)
            return watcher.leds

        for expected in (base ^ 0b100, base):  # Caps Lock on, then off again
            typist.key(CAPS_LOCK, True)
            typist.key(CAPS_LOCK, False)
            await typist.writer.drain()
            leds = await next_leds(len(watcher.leds) + 1)
            assert leds[-1] == expected
        other.request(incremental=False)
        await other.read_update()
        assert other.leds == []
    finally:
        for client in (watcher, other, typist):
            await client.close()


async def test_extended_mouse_buttons_back_and_forward(server: Server, recorder: Recorder) -> None:
    """ExtendedMouseButtons: confirmed with an empty rectangle, then back (8) and forward (9) from the extra
    byte reach the X program as buttons 8 and 9, and one still held when the client leaves is released."""
    client = await RFBClient.connect("127.0.0.1", server.port)
    try:
        client.set_encodings([0, -316])
        client.request(incremental=False)
        await client.read_update()
        assert -316 in client.confirmed
        for bit, button in ((7, 8), (8, 9)):
            client.extended_pointer(40, 30, 1 << bit)
            client.extended_pointer(40, 30, 0)
            await client.writer.drain()
            got = await asyncio.to_thread(recorder.collect, lambda e: e["type"] == "button", 2, 10)
            assert [(e["button"], e["down"], e["x"], e["y"]) for e in got] == [
                (button, True, 40, 30),
                (button, False, 40, 30),
            ]
        # held forward button, then the client leaves: it is released
        client.extended_pointer(41, 31, 1 << 8)
        await client.writer.drain()
        got = await asyncio.to_thread(recorder.collect, lambda e: e["type"] == "button", 1, 10)
        assert (got[0]["button"], got[0]["down"]) == (9, True)
    finally:
        await client.close()
    got = await asyncio.to_thread(recorder.collect, lambda e: e["type"] == "button", 1, 10)
    assert (got[0]["button"], got[0]["down"]) == (9, False)


def xclip(display: str, *args: str, data: bytes | None = None) -> bytes:
    env = dict(os.environ, DISPLAY=display)
    return subprocess.run(["xclip", *args], input=data, env=env, capture_output=True, timeout=10, check=True).stdout


@pytest.mark.skipif(shutil.which("xclip") is None, reason="xclip is not installed")
async def test_vncdotool_legacy_cut_text_both_ways(server: Server, display: str, tmp_path: Path) -> None:
    """vncdotool speaks only legacy (Latin-1) cut text: what it pastes lands in the X CLIPBOARD, and text
    copied in X reaches it as ServerCutText, Latin-1 encoded."""
    text = "héllo wörld, ßüé"
    pasted = tmp_path / "paste.txt"
    pasted.write_text(text, encoding="utf-8")
    await vncdo(server.port, "pastefile", str(pasted))
    for _ in range(100):
        if await asyncio.to_thread(xclip, display, "-o", "-selection", "clipboard") == text.encode():
            break
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(xclip, display, "-o", "-selection", "clipboard") == text.encode()

    receiver = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("vncdo_clipboard.py")),
        str(server.port),
        "1",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert receiver.stdout is not None
    ready = await asyncio.wait_for(receiver.stdout.readline(), 30)
    assert ready.strip() == b"ready", ready
    copied = "copied in X: grüße"
    owner = subprocess.Popen(
        ["xclip", "-quiet", "-selection", "clipboard", "-i"],
        env=dict(os.environ, DISPLAY=display),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert owner.stdin is not None
        owner.stdin.write(copied.encode())
        owner.stdin.close()
        out, _ = await asyncio.wait_for(receiver.communicate(), 30)
    finally:
        owner.terminate()
        owner.wait(5)
    assert receiver.returncode == 0, out.decode(errors="replace")
    assert out.decode().strip().splitlines()[-1] == repr(copied)


async def test_several_vncdotool_clients_at_once(server: Server, recorder: Recorder, tmp_path: Path) -> None:
    """Four vncdotool processes at once: three capture the screen while one types; all succeed, the captures
    equal the X screen (outside the pointer, which vncdotool may or may not have drawn yet), and the typing
    arrives in order."""
    text = "several at once"
    captures = [tmp_path / f"cap{i}.png" for i in range(3)]
    await asyncio.gather(*(vncdo(server.port, "capture", str(c)) for c in captures), vncdo(server.port, "type", text))
    assert await typed_text(recorder, len(text)) == text
    hub = server.hub
    assert hub is not None
    want = np.ascontiguousarray(hub.frame[..., 2::-1])
    # the pointer is drawn into the pictures (by the server or by vncdotool): compare everywhere else
    outside = np.ones(want.shape[:2], dtype=np.bool_)
    if hub.cursor is not None and hub.pointer is not None:
        box = cursor_bounds(hub.cursor, *hub.pointer, want.shape[1], want.shape[0])
        if box is not None:
            outside[box.y : box.bottom, box.x : box.right] = False
    pictures = [np.asarray(Image.open(c).convert("RGB")) for c in captures]
    for got in pictures:
        assert got.shape == want.shape
        assert np.array_equal(got[outside], want[outside])
