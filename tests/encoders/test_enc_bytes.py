"""Byte-exact checks of RRE, Hextile, Zlib and ZRLE output on tiny inputs, computed by hand from rfbproto."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from enc_content import NOVNC_PF, synthetic
from refdecoders import RefDecoder

from pyvnc.encoders.base import EncodeJob, Encoder
from pyvnc.encoders.classify import layout_for
from pyvnc.encoders.hextile import HextileEncoder
from pyvnc.encoders.raw import RawEncoder
from pyvnc.encoders.rre import RREEncoder
from pyvnc.encoders.zlibenc import ISAL, ZlibEncoder, ZlibStream
from pyvnc.encoders.zrle import ZRLEEncoder, pack_indices, zrle_data
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat, converter_for
from pyvnc.region import Rect

A = (0x11, 0x22, 0x33)  # RGB
B = (0xA0, 0xB0, 0xC0)
C = (0x01, 0x02, 0x03)


def frame_of(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) RGB → BGRX."""
    f = np.zeros((*rgb.shape[:2], 4), np.uint8)
    f[:, :, 0], f[:, :, 1], f[:, :, 2] = rgb[:, :, 2], rgb[:, :, 1], rgb[:, :, 0]
    return f


def filled(h: int, w: int, colour: tuple[int, int, int]) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, :] = colour
    return rgb


def px(colour: tuple[int, int, int]) -> bytes:
    """A PIXEL in noVNC's format (RGBX little-endian)."""
    return bytes([*colour, 0])


def header(x: int, y: int, w: int, h: int, enc: int) -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, enc)


def encode_one(encoder: Encoder, rgb: np.ndarray, pf: PixelFormat = NOVNC_PF) -> bytes:
    h, w = rgb.shape[:2]
    out = encoder.encode(EncodeJob(frame_of(rgb), (Rect(0, 0, w, h),), pf))
    assert len(out) == 1
    return bytes(out[0])


# --- Hextile (rfbproto 7.7.4) --------------------------------------------------------------------------------


def test_hextile_solid_tile() -> None:
    assert encode_one(HextileEncoder(), filled(16, 16, A)) == header(0, 0, 16, 16, 5) + b"\x02" + px(A)


def test_hextile_solid_tiles_carry_background() -> None:
    out = encode_one(HextileEncoder(), filled(16, 40, A))
    assert out == header(0, 0, 40, 16, 5) + b"\x02" + px(A) + b"\x00" + b"\x00"


def test_hextile_foreground_subrect() -> None:
    rgb = filled(16, 16, A)
    rgb[5:7, 4:7] = B  # 3 wide, 2 high at (4, 5)
    body = b"\x0e" + px(A) + px(B) + b"\x01" + bytes([(4 << 4) | 5, (2 << 4) | 1])
    assert encode_one(HextileEncoder(), rgb) == header(0, 0, 16, 16, 5) + body


def test_hextile_coloured_subrects() -> None:
    rgb = filled(16, 16, A)
    rgb[0, 0] = B
    rgb[15, 14:16] = C
    body = b"\x1a" + px(A) + b"\x02" + px(B) + bytes([0x00, 0x00]) + px(C) + bytes([(14 << 4) | 15, (1 << 4) | 0])
    assert encode_one(HextileEncoder(), rgb) == header(0, 0, 16, 16, 5) + body


def test_hextile_background_and_foreground_reuse_rules() -> None:
    """bg/fg carry over, but not across Raw tiles, and fg not across SubrectsColoured tiles."""
    rng = np.random.default_rng(3)
    rgb = filled(16, 16 * 7, A)
    rgb[2:4, 2:4] = B  # 0: two colours → bg, fg, subrects
    rgb[2:4, 18:20] = B  # 1: same colours → nothing re-specified
    rgb[3, 35] = B  # 2: coloured subrects (B and C)
    rgb[9, 40] = C
    rgb[1:3, 50:52] = B  # 3: two colours again → fg must be re-specified
    # 4: solid background → subencoding 0
    rgb[:, 80:96] = rng.integers(0, 256, (16, 16, 3))  # 5: noise → Raw
    # 6: solid again → background must be re-specified after Raw
    out = encode_one(HextileEncoder(), rgb)
    dec = RefDecoder(NOVNC_PF, 16 * 7, 16)
    dec.decode(out)
    assert dec.hextile_masks == [2 | 4 | 8, 8, 8 | 16, 4 | 8, 0, 1, 2]
    np.testing.assert_array_equal(dec.fb, rgb)


def test_hextile_noise_falls_back_to_raw() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    out = encode_one(HextileEncoder(), rgb)
    assert out == header(0, 0, 50, 37, 0) + converter_for(NOVNC_PF).convert(frame_of(rgb))


# --- RRE (rfbproto 7.7.3) ------------------------------------------------------------------------------------


def test_rre_background_and_one_subrect() -> None:
    rgb = filled(3, 5, A)
    rgb[1:3, 2:5] = B
    body = struct.pack(">I", 1) + px(A) + px(B) + struct.pack(">HHHH", 2, 1, 3, 2)
    assert encode_one(RREEncoder(), rgb) == header(0, 0, 5, 3, 2) + body


def test_rre_solid() -> None:
    assert encode_one(RREEncoder(), filled(40, 70, B)) == header(0, 0, 70, 40, 2) + b"\0\0\0\0" + px(B)


def test_rre_big_noise_is_the_raw_rectangle() -> None:
    """Decided from sampled row pairs: a tall noisy rectangle goes as exactly what the Raw encoder sends."""
    rgb = np.random.default_rng(5).integers(0, 256, (130, 90, 3), dtype=np.uint8)
    job = EncodeJob(frame_of(rgb), (Rect(0, 0, 90, 130),), NOVNC_PF)
    assert RREEncoder().encode(job) == RawEncoder().encode(job)


@pytest.mark.parametrize("busy_rows", ["sampled", "unsampled"])
def test_rre_rows_the_sample_misjudges(busy_rows: str) -> None:
    """Noise only on the rows the pair sample reads (so it guesses Raw), or only on the others (so it guesses
    RRE): either way the rectangle decodes exactly and is no larger than Raw."""
    h, w = 160, 96
    rgb = filled(h, w, A)
    rgb[40:60, 10:30] = B
    sampled = np.zeros(h, dtype=bool)
    sampled[0::16] = sampled[1::16] = True
    rows = sampled if busy_rows == "sampled" else ~sampled
    noise = np.random.default_rng(6).integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[rows] = noise[rows]
    out = encode_one(RREEncoder(), rgb)
    assert len(out) <= 12 + h * w * 4
    dec = RefDecoder(NOVNC_PF, w, h)
    dec.decode(out)
    np.testing.assert_array_equal(dec.fb, rgb)


def test_rre_tall_text_uses_the_sampled_background() -> None:
    rng = np.random.default_rng(7)
    frame = synthetic(rng, 200, 150, "text")
    out = RREEncoder().encode(EncodeJob(frame, (Rect(0, 0, 150, 200),), NOVNC_PF))
    assert struct.unpack_from(">I", out[0], 8)[0] == 2  # RRE, not Raw
    dec = RefDecoder(NOVNC_PF, 150, 200)
    dec.decode(out[0])
    np.testing.assert_array_equal(dec.fb, frame[:, :, 2::-1])
    colours, counts = np.unique(frame[:, :, 2::-1].reshape(-1, 3), axis=0, return_counts=True)
    assert out[0][16:20] == px(tuple(colours[counts.argmax()]))  # the text's background colour


@pytest.mark.parametrize("encoder", [RREEncoder, HextileEncoder])
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (16, 16), (33, 47), (120, 200)])
def test_never_larger_than_raw(encoder: type, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    for kind in ("noise", "text", "gradient"):
        frame = synthetic(rng, *shape, kind)
        h, w = shape
        out = encoder().encode(EncodeJob(frame, (Rect(0, 0, w, h),), NOVNC_PF))
        assert sum(len(r) for r in out) <= 12 + w * h * 4


# --- Zlib (rfbproto 7.7.5) ------------------------------------------------------------------------------------


def test_zlib_rectangles_share_one_stream_and_sync_flush() -> None:
    enc = ZlibEncoder()
    inflater = zlib.decompressobj()
    rng = np.random.default_rng(1)
    for i in range(4):
        rgb = rng.integers(0, 4, (9 + i, 13, 3), dtype=np.uint8) * 60
        out = encode_one(enc, rgb)
        assert out[:12] == header(0, 0, 13, 9 + i, 6)
        (length,) = struct.unpack(">I", out[12:16])
        data = out[16:]
        assert len(data) == length and data.endswith(b"\x00\x00\xff\xff")
        assert inflater.decompress(data) == converter_for(NOVNC_PF).convert(frame_of(rgb))
    assert not inflater.unconsumed_tail


@pytest.mark.parametrize("use_isal", [False, True])
def test_zlib_stream_levels(use_isal: bool) -> None:
    """The stream follows the client's compress level from one rectangle to the next (stdlib zlib at 9, then 0,
    2 and 1, ISA-L's where installed, back to 9), and one inflater reads it all: each new deflater is primed
    with the stream's last 32 KiB, so data sent again is still matched across a change (it shrinks)."""
    rng = np.random.default_rng(3)
    text = rng.choice(np.frombuffer(b"abcdefgh ijklmnop\n", np.uint8), 20_000).tobytes()
    s = ZlibStream(use_isal)
    inflater = zlib.decompressobj()
    sizes = {}
    for level in (9, 0, 2, 9, 1, 9):
        out = s.compress(text, level)
        assert inflater.decompress(out) == text
        fast = use_isal and ISAL is not None and level <= 2
        assert (s.backend, s.level) == ("isal" if fast else "zlib", (1 if level < 2 else 2) if fast else level)
        sizes.setdefault(level, []).append(len(out))
    if not (use_isal and ISAL is not None):
        assert sizes[0][0] > len(text)  # level 0: stored blocks (ISA-L serves 0 at its level 1)
    assert max(sizes[9][1:]) < 0.05 * len(text)  # after the first: all matched from the window
    assert sizes[9][0] < 0.7 * len(text)  # 18 symbols: about 4.2 bits each
    assert not inflater.unconsumed_tail


@pytest.mark.parametrize(
    ("client_level", "backend", "level"),
    [(None, "isal", 2), (0, "isal", 1), (2, "isal", 2), (3, "zlib", 3), (9, "zlib", 9)],
)
def test_zlib_stream_backend_by_client_level(client_level: int | None, backend: str, level: int) -> None:
    """No preference and the fast levels 0-2: the ISA-L deflater (its level 1 is smaller than storing);
    levels 3-9: stdlib zlib at that level, as TigerVNC does."""
    s = ZlibStream()
    data = bytes(range(256)) * 50
    assert zlib.decompressobj().decompress(s.compress(data, client_level)) == data
    assert (s.backend, s.level) == (backend if ISAL is not None else "zlib", level if ISAL is not None else s.level)


@pytest.mark.skipif(ISAL is None, reason="needs the isal package")
@pytest.mark.parametrize("small_blocks", [False, True])  # Zlib's buffers, ZRLE's
def test_isal_segments_form_one_zlib_stream(small_blocks: bool) -> None:
    """ISA-L segments (one raw deflate stream per call, primed with the last 32 KiB) read as one zlib stream:
    a standard inflater decodes every call exactly, a chunk sent again is matched across the segment
    boundary, and incompressible data goes as stored blocks instead of growing."""
    rng = np.random.default_rng(7)
    text = rng.choice(np.frombuffer(b"abcdefghij klmnop\n", np.uint8), 12_000).tobytes()
    photo = (np.cumsum(rng.integers(-3, 4, 30000), dtype=np.int64) % 256).astype(np.uint8).tobytes()
    noise = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    s = ZlibStream(small_blocks=small_blocks)
    inflater = zlib.decompressobj()
    sizes = []
    for chunk in (text, text, photo, noise, b"x", photo, noise[:70_000], text):
        out = s.compress(chunk, 2)
        assert out.endswith(b"\x00\x00\xff\xff")
        assert inflater.decompress(out) == chunk
        sizes.append(len(out))
    assert (s.backend, s.level) == ("isal", 2)
    # the text sent again is matched against the previous segment, through the primed window
    assert sizes[1] < sizes[0] / 5
    # noise never costs more than stored blocks (5 bytes per 64 KiB block and the flush)
    assert sizes[3] <= len(noise) + 5 * 5
    assert sizes[6] <= 70_000 + 5 * 3
    assert not inflater.unconsumed_tail


# --- ZRLE (rfbproto 7.7.6) -------------------------------------------------------------------------------------


def zrle_plain(out: bytes, inflater: zlib._Decompress | None = None) -> bytes:
    (length,) = struct.unpack(">I", out[12:16])
    assert len(out) == 16 + length
    return (inflater or zlib.decompressobj()).decompress(out[16:])


def test_zrle_solid_tile() -> None:
    out = encode_one(ZRLEEncoder(), filled(10, 70, A))
    assert out[:12] == header(0, 0, 70, 10, 16)
    # two tiles (64 and 6 wide), each solid, CPIXEL = 3 bytes R, G, B
    assert zrle_plain(out) == b"\x01" + bytes(A) + b"\x01" + bytes(A)


def test_zrle_two_colour_packed_palette() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    yy, xx = np.mgrid[0:8, 0:8]
    rgb[(xx + yy) % 2 == 0] = C  # value 0x030201: sorts first → index 0
    rgb[(xx + yy) % 2 == 1] = B  # value 0xC0B0A0 → index 1
    # rows alternate 0101… = 0x55 and 1010… = 0xAA, 1 bit a pixel
    expect = b"\x02" + bytes(C) + bytes(B) + b"\x55\xaa" * 4
    assert zrle_plain(encode_one(ZRLEEncoder(), rgb)) == expect


def test_zrle_palette_rle_and_run_lengths() -> None:
    # 3 colours in long runs: palette RLE (128 + 3); run lengths 256 = [255, 0], 1 = index only
    rgb = np.zeros((64, 64, 3), np.uint8)
    flat = rgb.reshape(-1, 3)
    flat[:] = A
    flat[256:257] = B
    flat[257 : 257 + 511] = C
    data = zrle_data(converter_for(NOVNC_PF).convert_array(frame_of(rgb)), layout_for(NOVNC_PF))
    # palette sorted by pixel value (R in the low byte): C=0x030201 < A=0x332211 < B=0xC0B0A0
    pal = bytes(C) + bytes(A) + bytes(B)
    runs = (
        bytes([0x80 | 1, 255, 0])  # A × 256
        + bytes([2])  # B × 1
        + bytes([0x80 | 0, 255, 255, 0])  # C × 511: 510 = [255, 255, 0]
        + bytes([0x80 | 1])
        + b"\xff" * 13
        + bytes([3327 % 255])  # A × 3328: 3327 = 13 × 255 + 12
    )
    assert data == bytes([128 + 3]) + pal + runs


@pytest.mark.parametrize(
    ("idx", "size", "expect"),
    [
        ([[0, 1, 1, 0, 1]], 2, b"\x68"),
        ([[1, 2, 3, 0, 2]], 4, b"\x6c\x80"),
        ([[5, 15, 0]], 16, b"\x5f\x00"),
        ([[1], [0], [1]], 2, b"\x80\x00\x80"),
    ],
)
def test_packed_indices_row_padding(idx: list[list[int]], size: int, expect: bytes) -> None:
    assert pack_indices(np.array(idx, np.uint8), size) == expect


BE32 = PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0)
LE32_HIGH = PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8)
BE32_HIGH = PixelFormat(32, 24, True, True, 255, 255, 255, 24, 16, 8)
DEPTH32 = PixelFormat(32, 32, False, True, 255, 255, 255, 16, 8, 0)
TEN_BIT = PixelFormat(32, 30, False, True, 1023, 1023, 1023, 20, 10, 0)
LOW16_IN_32 = PixelFormat(32, 16, False, True, 31, 63, 31, 11, 5, 0)
RGB565 = PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0)
BGR233 = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)


@pytest.mark.parametrize(
    ("pf", "size", "solid_cpixel"),
    [
        (NOVNC_PF, 3, bytes(A)),  # LE, colour in the low 3 bytes → wire bytes 0..2
        (NATIVE, 3, bytes(A[::-1])),  # BGRX
        (BE32, 3, bytes(A)),  # BE 0x00RRGGBB → wire bytes 1..3
        (LE32_HIGH, 3, bytes(A[::-1])),  # LE 0xRRGGBB00 → the high 3 bytes, wire bytes 1..3
        (BE32_HIGH, 3, bytes(A)),  # BE 0xRRGGBB00 → wire bytes 0..2
        (DEPTH32, 4, bytes(A[::-1]) + b"\0"),  # depth 32: full pixel
        (TEN_BIT, 4, None),  # colour bits span all 4 bytes
        (LOW16_IN_32, 3, None),  # depth 16 in 32 bpp: still 3 bytes (the low ones)
        (RGB565, 2, None),
        (BGR233, 1, None),
    ],
)
def test_cpixel_size(pf: PixelFormat, size: int, solid_cpixel: bytes | None) -> None:
    assert layout_for(pf).cpixel_size == size
    data = zrle_plain(encode_one(ZRLEEncoder(), filled(3, 3, A), pf))
    assert len(data) == 1 + size and data[0] == 1
    if solid_cpixel is not None:
        assert data[1:] == solid_cpixel
