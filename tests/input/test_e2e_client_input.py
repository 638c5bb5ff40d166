"""Input end to end: real clients over RFB → pyvnc → XTEST → an X program that records what it receives."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from rfbclient import RFBClient
from test_x11_input import Recorder, private_xvfb

from pyvnc import Server, ServerConfig
from pyvnc.capture.x11 import X11Source

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")

VNCDO = str(Path(sys.executable).with_name("vncdo"))


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with private_xvfb() as name:
        yield name


@pytest.fixture(scope="module")
def recorder(display: str) -> Iterator[Recorder]:
    rec = Recorder(display)
    try:
        yield rec
    finally:
        rec.close()


@pytest.fixture
async def server(display: str, recorder: Recorder) -> AsyncIterator[Server]:
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
