"""End to end with TigerVNC's viewer (``vncviewer`` 1.12): what it shows equals what pyvnc serves.

The viewer runs full screen (``-FullScreen=1 -MenuKey=``, so no "F8" hint covers the picture) on a private
Xvfb exactly the size of the remote desktop, so a grab of that Xvfb's root window *is* the viewer's picture of
the remote framebuffer. ``-PreferredEncoding=X -AutoSelect=0`` puts encoding X first in its SetEncodings list;
a spy on the server's encoder selector checks that X is what was actually sent. Lossless encodings must be
pixel-exact; Tight with JPEG (quality ≥ 6) must reach 30 dB PSNR on a photo. Every wait polls grabs of the
viewer's display — there are no fixed sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from viewerhelpers import (
    CHANGED_AREAS,
    HEIGHT,
    WIDTH,
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

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.protocol.constants import Encoding
from pyvnc.protocol.pixelformat import PixelFormat, converter_for

pytestmark = requires("vncviewer", "TigerVNC's viewer")

#: viewer name of an encoding → its RFB number
ENCODING_NUMBERS = {"Raw": Encoding.RAW, "Hextile": Encoding.HEXTILE, "ZRLE": Encoding.ZRLE, "Tight": Encoding.TIGHT}


@pytest.fixture(scope="module")
def viewer_display() -> Iterator[str]:
    """One Xvfb, the size of the remote desktop, that every viewer in this module runs on."""
    with private_xvfb(f"{WIDTH}x{HEIGHT}x24", "-br") as display:
        yield display


@asynccontextmanager
async def run_viewer(display: str, port: int, home: Path, *params: str) -> AsyncIterator[Viewer]:
    """Start ``vncviewer`` full screen on ``display`` against 127.0.0.1::port; stop it on exit."""
    argv = ["vncviewer", f"-display={display}", "-FullScreen=1", "-MenuKey=", "-RemoteResize=0", *params]
    async with viewer_process([*argv, f"127.0.0.1::{port}"], display, home) as viewer:
        yield viewer


def assert_used(used: list[int], preferred: str) -> None:
    """The preferred encoding sent the updates. A client that prefers Raw gets its one-colour areas as
    fills in another encoding it listed (TigerVNC's viewer lists them all)."""
    number = ENCODING_NUMBERS[preferred]
    assert number in used, used
    fills = {Encoding.TIGHT, Encoding.ZRLE, Encoding.HEXTILE, Encoding.RRE} if number == Encoding.RAW else set()
    assert set(used) <= {number} | fills, used


LOSSLESS = [
    pytest.param("Raw", (), id="raw"),
    pytest.param("Hextile", (), id="hextile"),
    pytest.param("ZRLE", (), id="zrle"),
    pytest.param("Tight", ("-NoJPEG=1",), id="tight-nojpeg"),
    pytest.param("Tight", ("-NoJPEG=1", "-CompressLevel=0"), id="tight-nojpeg-compress0"),
    pytest.param("Tight", ("-NoJPEG=1", "-CompressLevel=9"), id="tight-nojpeg-compress9"),
]


@pytest.mark.parametrize("image", ["terminal", "webpage", "desktop", "photo", "noise"])
@pytest.mark.parametrize(("encoding", "extra"), LOSSLESS)
async def test_lossless_encoding_is_pixel_exact(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, image: str, encoding: str, extra: tuple[str, ...]
) -> None:
    frame = corpus_crop(image)
    server, _source = serve(frame)
    async with server:
        params = (f"-PreferredEncoding={encoding}", "-AutoSelect=0", *extra)
        async with run_viewer(viewer_display, server.port, tmp_path / "home", *params) as viewer:
            await viewer.wait_exact(frame)
    assert used_encodings, "the server encoded nothing"
    assert_used(used_encodings, encoding)


@pytest.mark.parametrize("quality", [6, 8, 9])
async def test_tight_jpeg_quality(viewer_display: str, used_encodings: list[int], tmp_path: Path, quality: int) -> None:
    frame = corpus_crop("photo")
    server, _source = serve(frame)
    async with server:
        params = ("-PreferredEncoding=Tight", "-AutoSelect=0", "-NoJPEG=0", f"-QualityLevel={quality}")
        async with run_viewer(viewer_display, server.port, tmp_path / "home", *params) as viewer:
            got = await viewer.wait_settled(frame, min_psnr=30.0)
    assert set(used_encodings) == {Encoding.TIGHT}, used_encodings
    # the photo really took the JPEG path: lossy, yet close to the original
    assert not np.array_equal(got, frame)
    assert psnr(got, frame) >= 30.0


@pytest.mark.parametrize("quality", [6, 7])
async def test_tight_jpeg_keeps_30_db_on_noise(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, quality: int
) -> None:
    """Random pixels, which JPEG at these levels would return at about 13 dB, reach the viewer losslessly."""
    frame = corpus_crop("noise")
    server, _source = serve(frame)
    async with server:
        params = ("-PreferredEncoding=Tight", "-AutoSelect=0", "-NoJPEG=0", f"-QualityLevel={quality}")
        async with run_viewer(viewer_display, server.port, tmp_path / "home", *params) as viewer:
            await viewer.wait_exact(frame)
    assert set(used_encodings) == {Encoding.TIGHT}, used_encodings


#: the pixel formats of the viewer's ``-FullColor=0 -LowColorLevel=N``: 8 colours (a bit a channel), 64 (two
#: bits) and 256 (3-3-2, red on top), all 8 bits per pixel
LOW_COLOUR = {
    0: PixelFormat(8, 3, False, True, 1, 1, 1, 2, 1, 0),
    1: PixelFormat(8, 6, False, True, 3, 3, 3, 4, 2, 0),
    2: PixelFormat(8, 8, False, True, 7, 7, 3, 5, 2, 0),
}


def as_low_colour_shown(frame: np.ndarray, pf: PixelFormat) -> np.ndarray:
    """What the viewer shows of ``frame`` served in ``pf``: the server's pixels (pyvnc's conversion), each
    field widened back to 0-255 by ``value * 255 // max``, as the viewer's pixel conversion does."""
    bgrx = np.zeros((*frame.shape[:2], 4), np.uint8)
    bgrx[..., :3] = frame[..., ::-1]
    values = converter_for(pf).convert_array(bgrx).astype(np.int64)
    fields = [(pf.red_shift, pf.red_max), (pf.green_shift, pf.green_max), (pf.blue_shift, pf.blue_max)]
    return np.stack([((values >> shift) & top) * 255 // top for shift, top in fields], axis=2).astype(np.uint8)


@pytest.mark.parametrize("level", sorted(LOW_COLOUR))
@pytest.mark.parametrize("encoding", ["Raw", "Hextile", "ZRLE", "Tight"])
async def test_low_colour_levels_are_exact(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, encoding: str, level: int
) -> None:
    """The viewer's own low-colour formats (depth 3, 6 and 8 in one byte): every encoding's pixels, palettes,
    fills and ZRLE's one-byte CPIXELs in that format, shown exactly as the server converted them."""
    frame = corpus_crop("desktop")
    want = as_low_colour_shown(frame, LOW_COLOUR[level])
    server, _source = serve(frame)
    async with server:
        params = (f"-PreferredEncoding={encoding}", "-AutoSelect=0", "-FullColor=0", f"-LowColorLevel={level}")
        async with run_viewer(viewer_display, server.port, tmp_path / "home", *params) as viewer:
            await viewer.wait_exact(want)
    assert_used(used_encodings, encoding)


async def test_password(viewer_display: str, tmp_path: Path) -> None:
    passwd = password_file(tmp_path, "s3cret!")
    frame = corpus_crop("desktop")
    server, _source = serve(frame, password="s3cret!")
    async with server:
        params = (f"-passwd={passwd}", "-PreferredEncoding=ZRLE", "-AutoSelect=0")
        async with run_viewer(viewer_display, server.port, tmp_path / "home", *params) as viewer:
            await viewer.wait_exact(frame)


async def test_tls_offered_is_what_the_viewer_picks_by_default(
    viewer_display: str, tmp_path: Path, self_signed: tuple[Path, Path]
) -> None:
    """rfb_tls = "offer" and the viewer's own default list of security types (VeNCrypt's first): it takes
    X509Vnc by itself, given only the CA and the password."""
    cert, key = self_signed
    frame = corpus_crop("desktop")
    source = PushSource(width=WIDTH, height=HEIGHT)
    source.push(frame)
    config = ServerConfig(port=0, web_port=0, password="s3cret!", cert=str(cert), key=str(key), rfb_tls="offer")
    params = [f"-X509CA={cert}", f"-passwd={password_file(tmp_path, 's3cret!')}", "-PreferredEncoding=ZRLE"]
    async with (
        Server(config, source=source) as server,
        run_viewer(viewer_display, server.port, tmp_path / "home", *params, "-AutoSelect=0") as viewer,
    ):
        await viewer.wait_exact(frame)
        session = server.sessions[0]
        assert session.tls is not None and session.protocol.vencrypt_subtype == 261


@pytest.mark.parametrize("password", ["s3cret!", None])
async def test_tls_x509_with_and_without_password(
    viewer_display: str, tmp_path: Path, self_signed: tuple[Path, Path], password: str | None
) -> None:
    """TLS on the RFB port: the viewer takes only X509Vnc (with a password) or X509None (without), checks our
    certificate against the CA it is given, and shows the desktop exactly. rfb_tls = "require" (VeNCrypt
    alone) so nothing but TLS could have let it in."""
    cert, key = self_signed
    frame = corpus_crop("webpage")
    source = PushSource(width=WIDTH, height=HEIGHT)
    source.push(frame)
    config = ServerConfig(port=0, web_port=0, password=password, cert=str(cert), key=str(key), rfb_tls="require")
    params = [f"-X509CA={cert}", "-PreferredEncoding=ZRLE", "-AutoSelect=0"]
    if password is not None:
        params += ["-SecurityTypes=X509Vnc", f"-passwd={password_file(tmp_path, password)}"]
    else:
        params += ["-SecurityTypes=X509None"]
    async with (
        Server(config, source=source) as server,
        run_viewer(viewer_display, server.port, tmp_path / "home", *params) as viewer,
    ):
        await viewer.wait_exact(frame)
        session = server.sessions[0]
        assert session.tls is not None and session.tls.startswith("TLSv1")
        assert session.protocol.vencrypt_subtype == (261 if password else 260)


@pytest.mark.parametrize(("encoding", "extra"), LOSSLESS[:4])
async def test_desktop_changes_reach_viewer(
    viewer_display: str, used_encodings: list[int], tmp_path: Path, encoding: str, extra: tuple[str, ...]
) -> None:
    first = corpus_crop("webpage")
    server, source = serve(first)
    async with server:
        params = (f"-PreferredEncoding={encoding}", "-AutoSelect=0", *extra)
        async with run_viewer(viewer_display, server.port, tmp_path / "home", *params) as viewer:
            await viewer.wait_exact(first)
            # a whole new desktop
            second = corpus_crop("terminal", x=900, y=500)
            source.push(second)
            await viewer.wait_exact(second)
            # small changes in a few places, announced as such
            third = small_changes(second, corpus_crop("photo", w=40, h=17))
            source.push(third, rects=CHANGED_AREAS)
            await viewer.wait_exact(third)
            # an unannounced change: the source says the whole frame may have changed
            fourth = third[::-1].copy()
            source.push(fourth)
            await viewer.wait_exact(fourth)
    assert_used(used_encodings, encoding)


BIG_WIDTH, BIG_HEIGHT = 1280, 720


@pytest.fixture(scope="module")
def big_viewer_display() -> Iterator[str]:
    """An Xvfb for a remote desktop big enough that its full updates are spread over two threads."""
    with private_xvfb(f"{BIG_WIDTH}x{BIG_HEIGHT}x24", "-br") as display:
        yield display


@pytest.mark.parametrize("image", ["desktop", "photo"])
@pytest.mark.parametrize(
    ("encoding", "extra", "exact"),
    [
        pytest.param("ZRLE", (), True, id="zrle"),
        pytest.param("Tight", ("-NoJPEG=1",), True, id="tight-nojpeg"),
        pytest.param("Tight", ("-NoJPEG=0", "-QualityLevel=8"), False, id="tight-jpeg8"),
    ],
)
async def test_updates_spread_over_two_threads_reach_the_viewer(
    big_viewer_display: str,
    used_encodings: list[int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    image: str,
    encoding: str,
    extra: tuple[str, ...],
    exact: bool,
) -> None:
    """A 1280×720 desktop with encode_threads = 2: ZRLE's tile data made in bands and deflated in segments
    side by side, Tight's strips filtered, JPEG-compressed and deflated in runs side by side; TigerVNC's
    decoders (its own zlib inflaters) show the picture exactly, or at 30 dB with JPEG."""
    from pyvnc.encoders import parallel

    monkeypatch.setattr(parallel, "_cores", parallel.cores())  # restored afterwards, as is the pool
    monkeypatch.setattr(parallel, "_pool", None)
    handed_over: list[str] = []
    original = parallel.pool

    def spy() -> object:
        handed_over.append("piece")
        return original()

    monkeypatch.setattr(parallel, "pool", spy)
    frame = corpus_crop(image, x=300, y=200, w=BIG_WIDTH, h=BIG_HEIGHT)
    source = PushSource(width=BIG_WIDTH, height=BIG_HEIGHT)
    source.push(frame)
    async with Server(ServerConfig(port=0, web_port=0, encode_threads=2), source=source) as server:
        params = (f"-PreferredEncoding={encoding}", "-AutoSelect=0", *extra)
        async with run_viewer(big_viewer_display, server.port, tmp_path / "home", *params) as viewer:
            if exact:
                await viewer.wait_exact(frame)
            else:
                assert psnr(await viewer.wait_settled(frame, min_psnr=30.0), frame) >= 30.0
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings
    assert handed_over  # work really was handed to the pool
