"""End to end with the TightVNC 1.3 viewer (Debian ``xtightvncviewer``): the decoders of the project that defined
the Tight encoding, written in C against its own zlib streams and libjpeg.

The viewer runs with ``-fullscreen`` on a private Xvfb the size of the remote desktop, so a grab of that Xvfb is
its picture of the remote framebuffer. ``-encodings`` gives its SetEncodings list exactly (it offers nothing
else), and a spy on the server's encoder selector checks what was sent. Lossless encodings must be
pixel-exact, also in the 8-bit BGR233 format (``-bgr233``), where the viewer widens each colour field back to 8
bits; Tight with JPEG must reach 30 dB. Every wait polls grabs of the viewer's display.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from viewerhelpers import (
    HEIGHT,
    WIDTH,
    Frame,
    Viewer,
    corpus_crop,
    password_file,
    psnr,
    requires,
    serve,
    small_changes,
    viewer_process,
)
from xhelpers import private_xvfb

from pyvnc.protocol.constants import Encoding
from pyvnc.protocol.pixelformat import PixelFormat, converter_for

pytestmark = requires("xtightvncviewer", "the TightVNC viewer")

#: the viewer's name of an encoding → its RFB number
ENCODING_NUMBERS = {
    "raw": Encoding.RAW,
    "rre": Encoding.RRE,
    "hextile": Encoding.HEXTILE,
    "zlib": Encoding.ZLIB,
    "tight": Encoding.TIGHT,
}
#: the pixel format ``-bgr233`` asks for: 8 bits, red in the low three, green in the next three, blue on top
BGR233 = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)


@pytest.fixture(scope="module")
def viewer_display() -> Iterator[str]:
    """One Xvfb, the size of the remote desktop, that every viewer in this module runs on."""
    with private_xvfb(f"{WIDTH}x{HEIGHT}x24", "-br") as display:
        yield display


@asynccontextmanager
async def run_viewer(display: str, port: int, home: Path, encodings: str, *params: str) -> AsyncIterator[Viewer]:
    """Start ``xtightvncviewer`` full screen on ``display`` against 127.0.0.1::port, offering ``encodings``."""
    argv = ["xtightvncviewer", "-fullscreen", "-encodings", encodings, *params, f"127.0.0.1::{port}"]
    async with viewer_process(argv, display, home) as viewer:
        yield viewer


def as_bgr233_shown(frame: Frame) -> Frame:
    """What the viewer shows of ``frame`` served in BGR233: the server's 8-bit pixels (pyvnc's conversion),
    each field widened back to 0-255 with rounding, as the viewer's colour table does."""
    bgrx = np.zeros((*frame.shape[:2], 4), np.uint8)
    bgrx[..., :3] = frame[..., ::-1]
    values = converter_for(BGR233).convert_array(bgrx).astype(np.int64)
    fields = ((values & 7, 7), ((values >> 3) & 7, 7), (values >> 6, 3))
    return np.stack([(v * 255 + top // 2) // top for v, top in fields], axis=2).astype(np.uint8)


LOSSLESS = [
    pytest.param("tight", ("-nojpeg",), id="tight-nojpeg"),
    pytest.param("tight", ("-nojpeg", "-compresslevel", "0"), id="tight-nojpeg-compress0"),
    pytest.param("tight", ("-nojpeg", "-compresslevel", "9"), id="tight-nojpeg-compress9"),
    pytest.param("zlib", ("-compresslevel", "1"), id="zlib-compress1"),
    pytest.param("zlib", ("-compresslevel", "9"), id="zlib-compress9"),
    pytest.param("hextile", (), id="hextile"),
    pytest.param("rre", (), id="rre"),
    pytest.param("raw", (), id="raw"),
]


#: Tight and Zlib on every corpus image, every lossless choice on text and on a desktop
EXACT_CASES = [
    pytest.param(image, *case.values, id=f"{case.id}-{image}")
    for case in LOSSLESS
    for image in ("terminal", "webpage", "desktop", "photo", "noise")
    if image in ("terminal", "desktop") or case.id in ("tight-nojpeg", "zlib-compress1")
]


@pytest.mark.parametrize(("image", "encoding", "extra"), EXACT_CASES)
async def test_lossless_encodings_are_pixel_exact(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, image: str, encoding: str, extra: tuple[str, ...]
) -> None:
    frame = corpus_crop(image)
    server, _source = serve(frame)
    async with server, run_viewer(viewer_display, server.port, tmp_path / "home", encoding, *extra) as viewer:
        await viewer.wait_exact(frame)
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings


@pytest.mark.parametrize("encoding", ["tight", "zlib", "hextile", "rre"])
async def test_bgr233_is_exact_in_eight_bits(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, encoding: str
) -> None:
    """8 bits per pixel: Tight's TPIXEL rule does not apply (whole 1-byte pixels), palettes and fills are in
    the client's format; what the viewer shows is exactly the server's 8-bit picture."""
    frame = corpus_crop("desktop")
    want = as_bgr233_shown(frame)
    server, _source = serve(frame)
    async with server:
        params = ("-bgr233", "-nojpeg")
        async with run_viewer(viewer_display, server.port, tmp_path / "home", encoding, *params) as viewer:
            await viewer.wait_exact(want)
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings


@pytest.mark.parametrize("quality", [6, 8, 9])
async def test_tight_jpeg_quality(viewer_display: str, used_encodings: list[int], tmp_path: Path, quality: int) -> None:
    frame = corpus_crop("photo")
    server, _source = serve(frame)
    async with server:
        params = ("-quality", str(quality))
        async with run_viewer(viewer_display, server.port, tmp_path / "home", "tight", *params) as viewer:
            got = await viewer.wait_settled(frame, min_psnr=30.0)
    assert set(used_encodings) == {Encoding.TIGHT}, used_encodings
    assert not np.array_equal(got, frame)  # the photo really went as JPEG: lossy, yet close
    assert psnr(got, frame) >= 30.0


@pytest.mark.parametrize(("encoding", "extra"), LOSSLESS[:1] + LOSSLESS[3:4] + LOSSLESS[5:6])
async def test_a_sequence_of_updates_on_one_connection(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, encoding: str, extra: tuple[str, ...]
) -> None:
    """Whole new pictures, small changes and a picture of fills and text, one after another on one
    connection: the zlib streams of Tight and Zlib stay in step with the viewer's inflaters throughout."""
    frames = [corpus_crop("webpage")]
    frames.append(corpus_crop("photo", x=500, y=300))
    frames.append(small_changes(frames[-1], corpus_crop("terminal", w=40, h=17)))
    frames.append(corpus_crop("terminal", x=900, y=500))
    frames.append(corpus_crop("desktop", x=1100, y=50))
    server, source = serve(frames[0])
    async with server, run_viewer(viewer_display, server.port, tmp_path / "home", encoding, *extra) as viewer:
        await viewer.wait_exact(frames[0])
        for frame in frames[1:]:
            source.push(frame)
            await viewer.wait_exact(frame)
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings


async def test_vnc_authentication(viewer_display: str, tmp_path: Path) -> None:
    """VNC Authentication with TightVNC's own DES: the right password shows the desktop; a wrong one is
    refused, the viewer gives up, and the server goes on serving."""
    frame = corpus_crop("desktop")
    server, _source = serve(frame, password="s3cret!")
    right = password_file(tmp_path, "s3cret!")
    (tmp_path / "wrong").mkdir()
    wrong = password_file(tmp_path / "wrong", "guess")
    async with server:
        async with run_viewer(viewer_display, server.port, tmp_path / "home", "zlib", "-passwd", str(wrong)) as viewer:
            await asyncio.wait_for(viewer.proc.wait(), 15)
            assert "authentication failed" in (await viewer.log()).lower()
        async with run_viewer(viewer_display, server.port, tmp_path / "home", "zlib", "-passwd", str(right)) as viewer:
            await viewer.wait_exact(frame)
