"""End to end with gtk-vnc (Debian ``gvncviewer``), the VNC widget of virt-viewer, virt-manager and GNOME Boxes.

gtk-vnc offers Tight first (with JPEG quality level 5), then ZRLE, Hextile, RRE, CopyRect and Raw, and the
DesktopSize, WMVi, cursor and extended key event pseudo-encodings; its Tight decoder is its own, written in C
(JPEG through gdk-pixbuf). ``gvncviewer`` shows the remote desktop in a window under a menu bar: the picture is
found in a grab of its private Xvfb as the rows under the menu bar that start with the expected picture's top
row. Text must arrive pixel-exact; photographs, which go as JPEG at level 5, at 30 dB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from viewerhelpers import (
    CHANGED_AREAS,
    HEIGHT,
    WIDTH,
    Frame,
    Viewer,
    corpus_crop,
    psnr,
    requires,
    serve,
    small_changes,
    viewer_process,
)
from xhelpers import private_xvfb

from pyvnc.protocol.constants import Encoding

pytestmark = requires("gvncviewer", "gtk-vnc's viewer")

#: the display is bigger than the remote desktop: a menu bar sits above the picture, and desktops grow
SCREEN = (1024, 768)
#: the picture starts at most this many rows down (under the menu bar)
MAX_TOP = 80


@pytest.fixture(scope="module")
def viewer_display() -> Iterator[str]:
    with private_xvfb(f"{SCREEN[0]}x{SCREEN[1]}x24", "-br") as display:
        yield display


def under_menu_bar(grab: Frame, want: Frame) -> Frame:
    """The rows of ``grab`` at the left edge that show the remote desktop: they start at the row (of the first
    :data:`MAX_TOP`) most like ``want``'s top row, and are ``want``'s size."""
    h, w = want.shape[:2]
    if grab.shape[0] < h or grab.shape[1] < w:
        return grab
    tops = grab[: min(MAX_TOP, grab.shape[0] - h + 1), :w].astype(np.int16)
    top = int(np.argmin(np.abs(tops - want[0].astype(np.int16)).sum(axis=(1, 2))))
    return grab[top : top + h, :w]


@asynccontextmanager
async def run_viewer(display: str, port: int, home: Path) -> AsyncIterator[Viewer]:
    """Start ``gvncviewer`` against 127.0.0.1 (it takes a display number: the port less 5900)."""
    async with viewer_process(["gvncviewer", f"127.0.0.1:{port - 5900}"], display, home, under_menu_bar) as viewer:
        yield viewer


@pytest.mark.parametrize(
    ("image", "exact"), [("terminal", True), ("webpage", True), ("desktop", False), ("photo", False)]
)
async def test_tight_shows_text_exactly_and_photographs_as_jpeg(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, image: str, exact: bool
) -> None:
    frame = corpus_crop(image)
    server, _source = serve(frame)
    async with server, run_viewer(viewer_display, server.port, tmp_path / "home") as viewer:
        if exact:
            await viewer.wait_exact(frame)
        else:
            got = await viewer.wait_settled(frame, min_psnr=30.0)
            assert not np.array_equal(got, frame)  # JPEG: lossy, yet close
            assert psnr(got, frame) >= 30.0
    assert set(used_encodings) == {Encoding.TIGHT}, used_encodings


async def test_updates_and_a_desktop_resize_on_one_connection(
    viewer_display: str, used_encodings: list[int], tmp_path: Path
) -> None:
    """New pictures, small changes, and a desktop that grows and shrinks back (DesktopSize: gtk-vnc takes the
    new size and asks for the whole new desktop), one after another on one connection and its Tight
    streams."""
    first = corpus_crop("webpage")
    server, source = serve(first)
    async with server, run_viewer(viewer_display, server.port, tmp_path / "home") as viewer:
        await viewer.wait_exact(first)
        second = corpus_crop("terminal", x=900, y=500)
        source.push(second)
        await viewer.wait_exact(second)
        third = small_changes(second, corpus_crop("webpage", x=1000, w=40, h=17))
        source.push(third, rects=CHANGED_AREAS)
        await viewer.wait_exact(third)
        # gvncviewer keeps its window and scales a bigger desktop down into it: close to a smooth downscale
        # (the picture of the old size, or an unscaled corner of the new, is at about 13 dB)
        bigger = corpus_crop("webpage", x=100, y=200, w=WIDTH + 160, h=HEIGHT + 120)
        source.push(bigger)
        await viewer.wait_settled(downscaled(bigger, WIDTH, HEIGHT), min_psnr=25.0)
        # back to the window's size: exact again
        last = corpus_crop("terminal", x=100, y=50)
        source.push(last)
        await viewer.wait_exact(last)
    assert set(used_encodings) == {Encoding.TIGHT}, used_encodings


def downscaled(frame: Frame, w: int, h: int) -> Frame:
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))


NSS_WRAPPER = Path("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so")


@pytest.mark.skipif(not NSS_WRAPPER.exists(), reason="nss_wrapper (Debian libnss-wrapper) is not installed")
async def test_tls_x509none_through_gtk_vncs_own_gnutls(
    viewer_display: str, tmp_path: Path, self_signed: tuple[Path, Path]
) -> None:
    """TLS on the RFB port with gtk-vnc's VeNCrypt (GnuTLS, another TLS stack than TigerVNC's use of it and
    Python's): rfb_tls = "require" offers X509None alone; gtk-vnc checks the certificate against the CA in
    the user's ``~/.pki/CA/cacert.pem`` and the host name, and shows the desktop exactly. gtk-vnc finds that
    home through getpwuid, not $HOME, so nss_wrapper (the cwrap project's test tool) gives it one here."""
    import os

    from pyvnc import PushSource, Server, ServerConfig

    cert, key = self_signed
    home = tmp_path / "home"
    (home / ".pki" / "CA").mkdir(parents=True)
    (home / ".pki" / "CA" / "cacert.pem").write_bytes(cert.read_bytes())
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text(f"me:x:{os.getuid()}:{os.getgid()}:me:{home}:/bin/sh\n")
    group.write_text(f"me:x:{os.getgid()}:\n")
    wrapper = [f"LD_PRELOAD={NSS_WRAPPER}", f"NSS_WRAPPER_PASSWD={passwd}", f"NSS_WRAPPER_GROUP={group}"]
    frame = corpus_crop("terminal")
    source = PushSource(width=WIDTH, height=HEIGHT)
    source.push(frame)
    config = ServerConfig(port=0, web_port=0, cert=str(cert), key=str(key), rfb_tls="require")
    async with Server(config, source=source) as server:
        argv = ["env", *wrapper, "gvncviewer", f"127.0.0.1:{server.port - 5900}"]
        async with viewer_process(argv, viewer_display, home, under_menu_bar) as viewer:
            await viewer.wait_exact(frame)
            session = server.sessions[0]
            assert session.tls is not None and session.protocol.vencrypt_subtype == 260
