"""TigerVNC's viewer and pyvnc's extensions: continuous updates with fences (the viewer turns them on by
itself), SetDesktopSize resizing a managed Xvfb, and the extended clipboard in both directions."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_tigervnc_viewer import HEIGHT, WIDTH, corpus_crop, run_viewer, viewer_display  # noqa: F401
from xhelpers import grab

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.capture.xvfb import XvfbSource

pytestmark = pytest.mark.skipif(
    shutil.which("vncviewer") is None or shutil.which("Xvfb") is None or shutil.which("xclip") is None,
    reason="TigerVNC's vncviewer, Xvfb or xclip is not installed",
)


def xclip(display: str, *args: str, text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["xclip", "-display", display, "-selection", "clipboard", *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=10,
    )


@pytest.mark.skipif(shutil.which("xrandr") is None, reason="xrandr is not installed")
async def test_viewer_resizes_managed_xvfb_to_its_screen(viewer_display: str, tmp_path: Path) -> None:  # noqa: F811
    source = XvfbSource(800, 600)
    async with (
        Server(ServerConfig(port=0, web_port=0), source=source) as server,
        run_viewer(viewer_display, server.port, tmp_path / "home", "-RemoteResize=1") as viewer,
    ):
        deadline = time.monotonic() + 15
        while source.size != (WIDTH, HEIGHT) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert source.size == (WIDTH, HEIGHT)  # the viewer asked for its full-screen size
        assert source.display is not None
        await viewer.wait_exact(await asyncio.to_thread(grab, source.display))
        session = server.sessions[0]
        assert session.protocol.continuous  # the viewer turned continuous updates on
        assert session.pacer.min_rtt is not None  # and fences came back


async def test_clipboard_both_ways(viewer_display: str, tmp_path: Path) -> None:  # noqa: F811
    received: list[str] = []
    source = PushSource(width=WIDTH, height=HEIGHT, on_clipboard=received.append)
    frame = corpus_crop("terminal")
    source.push(frame)
    async with (
        Server(ServerConfig(port=0, web_port=0), source=source) as server,
        run_viewer(viewer_display, server.port, tmp_path / "home") as viewer,
    ):
        await viewer.wait_exact(frame)
        # the viewer's desktop → pyvnc
        text = "from the viewer: grüße ☺\nsecond line"
        setter = subprocess.Popen(
            ["xclip", "-display", viewer_display, "-selection", "clipboard", "-i", "-loops", "3"],
            stdin=subprocess.PIPE,
            text=True,
        )
        assert setter.stdin is not None
        setter.stdin.write(text)
        setter.stdin.close()
        deadline = time.monotonic() + 15
        while text not in received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        setter.kill()
        assert text in received
        # pyvnc → the viewer's desktop
        assert server.hub is not None
        server.hub.set_clipboard("from pyvnc: ünïcode ✓")
        deadline = time.monotonic() + 15
        got = ""
        while time.monotonic() < deadline:
            got = (await asyncio.to_thread(xclip, viewer_display, "-o")).stdout
            if got == "from pyvnc: ünïcode ✓":
                break
            await asyncio.sleep(0.1)
        assert got == "from pyvnc: ünïcode ✓"
        assert np.array_equal(await viewer.grab(), frame)
    _ = os
