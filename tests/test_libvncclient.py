"""End to end with LibVNCServer's client library (libvncclient 0.9.14, the decoders of Remmina and KRDC): what
its framebuffer holds equals what pyvnc serves, over a real socket.

Its ``encodingsString`` is its whole SetEncodings list (plus the compression and quality levels when set), and a
spy on the server's encoder selector checks what was sent. Lossless encodings must be exact in 32, 16 (RGB555)
and 8 (BGR233) bits per pixel; Tight JPEG must reach 30 dB.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import numpy as np
import numpy.typing as npt
import pytest
from libvnc import LibVNCClient, load
from rfbclient import RecordingSource
from viewerhelpers import CHANGED_AREAS, HEIGHT, WIDTH, Frame, corpus_crop, psnr, serve, small_changes
from xhelpers import RootPainter, grab, private_xvfb

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.encoders.select import EncoderSelector
from pyvnc.protocol.constants import Encoding
from pyvnc.protocol.pixelformat import PixelFormat, converter_for

LIB = load()
pytestmark = pytest.mark.skipif(LIB is None, reason="libvncclient (Debian libvncclient1) is not installed")

#: libvncclient's name of an encoding → its RFB number
ENCODING_NUMBERS = {
    "raw": Encoding.RAW,
    "rre": Encoding.RRE,
    "hextile": Encoding.HEXTILE,
    "zlib": Encoding.ZLIB,
    "zrle": Encoding.ZRLE,
    "tight": Encoding.TIGHT,
}
#: pixel formats the client asks for instead of its default: both byte orders, colour in the high or the low
#: bytes of 32-bit pixels (3-byte CPIXELs of either end, TPIXELs only for depth 24), 16 and 8 bits
FORMATS = {
    "xrgb-be": PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
    "rgbx-high-le": PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8),
    "bgrx-high-be": PixelFormat(32, 24, True, True, 255, 255, 255, 8, 16, 24),
    "rgb565-be": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "rgb555-le": PixelFormat(16, 15, False, True, 31, 31, 31, 0, 5, 10),
    "bgr233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
}


@asynccontextmanager
async def connected(port: int, encodings: str, **options: object) -> AsyncIterator[LibVNCClient]:
    assert LIB is not None
    client = await asyncio.to_thread(LibVNCClient, LIB, port, encodings, **options)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        client.close()


async def shows(client: LibVNCClient, want: npt.NDArray[np.generic]) -> None:
    got = await asyncio.to_thread(client.wait_for, want)
    assert got.shape == want.shape, (got.shape, want.shape)
    differ = np.count_nonzero(got != want)
    assert differ == 0, f"{differ} values differ from what was served"


def client_values(frame: Frame, pf: PixelFormat) -> npt.NDArray[np.generic]:
    """The pixel values of ``frame`` (RGB) in ``pf``, as pyvnc converts them."""
    bgrx = np.zeros((*frame.shape[:2], 4), np.uint8)
    bgrx[..., :3] = frame[..., ::-1]
    return converter_for(pf).convert_array(bgrx)


LOSSLESS = [
    pytest.param("tight", -1, id="tight"),
    pytest.param("tight", 0, id="tight-compress0"),
    pytest.param("tight", 9, id="tight-compress9"),
    pytest.param("zlib", 1, id="zlib-compress1"),
    pytest.param("zlib", 9, id="zlib-compress9"),
    pytest.param("zrle", -1, id="zrle"),
    pytest.param("hextile", -1, id="hextile"),
    pytest.param("rre", -1, id="rre"),
    pytest.param("raw", -1, id="raw"),
]


@pytest.mark.parametrize("image", ["terminal", "webpage", "desktop", "photo", "noise"])
@pytest.mark.parametrize(("encoding", "compress"), LOSSLESS)
async def test_lossless_encodings_are_pixel_exact(
    used_encodings: list[int], image: str, encoding: str, compress: int
) -> None:
    frame = corpus_crop(image)
    server, _source = serve(frame)
    async with server, connected(server.port, encoding, compress=compress) as client:
        assert client.size == (WIDTH, HEIGHT)
        await shows(client, frame)
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings


def _big_endian_32(fmt: str) -> bool:
    return FORMATS[fmt].big_endian and FORMATS[fmt].bits_per_pixel == 32


#: libvncclient 0.9.14 cannot decode ZRLE in big-endian 32-bit formats: it reads each 3-byte CPIXEL as a
#: host-order word shifted by a byte, the neighbouring byte included (TigerVNC's x0vncserver's ZRLE comes out
#: just as wrong there), so those pairs are left out
OTHER_FORMAT_CASES = [
    pytest.param(image, encoding, fmt, id=f"{image}-{encoding}-{fmt}")
    for image in ("desktop", "webpage")
    for encoding in ("tight", "zlib", "zrle", "hextile", "rre")
    for fmt in FORMATS
    if not (encoding == "zrle" and _big_endian_32(fmt))
]


@pytest.mark.parametrize(("image", "encoding", "fmt"), OTHER_FORMAT_CASES)
async def test_lossless_in_other_pixel_formats(used_encodings: list[int], image: str, encoding: str, fmt: str) -> None:
    """The framebuffer holds exactly pyvnc's conversion of the picture to the client's pixel format."""
    frame = corpus_crop(image)
    pf = FORMATS[fmt]
    want = client_values(frame, pf)
    if encoding == "tight" and _big_endian_32(fmt):
        # libvncclient stores the pixels it builds from Tight's 3-byte TPIXELs (R, G, B) in host byte order,
        # those of other encodings as they came; TigerVNC's x0vncserver's Tight comes out the same way
        want = want.byteswap()
    server, _source = serve(frame)
    async with server, connected(server.port, encoding, pixel_format=pf) as client:
        await shows(client, want)
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings


@pytest.mark.parametrize("quality", [6, 8, 9])
async def test_tight_jpeg_quality(used_encodings: list[int], quality: int) -> None:
    frame = corpus_crop("photo")
    server, _source = serve(frame)
    async with server, connected(server.port, "tight", quality=quality) as client:
        got = await asyncio.to_thread(client.wait_settled)
    assert set(used_encodings) == {Encoding.TIGHT}, used_encodings
    assert not np.array_equal(got, frame)  # the photo really went as JPEG: lossy, yet close
    assert psnr(np.asarray(got, np.uint8), frame) >= 30.0


@pytest.mark.parametrize("encoding", ["tight", "zlib", "zrle"])
async def test_updates_and_a_desktop_resize_on_one_connection(used_encodings: list[int], encoding: str) -> None:
    """New pictures, small changes and a desktop that grows (NewFBSize / ExtendedDesktopSize: libvncclient
    reallocates its framebuffer), one after another on one connection and its zlib streams."""
    first = corpus_crop("webpage")
    server, source = serve(first)
    async with server, connected(server.port, encoding) as client:
        await shows(client, first)
        second = corpus_crop("photo", x=500, y=300)
        source.push(second)
        await shows(client, second)
        third = small_changes(second, corpus_crop("terminal", w=40, h=17))
        source.push(third, rects=CHANGED_AREAS)
        await shows(client, third)
        bigger = corpus_crop("desktop", x=100, y=200, w=WIDTH + 160, h=HEIGHT + 120)
        source.push(bigger)
        await shows(client, bigger)
        assert client.size == (WIDTH + 160, HEIGHT + 120)
        source.push(bigger[::-1].copy())
        await shows(client, bigger[::-1])
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings


#: varied pictures for a sequence of updates on one connection
SEQUENCE_PICTURES = [
    ("webpage", 200, 100),
    ("terminal", 200, 100),
    ("desktop", 200, 100),
    ("webpage", 300, 250),
    ("photo", 500, 300),
    ("terminal", 50, 400),
    ("desktop", 700, 50),
    ("webpage", 900, 500),
]


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[int, ...], int | None]]:
    """Every SetEncodings the server's sessions took: (preferred encodings, compression level)."""
    taken: list[tuple[tuple[int, ...], int | None]] = []
    original = EncoderSelector.configure

    def spy(self: EncoderSelector, encodings: Sequence[int]) -> None:
        original(self, encodings)
        taken.append((self.preferences, self.compress))

    monkeypatch.setattr(EncoderSelector, "configure", spy)
    return taken


async def switch(
    client: LibVNCClient,
    configured: list[tuple[tuple[int, ...], int | None]],
    encoding: str,
    compress: int | None = None,
) -> None:
    """Send a new SetEncodings (``encoding``: libvncclient's list, the preferred one first) and wait until the
    server has taken it, before the picture changes."""
    taken = len(configured)
    await asyncio.to_thread(client.set_encodings, encoding, compress)
    async with asyncio.timeout(5):
        while len(configured) == taken:
            await asyncio.sleep(0.01)
    preferences, level = configured[-1]
    assert preferences[0] == ENCODING_NUMBERS[encoding.split()[0]], preferences
    assert compress is None or level == compress, level


async def shows_sequence_step(client: LibVNCClient, source: PushSource, picture: Frame) -> None:
    """A new picture, then small changes to it, each shown exactly."""
    source.push(picture)
    await shows(client, picture)
    changed = small_changes(picture, corpus_crop("noise", w=40, h=17))
    source.push(changed, rects=CHANGED_AREAS)
    await shows(client, changed)


@pytest.mark.parametrize(
    "sequence",
    [
        pytest.param(["tight", "zrle", "hextile", "tight", "rre", "zrle", "raw", "tight"], id="tight-zrle"),
        pytest.param(["tight", "zlib", "hextile", "tight", "rre", "zlib", "raw", "tight"], id="tight-zlib"),
    ],
)
async def test_encodings_switched_mid_session_keep_their_streams(
    configured: list[tuple[tuple[int, ...], int | None]], used_encodings: list[int], sequence: list[str]
) -> None:
    """The client picks another encoding mid-session, and back: Tight's four zlib streams, and ZRLE's or Zlib's,
    each carry on where they stopped, in step with the client's inflaters, whatever went in between.

    ZRLE and Zlib are not both in one sequence: libvncclient inflates the two through one shared zlib stream
    (``client->decompStream`` in its zlib.c and zrle.c), where rfbproto gives each encoding a stream of its
    own, as every server keeps them; a client of this library that uses both breaks with any server."""
    pictures = [corpus_crop(name, x=x, y=y) for name, x, y in SEQUENCE_PICTURES]
    server, source = serve(pictures[0])
    async with server, connected(server.port, sequence[0]) as client:
        await shows(client, pictures[0])
        for encoding, picture in zip(sequence[1:], pictures[1:], strict=True):
            await switch(client, configured, encoding)
            used_encodings.clear()
            await shows_sequence_step(client, source, picture)
            assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, (encoding, used_encodings)


@pytest.mark.parametrize("encoding", ["tight", "zlib", "zrle zlib"])
async def test_compression_level_changed_mid_session(
    configured: list[tuple[tuple[int, ...], int | None]], used_encodings: list[int], encoding: str
) -> None:
    """The client changes its compression level mid-session (0 to 9 and back, as from a viewer's options): the
    server compresses with the new level on the stream it has, and the client's inflater stays in step.
    (libvncclient sends a level only when Tight or Zlib is listed: ZRLE goes first, Zlib unused behind it.)"""
    levels = [1, 9, 0, 6, 2, 9, 0]
    pictures = [corpus_crop(name, x=x, y=y) for name, x, y in SEQUENCE_PICTURES[: len(levels)]]
    server, source = serve(pictures[0])
    async with server, connected(server.port, encoding, compress=levels[0]) as client:
        await shows(client, pictures[0])
        for level, picture in zip(levels[1:], pictures[1:], strict=True):
            await switch(client, configured, encoding, level)
            await shows_sequence_step(client, source, picture)
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding.split()[0]]}, used_encodings


#: the library's default format (32 bits, red in the low byte) as a PixelFormat, to switch back to
DEFAULT_32 = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)


@pytest.mark.parametrize("encoding", ["tight", "zrle", "zlib", "hextile"])
async def test_pixel_format_switched_mid_session(used_encodings: list[int], encoding: str) -> None:
    """The client changes colour depth mid-session (32 → 16 big-endian → 8 → 15 → 32 bits), each time with
    SetPixelFormat and a full update request: every picture comes in the new format, exactly as pyvnc converts
    it, on the same zlib streams (Tight's TPIXELs become whole pixels and back, ZRLE's CPIXELs change size).
    No big-endian 32-bit format: libvncclient cannot take ZRLE there, nor Tight in wire order (see FORMATS)."""
    formats = [FORMATS["rgb565-be"], FORMATS["bgr233"], FORMATS["rgb555-le"], DEFAULT_32]
    pictures = [corpus_crop(name, x=x, y=y) for name, x, y in SEQUENCE_PICTURES]
    server, source = serve(pictures[0])
    async with server, connected(server.port, encoding, pixel_format=DEFAULT_32) as client:
        client.colour_bits_only = True  # ZRLE's 3-byte CPIXELs leave the fourth byte of 32-bit pixels alone
        await shows(client, client_values(pictures[0], DEFAULT_32))
        for pf, picture in zip(formats, pictures[1:], strict=False):
            await asyncio.to_thread(client.set_pixel_format, pf, encoding)
            await shows(client, client_values(pictures[0], pf))  # the full update, in the new format
            source.push(picture)
            await shows(client, client_values(picture, pf))
            pictures[0] = picture
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings


async def test_clients_of_different_formats_and_encodings_at_once(used_encodings: list[int]) -> None:
    """Three clients on one desktop, each with its own encoding and pixel format (Tight in 32 bits, ZRLE in
    RGB565 big-endian, Hextile in BGR233): through a sequence of pictures and small changes every one of
    them shows exactly its own conversion, the others' encoders and formats never leaking into its updates."""
    pictures = [corpus_crop(name, x=x, y=y) for name, x, y in SEQUENCE_PICTURES[:5]]
    setups = [("tight", DEFAULT_32), ("zrle", FORMATS["rgb565-be"]), ("hextile", FORMATS["bgr233"])]
    server, source = serve(pictures[0])
    async with server:
        clients = []
        try:
            for encoding, pf in setups:
                client = await asyncio.to_thread(LibVNCClient, LIB, server.port, encoding, pf)  # type: ignore[arg-type]
                client.colour_bits_only = True
                clients.append(client)
            formats = [pf for _, pf in setups]
            for picture in pictures:
                changed = small_changes(picture, corpus_crop("noise", w=40, h=17))
                for shown, rects in ((picture, None), (changed, CHANGED_AREAS)):
                    source.push(shown, rects=rects)
                    pairs = zip(clients, formats, strict=True)
                    await asyncio.gather(*(shows(c, client_values(shown, pf)) for c, pf in pairs))
        finally:
            for client in clients:
                client.close()
    assert set(used_encodings) == {Encoding.TIGHT, Encoding.ZRLE, Encoding.HEXTILE}, used_encodings


async def test_keys_pointer_and_clipboard_reach_the_host_program() -> None:
    """KeyEvent, PointerEvent and ClientCutText as libvncclient sends them arrive at a PushSource's callbacks."""
    rec = RecordingSource.make(WIDTH, HEIGHT)
    keys, pointer, clipboard, source = rec.keys, rec.pointer, rec.clipboard, rec.source
    frame = corpus_crop("terminal")
    source.push(frame)
    server = Server(ServerConfig(port=0, web_port=0), source=source)
    async with server, connected(server.port, "tight") as client:
        await shows(client, frame)
        for keysym, down in ((0xFFE1, True), (ord("A"), True), (ord("A"), False), (0xFFE1, False)):
            client.key(keysym, down)
        client.pointer(10, 20, 0)
        client.pointer(WIDTH - 1, HEIGHT - 1, 1 | 4)
        client.pointer(WIDTH - 1, HEIGHT - 1, 0)
        client.clipboard("caf\xe9 \u00bd".encode("latin-1"))
        deadline = asyncio.get_running_loop().time() + 5
        while (len(keys) < 4 or len(pointer) < 3 or not clipboard) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
    assert keys == [(0xFFE1, True), (ord("A"), True), (ord("A"), False), (0xFFE1, False)]
    assert pointer == [(10, 20, 0), (WIDTH - 1, HEIGHT - 1, 5), (WIDTH - 1, HEIGHT - 1, 0)]
    assert clipboard == ["caf\xe9 \u00bd"]


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
@pytest.mark.parametrize("encoding", ["tight", "zrle"])
async def test_scrolling_arrives_as_copyrect(
    used_encodings: list[int], monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    """An X desktop that scrolls like a terminal: libvncclient (drawing the cursor itself, so copies are
    allowed) gets CopyRect for the moved text and the new line in the encoding, and shows the screen."""
    from pyvnc import session
    from pyvnc.capture.x11 import X11Source

    copies: list[tuple[int, int, int, int]] = []
    header = session.rect_header

    def spy(x: int, y: int, w: int, h: int, enc: int) -> bytes:
        if enc == Encoding.COPY_RECT:
            copies.append((x, y, w, h))
        return header(x, y, w, h, enc)

    monkeypatch.setattr(session, "rect_header", spy)

    with private_xvfb() as display:
        painter = RootPainter(display)
        painter.text_window()
        server = Server(ServerConfig(port=0, web_port=0), source=X11Source(display))
        async with server, connected(server.port, f"copyrect {encoding}", remote_cursor=True) as client:
            await shows(client, grab(display))
            for step in range(5):
                painter.scroll_window(step)
                await shows(client, grab(display))
        painter.close()
    assert len(copies) >= 5 and all(w >= 500 and h >= 300 for _x, _y, w, h in copies), copies
    assert set(used_encodings) == {ENCODING_NUMBERS[encoding]}, used_encodings
