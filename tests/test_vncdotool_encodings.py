"""vncdotool's decoders (Raw, RRE, Hextile, ZRLE) against pyvnc's encoders, pixel-exact, on real screen images.

vncdotool's own encoding list offers Raw only; here a small subclass of its client offers the encoding under
test first (then the others, as a real client would), through its Python API in a subprocess (its Twisted
reactor can run once per process, and a subprocess keeps the test's event loop — which runs the server —
free). A spy on the server's encoder selector checks the encoding under test is what was sent, and a recording
proxy between the two keeps the exact bytes vncdotool received, so that a failure can be replayed through
noVNC's decoders: where vncdotool 1.4.2 is wrong and noVNC decodes the same bytes exactly, the test says so
with a strict xfail rather than a weaker assertion.

Run as a script, this file is that capture client: ``python test_vncdotool_encodings.py PORT ENCODING PF OUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from novnc_decode import decode_with_novnc, novnc_available, requires_novnc
from PIL import Image

from pyvnc import PushSource, Server, ServerConfig

Frame = npt.NDArray[np.uint8]

# shared/ sits beside the checkout (in CI too); /work/shared is its usual place on these machines
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")

RAW, COPYRECT, RRE, HEXTILE, ZRLE = 0, 1, 2, 5, 16
LAST_RECT, DESKTOP_SIZE = -224, -223
ENCODING_NAMES = {RAW: "raw", COPYRECT: "copyrect", RRE: "rre", HEXTILE: "hextile", ZRLE: "zrle"}


# --------------------------------------------------------------------------------------------------------------
# the capture client (runs in a subprocess)
# --------------------------------------------------------------------------------------------------------------


def capture_main(argv: list[str]) -> int:
    """Connect with vncdotool offering ``encoding`` first, capture one full frame to ``out``.

    ``pf`` is ``native`` (keep the server's pixel format, as vncdotool does when it knows it) or ``rgb32``
    (vncdotool's RGBX: SetPixelFormat 32 bpp, red shift 0). ``only`` offers the one encoding and no
    pseudo-encodings.
    """
    from vncdotool import api, rfb
    from vncdotool.client import PF2IM, RGB32, VNCDoToolClient, VNCDoToolFactory

    port, encoding, pf, out = int(argv[0]), int(argv[1]), argv[2], argv[3]
    only = "only" in argv[4:]
    offered = [encoding] if only else [encoding, *(e for e in (HEXTILE, ZRLE, RRE, RAW) if e != encoding)]
    if not only:
        offered += [DESKTOP_SIZE, LAST_RECT]

    class Client(VNCDoToolClient):
        def vncConnectionMade(self) -> None:
            self.setImageMode()
            if pf == "rgb32":
                self.setPixelFormat(RGB32)
                self._image_mode = PF2IM[RGB32]
            self.setEncodings([rfb.Encoding(e) for e in offered])
            self.factory.clientConnectionMade(self)

        def connectionLost(self, reason: Any) -> None:
            # vncdotool leaves a capture waiting forever when the connection drops (as it does when one of its
            # decoders raises): fail the capture at once instead
            super().connectionLost(reason)
            if self.deferred is not None:
                d, self.deferred = self.deferred, None
                d.errback(reason)

    class Factory(VNCDoToolFactory):
        protocol = Client

    client = api.connect(f"127.0.0.1::{port}", factory_class=Factory, timeout=60)
    try:
        client.captureScreen(out)
        client.disconnect()
    finally:
        api.shutdown()
    return 0


# --------------------------------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------------------------------


def corpus_crop(name: str, x: int, y: int, w: int, h: int) -> Frame:
    path = CORPUS / f"{name}.png"
    if not path.exists():
        pytest.skip(f"corpus image {path} missing")
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[y : y + h, x : x + w])


@contextlib.asynccontextmanager
async def recording_proxy(port: int) -> AsyncIterator[tuple[int, bytearray]]:
    """A TCP proxy to 127.0.0.1:``port``: yields its own port and the bytes the server sent through it."""
    received = bytearray()
    tasks: set[asyncio.Task[None]] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    received.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def on_client(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", port)
        for t in (pump(c_reader, s_writer, False), pump(s_reader, c_writer, True)):
            task = asyncio.ensure_future(t)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    proxy = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1], received
    finally:
        proxy.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await proxy.wait_closed()


async def vncdotool_capture(
    port: int, encoding: int, out: Path, pf: str = "native", only: bool = False, timeout: float = 60
) -> tuple[int, str]:
    """Run :func:`capture_main` in a subprocess; its exit status and output."""
    args = [str(port), str(encoding), pf, str(out), *(["only"] if only else [])]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
        return -1, "timeout\n" + output.decode(errors="replace")
    return proc.returncode or 0, output.decode(errors="replace")


def rfb_messages(received: bytes, password: bool = False) -> bytes:
    """The server messages after ServerInit in a recorded RFB 3.8 server-to-client stream."""
    pos = 12  # ProtocolVersion
    pos += 1 + received[pos]  # security types
    pos += (16 if password else 0) + 4  # VNC authentication challenge; SecurityResult
    (name_length,) = struct.unpack_from(">I", received, pos + 20)
    return received[pos + 24 + name_length :]


def zrle_rectangles(messages: bytes) -> Iterator[tuple[int, int, int, int, bytes]]:
    """(x, y, w, h, zlib data) of every ZRLE rectangle in FramebufferUpdate messages holding only ZRLE rectangles
    and pseudo-rectangles without data."""
    pos = 0
    while pos < len(messages):
        mtype, count = struct.unpack_from(">BxH", messages, pos)
        assert mtype == 0, f"server message type {mtype} at {pos}"
        pos += 4
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack_from(">HHHHi", messages, pos)
            pos += 12
            if encoding == LAST_RECT:
                break
            assert encoding == ZRLE, encoding
            (length,) = struct.unpack_from(">I", messages, pos)
            yield x, y, w, h, messages[pos + 4 : pos + 4 + length]
            pos += 4 + length


def zrle_tiles(x: int, y: int, w: int, h: int, data: bytes, cpixel: int = 3) -> Iterator[tuple[int, ...]]:
    """Walk a ZRLE rectangle's (decompressed) tiles: (tx, ty, tw, th, subencoding) of each, in order."""
    pos = 0
    for ty in range(y, y + h, 64):
        for tx in range(x, x + w, 64):
            tw, th = min(64, x + w - tx), min(64, y + h - ty)
            sub = data[pos]
            pos += 1
            yield tx, ty, tw, th, sub
            if sub == 0:  # raw
                pos += tw * th * cpixel
            elif sub == 1:  # solid
                pos += cpixel
            elif 2 <= sub <= 16:  # packed palette: each row padded to a byte boundary
                bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                pos += sub * cpixel + th * ((tw * bits + 7) // 8)
            elif sub >= 128:  # plain RLE (128) or palette RLE (130..255)
                palette = sub - 128
                pos += palette * cpixel
                done = 0
                while done < tw * th:
                    if palette and data[pos] < 128:
                        pos += 1
                        done += 1
                        continue
                    pos += 1 if palette else cpixel
                    run = 1
                    while data[pos] == 255:
                        run += 255
                        pos += 1
                    run += data[pos]
                    pos += 1
                    done += run
                assert done == tw * th, (tx, ty, done)
            else:
                raise AssertionError(f"bad ZRLE subencoding {sub}")
    assert pos == len(data), (pos, len(data))


def describe_difference(got: Frame, want: Frame) -> str:
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    ys, xs = np.nonzero(np.any(got != want, axis=2))
    if len(ys) == 0:
        return "identical"
    return f"{len(ys)} pixels differ, bounding box x {xs.min()}..{xs.max()} y {ys.min()}..{ys.max()}"


def serve(frame: Frame) -> tuple[Server, PushSource]:
    source = PushSource(width=frame.shape[1], height=frame.shape[0])
    source.push(frame)
    return Server(ServerConfig(port=0, web_port=0), source=source), source


async def capture_through_proxy(
    frame: Frame, encoding: int, tmp_path: Path, pf: str = "native", only: bool = False
) -> tuple[Frame | None, bytes, str]:
    """Serve ``frame``, capture it with vncdotool through a recording proxy: (picture or None, bytes, log)."""
    server, _source = serve(frame)
    out = tmp_path / f"{ENCODING_NAMES[encoding]}.png"
    async with server, recording_proxy(server.port) as (proxy_port, received):
        rc, log = await vncdotool_capture(proxy_port, encoding, out, pf=pf, only=only)
    picture = np.asarray(Image.open(out).convert("RGB")) if rc == 0 and out.exists() else None
    return picture, bytes(received), log


#: why vncdotool 1.4.2 cannot decode some ZRLE streams (rfbproto 7.7.6, packed palette tiles: "each row of
#: pixels is padded to a byte boundary"). Its decoder (rfb.py, _zrle_next_bit/_zrle_next_dibit/_zrle_next_nibble)
#: reads a tile's palette indices as one bit stream, ignoring that padding. Rows need padding only where tile
#: width × bits per index is not a multiple of 8 — in the right-hand column of tiles of a framebuffer whose width
#: is not a multiple of 8 — and there vncdotool consumes too few bytes and misparses the rest of the rectangle
#: (typically "ValueError: Palette of size 85 is not allowed"). noVNC decodes the same bytes exactly.
ZRLE_PADDING_REASON = "vncdotool 1.4.2's ZRLE decoder ignores the row padding of packed-palette tiles"


def padded_packed_tiles(messages: bytes) -> list[tuple[int, ...]]:
    """Packed-palette tiles whose rows are padded, in a stream of ZRLE updates: (tx, ty, tw, th, palette size)."""
    inflater = zlib.decompressobj()
    found = []
    for x, y, w, h, data in zrle_rectangles(messages):
        for tx, ty, tw, th, sub in zrle_tiles(x, y, w, h, inflater.decompress(data)):
            bits = 1 if sub == 2 else 2 if sub <= 4 else 4
            if 2 <= sub <= 16 and tw * bits % 8:
                found.append((tx, ty, tw, th, sub))
    return found


def novnc_picture(received: bytes, width: int, height: int, pf: str) -> Frame:
    """The recorded stream's updates decoded by noVNC (which assumes red shift 0, as vncdotool's RGB32)."""
    picture = decode_with_novnc(rfb_messages(received), width, height)
    return picture if pf == "rgb32" else np.ascontiguousarray(picture[..., ::-1])  # native: BGR → RGB


# corpus crops: 640×480 (whole 64×64 ZRLE tiles, whole 16×16 Hextile tiles) and odd sizes and offsets, whose
# right and bottom tiles are partial and whose packed-palette rows may need padding
CROPS = {
    "terminal": ("terminal", 0, 0, 640, 480),
    "webpage": ("webpage", 200, 100, 640, 480),
    "desktop": ("desktop", 1280, 600, 640, 480),
    "terminal-odd": ("terminal", 13, 7, 517, 333),
    "webpage-odd": ("webpage", 301, 211, 455, 251),
    "desktop-odd": ("desktop", 1001, 403, 333, 277),
}


@pytest.mark.parametrize("crop", list(CROPS))
@pytest.mark.parametrize("encoding", [RAW, RRE, HEXTILE, ZRLE], ids=["raw", "rre", "hextile", "zrle"])
async def test_vncdotool_decodes_exactly(used_encodings: list[int], tmp_path: Path, encoding: int, crop: str) -> None:
    frame = corpus_crop(*CROPS[crop])
    height, width = frame.shape[:2]
    picture, received, log = await capture_through_proxy(frame, encoding, tmp_path, only=True)
    assert set(used_encodings) == {encoding}, used_encodings
    if encoding == ZRLE and (padded := padded_packed_tiles(rfb_messages(received))):
        # vncdotool cannot decode this stream; the bytes it received must still be right: noVNC decodes them
        # exactly, and only then is vncdotool's failure its own
        if not novnc_available():
            pytest.skip("vncdotool cannot decode this stream and noVNC is not installed to check it")
        assert np.array_equal(novnc_picture(received, width, height, "native"), frame)
        if picture is None or not np.array_equal(picture, frame):
            pytest.xfail(f"{ZRLE_PADDING_REASON}; padded tiles (x, y, w, h, palette size) {padded[:4]}")
    assert picture is not None, f"vncdotool failed:\n{log[-3000:]}"
    assert np.array_equal(picture, frame), describe_difference(picture, frame)


@pytest.mark.parametrize("encoding", [RAW, RRE], ids=["raw", "rre"])
async def test_vncdotool_mixed_encodings(used_encodings: list[int], tmp_path: Path, encoding: int) -> None:
    """vncdotool offering all four, its favourite first: one-colour areas and photo-like areas may go with
    another encoding it listed (fills with RRE or Hextile, photos with Hextile), all in the same updates."""
    flat = np.empty((240, 640, 3), np.uint8)
    flat[:] = (40, 90, 160)  # a plain area big enough to go as a fill
    flat[180:220, 200:420] = corpus_crop("webpage", 200, 100, 220, 40)
    frame = np.concatenate([flat, corpus_crop("photo", 600, 300, 640, 240)])
    picture, _received, log = await capture_through_proxy(frame, encoding, tmp_path)
    assert picture is not None, f"vncdotool failed:\n{log[-3000:]}"
    assert np.array_equal(picture, frame), describe_difference(picture, frame)
    assert encoding in used_encodings and len(set(used_encodings)) > 1, used_encodings


@pytest.mark.parametrize("encoding", [RRE, HEXTILE, ZRLE], ids=["rre", "hextile", "zrle"])
async def test_vncdotool_rgb32_pixel_format(used_encodings: list[int], tmp_path: Path, encoding: int) -> None:
    """vncdotool's RGBX (red shift 0) instead of the server's native BGRX: the encoders convert."""
    frame = corpus_crop("webpage", 700, 300, 640, 480)
    picture, _received, log = await capture_through_proxy(frame, encoding, tmp_path, pf="rgb32", only=True)
    assert picture is not None, f"vncdotool failed:\n{log[-3000:]}"
    assert set(used_encodings) == {encoding}, used_encodings
    assert np.array_equal(picture, frame), describe_difference(picture, frame)


def two_colour_noise(width: int = 517, height: int = 333) -> Frame:
    """Two colours at random: every ZRLE tile is best sent as a 1-bit packed palette, the right-hand 5-pixel-wide
    column of tiles with 3 bits of padding per row."""
    rng = np.random.default_rng(3)
    colours = np.array([[20, 40, 60], [230, 220, 200]], np.uint8)
    return colours[rng.integers(0, 2, (height, width))]


@pytest.mark.xfail(strict=True, reason=ZRLE_PADDING_REASON + " (test_zrle_padding_bytes_are_right)")
async def test_vncdotool_zrle_packed_palette_with_row_padding(tmp_path: Path) -> None:
    frame = two_colour_noise()
    picture, _received, log = await capture_through_proxy(frame, ZRLE, tmp_path, pf="rgb32", only=True)
    assert picture is not None, f"vncdotool failed:\n{log[-3000:]}"
    assert np.array_equal(picture, frame), describe_difference(picture, frame)


@requires_novnc
async def test_zrle_padding_bytes_are_right(tmp_path: Path) -> None:
    """The proof for the xfail above: the very bytes vncdotool received hold padded packed-palette tiles, parse
    exactly to their end with the padding (zrle_tiles), and noVNC's decoder turns them into the frame."""
    frame = two_colour_noise()
    height, width = frame.shape[:2]
    _picture, received, _log = await capture_through_proxy(frame, ZRLE, tmp_path, pf="rgb32", only=True)
    padded = padded_packed_tiles(rfb_messages(received))
    assert padded and all(tw == width % 64 and sub == 2 for _tx, _ty, tw, _th, sub in padded), padded
    assert np.array_equal(novnc_picture(received, width, height, "rgb32"), frame)


@pytest.mark.parametrize("encoding", [HEXTILE, ZRLE], ids=["hextile", "zrle"])
async def test_painted_cursor_over_the_update(used_encodings: list[int], tmp_path: Path, encoding: int) -> None:
    """vncdotool draws no cursor, so pyvnc paints it: the frame goes as it is and the cursor's area, painted,
    follows as the update's last rectangle (through the same, stateful encoder). The picture vncdotool (and,
    for ZRLE, noVNC on the same bytes) ends up with is the frame with the cursor blended in."""
    from pyvnc.capture.cursor import CursorImage, paint_cursor

    frame = corpus_crop("webpage", 200, 100, 640, 480)
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (19, 13, 4), dtype=np.uint8)  # every alpha: a real blend, not a copy
    cursor = CursorImage(13, 19, 2, 3, 0, rgba)
    server, _source = serve(frame)
    out = tmp_path / "cursor.png"
    async with server, recording_proxy(server.port) as (proxy_port, received):
        assert server.hub is not None
        server.hub.set_cursor(cursor)
        server.hub.set_pointer(301, 207)
        rc, log = await vncdotool_capture(proxy_port, encoding, out, only=True)
    bgrx = np.zeros((*frame.shape[:2], 4), np.uint8)
    bgrx[..., :3] = frame[..., ::-1]
    expected = paint_cursor(bgrx, cursor, 301, 207)[..., 2::-1]
    assert not np.array_equal(expected, frame)
    assert set(used_encodings) == {encoding}, used_encodings
    messages = rfb_messages(bytes(received))
    if encoding == ZRLE:  # (ZRLE rectangles carry their length: easy to walk)
        rects = [(x, y, w, h) for x, y, w, h, _data in zrle_rectangles(messages)]
        assert rects[-1] == (301 - 2, 207 - 3, 13, 19), rects  # the cursor's area (hotspot 2, 3) comes last
        if novnc_available():
            assert np.array_equal(novnc_picture(bytes(received), 640, 480, "native"), expected)
    picture = np.asarray(Image.open(out).convert("RGB")) if rc == 0 and out.exists() else None
    exact = picture is not None and np.array_equal(picture, expected)
    if encoding == ZRLE and padded_packed_tiles(messages) and not exact:
        pytest.xfail(ZRLE_PADDING_REASON)
    assert picture is not None, f"vncdotool failed:\n{log[-3000:]}"
    assert np.array_equal(picture, expected), describe_difference(picture, expected)


if __name__ == "__main__":
    sys.exit(capture_main(sys.argv[1:]))
