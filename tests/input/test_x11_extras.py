"""X11Source's desktop extras against a real Xvfb: clipboard both ways, bell, keyboard LEDs, QEMU scancodes.

Skipped when Xvfb (or xclip, for the clipboard tests) is not installed. One private Xvfb serves the module.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from xhelpers import Recorder

from pyvnc.capture.x11 import X11Source
from pyvnc.input import keysyms as ks
from pyvnc.input import xt
from pyvnc.input.x11 import X11InputSink

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
needs_xclip = pytest.mark.skipif(shutil.which("xclip") is None, reason="xclip is not installed")


class FakeSink:
    """The parts of the frame hub an X11Source talks to, recording what it is told."""

    def __init__(self) -> None:
        self.published = 0
        self.clipboards: list[str] = []
        self.bells = 0
        self.leds: list[int] = []

    def publish(self, frame: Any, rects: Any = None, copies: Any = ()) -> None:
        self.published += 1

    def wants_frames(self) -> bool:
        return False

    async def wait_for_demand(self) -> None:
        await asyncio.sleep(3600)

    def set_desktop_name(self, name: str) -> None:
        pass

    def fail(self, error: Exception) -> None:
        raise AssertionError(f"the source failed: {error}")

    def set_clipboard(self, text: str) -> None:
        self.clipboards.append(text)

    def bell(self) -> None:
        self.bells += 1

    def set_led_state(self, state: int) -> None:
        self.leds.append(state)

    def set_cursor(self, cursor: object) -> None:
        pass

    def set_pointer(self, x: int, y: int) -> None:
        pass

    def needs_pointer(self) -> bool:
        return False


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def source(display: str) -> AsyncIterator[tuple[X11Source, FakeSink]]:
    src = X11Source(display, max_clipboard_bytes=100_000)
    sink = FakeSink()
    await src.start(sink, 30)  # type: ignore[arg-type]
    try:
        yield src, sink
    finally:
        await src.stop()


def xclip_out(display: str, selection: str, target: str | None = None, check: bool = True) -> bytes:
    """The selection's contents as ``xclip -o`` reads them. With ``check`` False, a selection nobody owns yet
    (xclip exits 1) reads as empty, for polling."""
    args = ["xclip", "-selection", selection, "-o"] + (["-t", target] if target else [])
    env = dict(os.environ, DISPLAY=display)
    return subprocess.run(args, env=env, capture_output=True, timeout=10, check=check).stdout


class XclipOwner:
    """``xclip -i`` in the foreground (-quiet, no fork) owning a selection until closed."""

    def __init__(self, display: str, selection: str, data: bytes) -> None:
        self.proc = subprocess.Popen(
            ["xclip", "-quiet", "-selection", selection, "-i"],
            env=dict(os.environ, DISPLAY=display),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.close()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


# -- clipboard ---------------------------------------------------------------------------------------------------


@needs_xclip
async def test_client_text_is_pasteable_from_clipboard_and_primary(
    source: tuple[X11Source, FakeSink], display: str
) -> None:
    src, sink = source
    text = "héllo wörld € ✓\nsecond line"
    src.cut_text(text)
    for selection in ("clipboard", "primary"):
        deadline = time.monotonic() + 5
        while (out := await asyncio.to_thread(xclip_out, display, selection, None, False)) != text.encode():
            assert time.monotonic() < deadline, out
            await asyncio.sleep(0.02)
    targets = (await asyncio.to_thread(xclip_out, display, "clipboard", "TARGETS")).split()
    assert {b"UTF8_STRING", b"STRING", b"TEXT", b"TARGETS"} <= set(targets)
    assert await asyncio.to_thread(xclip_out, display, "clipboard", "STRING") == text.encode("latin-1", "replace")
    assert sink.clipboards == []  # our own text is not echoed to the clients


@needs_xclip
async def test_large_client_text_goes_incrementally(display: str) -> None:
    src = X11Source(display, max_clipboard_bytes=2_000_000)
    sink = FakeSink()
    await src.start(sink, 30)  # type: ignore[arg-type]
    try:
        text = "0123456789abcdef" * 40_000  # 640 kB: more than one X request holds, so INCR
        src.cut_text(text)
        deadline = time.monotonic() + 10
        while (out := await asyncio.to_thread(xclip_out, display, "clipboard", None, False)) != text.encode():
            assert time.monotonic() < deadline, len(out)
            await asyncio.sleep(0.05)
    finally:
        await src.stop()


@needs_xclip
async def test_text_copied_in_x_reaches_the_clients(source: tuple[X11Source, FakeSink], display: str) -> None:
    _, sink = source
    for selection, text in (("clipboard", "copied in X ✓"), ("primary", "selected in X")):
        owner = XclipOwner(display, selection, text.encode())
        try:
            await wait_until(lambda t=text: t in sink.clipboards, what=f"{selection} text")  # type: ignore[misc]
        finally:
            owner.close()


@needs_xclip
async def test_large_x_text_incrementally_and_above_the_limit(source: tuple[X11Source, FakeSink], display: str) -> None:
    _, sink = source
    # xclip sends anything above one request (~256 kB) with INCR: the limit of this source is 100 kB
    too_big = XclipOwner(display, "clipboard", b"x" * 300_000)
    try:
        fits = XclipOwner(display, "primary", b"fits")
        try:
            await wait_until(lambda: "fits" in sink.clipboards, what="the small text")
        finally:
            fits.close()
        await asyncio.sleep(0.3)
        assert all(len(t) <= 100_000 for t in sink.clipboards)
    finally:
        too_big.close()
    medium = "m" * 90_000
    owner = XclipOwner(display, "clipboard", medium.encode())
    try:
        await wait_until(lambda: medium in sink.clipboards, what="a 90 kB text")
    finally:
        owner.close()


async def test_incr_from_an_x_client(display: str) -> None:
    src = X11Source(display, max_clipboard_bytes=2_000_000)
    sink = FakeSink()
    await src.start(sink, 30)  # type: ignore[arg-type]
    try:
        if shutil.which("xclip") is None:
            pytest.skip("xclip is not installed")
        text = "I" * 700_000
        owner = XclipOwner(display, "clipboard", text.encode())
        try:
            await wait_until(lambda: text in sink.clipboards, timeout=10, what="a 700 kB INCR transfer")
        finally:
            owner.close()
    finally:
        await src.stop()


# -- bell and LEDs -----------------------------------------------------------------------------------------------


async def test_the_x_bell_reaches_the_sink(source: tuple[X11Source, FakeSink], display: str) -> None:
    from Xlib import display as xdisplay

    _, sink = source
    d = xdisplay.Display(display)
    try:
        d.bell(0)
        d.sync()
        await wait_until(lambda: sink.bells == 1, what="the bell")
    finally:
        d.close()


async def test_led_state_follows_caps_lock_and_num_lock(source: tuple[X11Source, FakeSink], display: str) -> None:
    src, sink = source
    injector = X11InputSink(display)
    try:

        def toggle(keysym: int) -> None:
            injector.key_event(keysym, True)
            injector.key_event(keysym, False)
            injector.flush()

        base = src.led_state()
        toggle(0xFFE5)  # Caps_Lock
        await wait_until(lambda: sink.leds[-1:] == [base ^ 0b100], what="the Caps Lock LED")
        assert src.led_state() == base ^ 0b100
        toggle(ks.NUM_LOCK)
        await wait_until(lambda: src.led_state() == base ^ 0b110, what="the Num Lock LED")
        toggle(0xFFE5)
        toggle(ks.NUM_LOCK)
        await wait_until(lambda: src.led_state() == base, what="the LEDs off again")
    finally:
        injector.close()


# -- QEMU extended key events (scancodes) -----------------------------------------------------------------------


def test_xt_table() -> None:
    assert xt.linux_code(0x1E) == 30  # A
    assert xt.evdev_keycode(0x1E) == 38
    assert xt.linux_code(0xCD) == 106  # E0 4D: Right
    assert xt.linux_code(0xC6) == 119  # Pause
    assert xt.linux_code(0x54) == xt.linux_code(0xB7) == 99  # SysRq / PrintScreen
    assert xt.linux_code(0x56) == 86  # ISO 102nd key
    assert xt.linux_code(0x9D) == 97 and xt.linux_code(0xB8) == 100  # right Ctrl, AltGr
    assert xt.linux_code(0xDB) == 125 and xt.linux_code(0xDD) == 127  # Super, Menu
    assert xt.linux_code(0x7F) is None
    assert len(set(xt.XT_TO_LINUX.values())) == len(xt.XT_TO_LINUX) - 1  # only 0x54 and 0xB7 share a code


def tap(sink: X11InputSink, scancode: int, keysym: int = 0) -> None:
    sink.scancode_event(scancode, keysym, True)
    sink.scancode_event(scancode, keysym, False)


def test_scancodes_type_letters_digits_and_shifted_keys(injector: X11InputSink, recorder: Recorder) -> None:
    for scancode in (0x1E, 0x30, 0x02, 0x0B, 0x39, 0x0C):  # a b 1 0 space -
        tap(injector, scancode)
    injector.scancode_event(0x2A, ks.SHIFT_L, True)  # Shift + a, Shift + 2
    tap(injector, 0x1E)
    tap(injector, 0x03)
    injector.scancode_event(0x2A, ks.SHIFT_L, False)
    injector.scancode_event(0x36, ks.SHIFT_R, True)  # right Shift + z
    tap(injector, 0x2C)
    injector.scancode_event(0x36, ks.SHIFT_R, False)
    injector.flush()
    got = recorder.typed(9)
    assert "".join(e["text"] for e in got) == "ab10 -A@Z"
    assert [e["keycode"] for e in got[:2]] == [38, 56]  # evdev keycodes: KEY_A + 8, KEY_B + 8


def test_scancodes_for_extended_keys_and_the_keypad(injector: X11InputSink, recorder: Recorder) -> None:
    # E0-prefixed: arrows, navigation block, keypad Enter and /, then the keypad digits with Num Lock on
    extended = [0xC8, 0xD0, 0xCB, 0xCD, 0xC7, 0xCF, 0xC9, 0xD1, 0xD2, 0xD3, 0x9C, 0xB5]
    for scancode in extended:
        tap(injector, scancode)
    tap(injector, 0x45)  # Num Lock on
    for scancode in (0x4F, 0x50, 0x51, 0x52):  # keypad 1 2 3 0
        tap(injector, scancode)
    tap(injector, 0x45)  # Num Lock off again
    injector.flush()
    got = recorder.typed(len(extended) + 4)  # Num Lock presses are modifiers: typed() skips them
    keysyms = [e["keysym"] for e in got]
    assert keysyms[: len(extended)] == [
        0xFF52,  # Up
        0xFF54,  # Down
        0xFF51,  # Left
        0xFF53,  # Right
        0xFF50,  # Home
        0xFF57,  # End
        0xFF55,  # Prior
        0xFF56,  # Next
        0xFF63,  # Insert
        0xFFFF,  # Delete
        0xFF8D,  # KP_Enter
        0xFFAF,  # KP_Divide
    ]
    assert keysyms[len(extended) :] == [0xFFB1, 0xFFB2, 0xFFB3, 0xFFB0]  # KP_1 KP_2 KP_3 KP_0


def test_unknown_scancodes_fall_back_to_the_keysym(injector: X11InputSink, recorder: Recorder) -> None:
    tap(injector, 0x7F, ord("q"))  # no key in the table: the keysym decides
    tap(injector, 0, ord("w"))  # scancode 0: a client that did not know it
    injector.flush()
    assert [e["text"] for e in recorder.typed(2)] == ["q", "w"]


def test_release_all_releases_scancode_keys(injector: X11InputSink, recorder: Recorder) -> None:
    injector.scancode_event(0x2A, ks.SHIFT_L, True)
    injector.scancode_event(0x1E, ord("A"), True)
    injector.release_all()
    injector.flush()
    events = recorder.collect(lambda e: e["type"] == "key", 4)
    assert [(e["keycode"], e["down"]) for e in events] == [(50, True), (38, True), (50, False), (38, False)] or {
        (e["keycode"], e["down"]) for e in events
    } == {(50, True), (38, True), (50, False), (38, False)}
