"""X11Source and XvfbSource against a real Xvfb (skipped when Xvfb is not installed)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import pyvnc
from pyvnc.capture import xvfb as xvfb_module
from pyvnc.capture.x11 import X11Source
from pyvnc.capture.xvfb import XvfbSource
from pyvnc.errors import CaptureError

if TYPE_CHECKING:
    from conftest import FakeSink

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _x(display: str, *args: str) -> str:
    return subprocess.run(
        args, env=dict(os.environ, DISPLAY=display), check=True, capture_output=True, text=True, timeout=10
    ).stdout


async def _wait_for_colour(src: X11Source, bgr: tuple[int, int, int], timeout: float = 5.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        frame = await asyncio.to_thread(src.grab)
        if np.all(frame[..., :3] == bgr):
            return frame
        if time.monotonic() > deadline:
            raise AssertionError(f"the display never turned {bgr}; corner pixel is {frame[0, 0]}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def xvfb(sink: FakeSink) -> AsyncIterator[XvfbSource]:
    src = XvfbSource(320, 240)
    await src.start(sink, max_fps=30)
    try:
        yield src
    finally:
        await src.stop()


@needs_xvfb
async def test_xvfb_starts_grabs_and_stops(sink: FakeSink, xvfb: XvfbSource) -> None:
    assert xvfb.display is not None and xvfb.display.startswith(":")
    pid = xvfb.xvfb_pid
    assert pid is not None and _alive(pid)
    assert xvfb.size == (320, 240)
    frame, rects = sink.published[0]
    assert rects is None and frame.shape == (240, 320, 4)
    assert xvfb.name.startswith("pyvnc on ") and xvfb.name.endswith(xvfb.display)
    _x(xvfb.display, "xsetroot", "-solid", "#ff0000")
    red = await _wait_for_colour(xvfb, (0, 0, 255))
    assert not red[..., 3].any(), "byte 3 must be 0"
    # the capture task publishes the change
    await sink.wait_for(2)
    assert np.all(sink.last[..., :3] == (0, 0, 255))
    display = xvfb.display
    await xvfb.stop()
    assert not _alive(pid)
    assert xvfb.display is None
    assert not os.path.exists(f"/tmp/.X11-unix/X{display[1:]}")


@needs_xvfb
async def test_x11_source_on_an_existing_display(xvfb: XvfbSource) -> None:
    assert xvfb.display is not None
    _x(xvfb.display, "xsetroot", "-solid", "#00ff00")
    src = X11Source(xvfb.display)
    try:
        frame = await _wait_for_colour(src, (0, 255, 0))
        assert frame.shape == (240, 320, 4)
        assert src.name.endswith(xvfb.display)
    finally:
        src.close_connections()


@needs_xvfb
async def test_x11_source_uses_display_env(xvfb: XvfbSource, monkeypatch: pytest.MonkeyPatch) -> None:
    assert xvfb.display is not None
    monkeypatch.setenv("DISPLAY", xvfb.display)
    src = X11Source()
    assert src.display == xvfb.display
    try:
        assert (await asyncio.to_thread(src.grab)).shape == (240, 320, 4)
    finally:
        src.close_connections()


@needs_xvfb
async def test_pointer_injection(xvfb: XvfbSource) -> None:
    assert xvfb.display is not None
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    xvfb.pointer_event(123, 45, 0)
    await asyncio.to_thread(xvfb.flush_input)  # input goes out on its own thread
    assert "x:123 y:45" in _x(xvfb.display, "xdotool", "getmouselocation")
    xvfb.pointer_event(7, 8, 0)
    await asyncio.to_thread(xvfb.flush_input)
    assert "x:7 y:8" in _x(xvfb.display, "xdotool", "getmouselocation")


async def test_missing_display_is_a_capture_error(sink: FakeSink) -> None:
    src = X11Source(":987")
    with pytest.raises(CaptureError, match="cannot open X display :987"):
        await src.start(sink, max_fps=30)
    assert sink.published == []


async def test_no_display_at_all(sink: FakeSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(CaptureError, match="DISPLAY"):
        await X11Source().start(sink, max_fps=30)


async def test_xvfb_not_installed(sink: FakeSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xvfb_module.shutil, "which", lambda name: None)
    with pytest.raises(CaptureError, match="apt-get install xvfb"):
        await XvfbSource(320, 240).start(sink, max_fps=30)


@needs_xvfb
async def test_session_command_runs_on_the_display_and_is_stopped(sink: FakeSink) -> None:
    src = XvfbSource(200, 100, run="sh -c 'xsetroot -solid \"#0000ff\"; exec sleep 60'")
    await src.start(sink, max_fps=30)
    try:
        session = src.session_pid
        xvfb_pid = src.xvfb_pid
        assert session is not None and xvfb_pid is not None and _alive(session)
        await _wait_for_colour(src, (255, 0, 0))
    finally:
        await src.stop()
    assert not _alive(session) and not _alive(xvfb_pid)


@needs_xvfb
async def test_requested_display_in_use(sink: FakeSink, xvfb: XvfbSource) -> None:
    assert xvfb.display is not None
    with pytest.raises(CaptureError, match="in use"):
        await XvfbSource(100, 100, display=xvfb.display).start(sink, max_fps=30)


@needs_xvfb
async def test_two_xvfb_sources_get_different_displays(sink: FakeSink, xvfb: XvfbSource) -> None:
    other = XvfbSource(100, 100)
    await other.start(sink, max_fps=30)
    try:
        assert other.display != xvfb.display
        assert other.size == (100, 100)
    finally:
        await other.stop()


@needs_xvfb
def test_xvfb_dies_with_a_killed_server(tmp_path: os.PathLike[str]) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from pyvnc.capture.xvfb import XvfbSource

        class Sink:
            def publish(self, frame, rects=None): pass
            def wants_frames(self): return False
            async def wait_for_demand(self): await asyncio.Event().wait()
            def set_desktop_name(self, name): pass

        async def main():
            src = XvfbSource(100, 100)
            await src.start(Sink(), 10)
            print(src.xvfb_pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    src_dir = str(Path(next(iter(pyvnc.__path__))).resolve().parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src_dir, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        assert _alive(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "Xvfb outlived the server that started it"
    finally:
        proc.kill()
        proc.wait()


@needs_xvfb
async def test_xvfb_name_is_announced_after_start(sink: FakeSink, xvfb: XvfbSource) -> None:
    assert sink.names == [xvfb.name]
    assert xvfb.display is not None and xvfb.name.endswith(xvfb.display)
    named = XvfbSource(100, 100, name="my desk")
    await named.start(sink, max_fps=30)
    try:
        assert named.name == "my desk"
        assert sink.names == [xvfb.name]
    finally:
        await named.stop()
