"""Bytes-level tests of the Tight, TightPNG and JPEG encoders on tiny hand-computed cases."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from numpy.typing import NDArray

from pyvnc.encoders import tight, tightclassify
from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.jpeg import JPEGEncoder
from pyvnc.encoders.jpegutil import QUALITY_LEVELS, settings_for_level
from pyvnc.encoders.tight import TightEncoder, compact_length, split_rect
from pyvnc.encoders.tightpng import TightPNGEncoder
from pyvnc.errors import EncoderError
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat
from pyvnc.region import Rect

RGB565_LE = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
RGB565_BE = PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0)
BGR233 = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)
NOVNC = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)
DEPTH32 = PixelFormat(32, 32, False, True, 255, 255, 255, 16, 8, 0)


def frame_of(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A BGRX frame from an (h, w, 3) RGB array."""
    frame = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    frame[..., :3] = rgb[..., ::-1]
    return frame


def solid(w: int, h: int, rgb: tuple[int, int, int]) -> NDArray[np.uint8]:
    return frame_of(np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy())


def header(x: int, y: int, w: int, h: int, enc: int = 7) -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, enc)


def encode(
    enc: TightEncoder | TightPNGEncoder | JPEGEncoder, frame: NDArray[np.uint8], *rects: Rect, **kw: object
) -> list[bytes]:
    pf = kw.pop("pf", NATIVE)
    return enc.encode(EncodeJob(frame, tuple(rects), pf, **kw))  # type: ignore[arg-type]


# --- compact lengths (rfbproto "Tight Encoding", JpegCompression) ---------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (10000, "904e"),  # the spec's own example
        (16383, "ff7f"),
        (16384, "808001"),
        (4194303, "ffffff"),
    ],
)
def test_compact_length(n: int, expected: str) -> None:
    assert compact_length(n) == bytes.fromhex(expected)


def test_compact_length_round_trips_every_width() -> None:
    for n in [*range(0, 300), *range(16000, 16800), 2**21, 4194302]:
        b = compact_length(n)
        assert len(b) == (1 if n < 128 else 2 if n < 16384 else 3)
        value = b[0] & 0x7F
        if b[0] & 0x80:
            value |= (b[1] & 0x7F) << 7
            if b[1] & 0x80:
                value |= b[2] << 14
        assert value == n


@pytest.mark.parametrize("n", [-1, 4194304])
def test_compact_length_out_of_range(n: int) -> None:
    with pytest.raises(EncoderError):
        compact_length(n)


# --- FillCompression --------------------------------------------------------------------------------------


def test_fill_32bpp_is_three_rgb_bytes() -> None:
    frame = solid(8, 6, (0x12, 0x34, 0x56))
    out = encode(TightEncoder(), frame, Rect(1, 2, 4, 3))
    assert out == [header(1, 2, 4, 3) + b"\x80\x12\x34\x56"]


def test_fill_tpixel_ignores_the_client_shifts() -> None:
    frame = solid(4, 4, (0x12, 0x34, 0x56))
    assert encode(TightEncoder(), frame, Rect(0, 0, 4, 4), pf=NOVNC) == [header(0, 0, 4, 4) + b"\x80\x12\x34\x56"]


def test_fill_depth32_is_a_full_pixel() -> None:
    frame = solid(4, 4, (0x12, 0x34, 0x56))
    out = encode(TightEncoder(), frame, Rect(0, 0, 4, 4), pf=DEPTH32)
    assert out == [header(0, 0, 4, 4) + b"\x80" + (0x123456).to_bytes(4, "little")]


@pytest.mark.parametrize(("pf", "pixel"), [(RGB565_LE, b"\x00\xf8"), (RGB565_BE, b"\xf8\x00"), (BGR233, b"\x07")])
def test_fill_16_and_8bpp_is_a_client_pixel(pf: PixelFormat, pixel: bytes) -> None:
    frame = solid(5, 5, (255, 0, 0))
    assert encode(TightEncoder(), frame, Rect(0, 0, 5, 5), pf=pf) == [header(0, 0, 5, 5) + b"\x80" + pixel]


def test_fill_tightpng_uses_the_tight_png_encoding_number() -> None:
    frame = solid(4, 4, (1, 2, 3))
    assert encode(TightPNGEncoder(), frame, Rect(0, 0, 4, 4)) == [header(0, 0, 4, 4, -260) + b"\x80\x01\x02\x03"]


def test_solid_strips_merge_into_one_fill() -> None:
    frame = solid(1000, 300, (9, 9, 9))  # 1000 x 300 > 65536 pixels: several strips, one colour
    assert encode(TightEncoder(), frame, Rect(0, 0, 1000, 300)) == [header(0, 0, 1000, 300) + b"\x80\x09\x09\x09"]


# --- PaletteFilter ----------------------------------------------------------------------------------------


def test_two_colours_make_a_mono_bitmap() -> None:
    # 10 x 2: row 0 alternates A B A B..., row 1 is B then A x 9. A < B as 0xRRGGBB values.
    a, b = (0x10, 0x20, 0x30), (0xF0, 0xE0, 0xD0)
    rgb = np.empty((2, 10, 3), dtype=np.uint8)
    rgb[0] = [a if i % 2 == 0 else b for i in range(10)]
    rgb[1] = [b] + [a] * 9
    out = encode(TightEncoder(), frame_of(rgb), Rect(0, 0, 10, 2))
    # 2 rows x 2 bytes = 4 bytes < 12: sent as is. Bits MSB first, rows padded: 0101010101|000000
    data = bytes([0b01010101, 0b01000000, 0b10000000, 0b00000000])
    ctl = 0x40 | (1 << 4)  # read filter id, stream 1
    expected = header(0, 0, 10, 2) + bytes([ctl, 1, 1]) + bytes(a) + bytes(b) + data
    assert out == [expected]


def test_mono_bitmap_over_12_bytes_is_deflated_on_its_stream() -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[::2, ::3] = 255
    enc = TightEncoder(zlib_backend=zlib)
    (out,) = encode(enc, frame_of(rgb), Rect(0, 0, 16, 16))
    body = out[12:]
    assert body[:3] == bytes([0x50, 1, 1])
    assert body[3:9] == bytes(3) + bytes([255] * 3)
    length = body[9]
    assert length < 128 and len(body) == 10 + length
    bits = zlib.decompressobj().decompress(body[10:])
    assert bits == np.packbits(rgb[..., 0] == 255, axis=1).tobytes()


def test_indexed_palette_of_three_colours() -> None:
    rgb = np.zeros((4, 3, 3), dtype=np.uint8)
    rgb[:, 1] = (1, 1, 1)
    rgb[:, 2] = (2, 2, 2)
    (out,) = encode(TightEncoder(), frame_of(rgb), Rect(0, 0, 3, 4))
    body = out[12:]
    assert body[:3] == bytes([0x40 | (1 << 4), 1, 2])  # stream 1, palette filter, 3 colours
    assert body[3:12] == bytes([0, 0, 0, 1, 1, 1, 2, 2, 2])
    # 12 index bytes: compressed (not < 12)
    assert zlib.decompressobj().decompress(body[13:]) == bytes([0, 1, 2] * 4)
    assert body[12] == len(body) - 13


# --- CopyFilter and the 12-byte rule ------------------------------------------------------------------------


def test_copy_under_12_bytes_is_sent_as_is() -> None:
    rgb = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]], dtype=np.uint8)  # 3 colours in 3 pixels: no palette
    assert encode(TightEncoder(), frame_of(rgb), Rect(0, 0, 3, 1)) == [
        header(0, 0, 3, 1) + b"\x00" + bytes(range(1, 10))
    ]


def test_copy_of_12_bytes_is_deflated() -> None:
    rgb = np.arange(12, dtype=np.uint8).reshape(1, 4, 3)
    (out,) = encode(TightEncoder(), frame_of(rgb), Rect(0, 0, 4, 1))
    assert out[12] == 0x00  # stream 0, copy filter implied
    assert out[13] == len(out) - 14
    assert zlib.decompressobj().decompress(out[14:]) == bytes(range(12))


def test_copy_16bpp_sends_client_pixels() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    out = encode(TightEncoder(), frame_of(rgb), Rect(0, 0, 3, 1), pf=RGB565_BE)
    assert out == [header(0, 0, 3, 1) + b"\x00" + b"\xf8\x00\x07\xe0\x00\x1f"]


def test_long_runs_of_many_colours_take_the_copy_filter_and_a_gradient_the_gradient_filter() -> None:
    """Full-colour strips: long runs (text, user interface) go with the copy filter without a trial; a
    smooth gradient, where every pixel differs from the next, is tried and goes with the gradient filter."""
    rng = np.random.default_rng(4)
    colours = rng.integers(0, 256, (400, 3), dtype=np.uint8)
    runs = colours[rng.integers(0, 400, (64, 512 // 16))]  # runs of 16 pixels, 400 colours
    text = np.repeat(runs, 16, axis=1)
    x = np.arange(512)[None, :, None]
    y = np.arange(64)[:, None, None]
    gradient = np.broadcast_to(((x + 2 * y) * np.array([1, 2, 3])) % 256, (64, 512, 3)).astype(np.uint8)
    (out,) = encode(TightEncoder(), frame_of(np.ascontiguousarray(text)), Rect(0, 0, 512, 64))
    assert out[12] >> 4 == 0, hex(out[12])  # stream 0, no filter byte: the copy filter
    frame = frame_of(gradient)
    (out,) = encode(TightEncoder(), frame, Rect(0, 0, 512, 64))
    assert out[12] >> 4 == 0x4 | 3 and out[13] == 2, out[12:14].hex()  # stream 3, filter byte: gradient
    # the same pixels said to have long runs are not even tried
    ctx = TightEncoder()._context(EncodeJob(frame, (), NATIVE))
    values = frame.view("<u4")[..., 0] & np.uint32(0xFFFFFF)
    assert tight._trial(ctx, frame, values, 1.0) == tight.FILTER_GRADIENT
    assert tight._trial(ctx, frame, values, 0.1) == tight.FILTER_COPY


def test_under_jpeg_long_runs_of_up_to_256_colours_keep_a_palette() -> None:
    """Text with anti-aliasing at a quality level: 150 colours in runs of 4 could never go to JPEG (too few
    pixels differ from their neighbour), so they get a palette rather than the copy filter; the same colours
    in runs of 2, which JPEG would take, do not."""
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (150, 3), dtype=np.uint8)
    for run, palette in ((4, True), (2, False)):
        idx = rng.permutation(np.resize(np.arange(150), (64, 512 // run)).ravel()).reshape(64, -1)
        rgb = np.ascontiguousarray(np.repeat(colours[idx], run, axis=1))
        (out,) = encode(TightEncoder(), frame_of(rgb), Rect(0, 0, 512, 64), quality=6)
        is_palette = out[12] & 0x40 != 0 and out[13] == 1  # a filter byte follows, and it is the palette
        assert is_palette == palette, (run, out[12:14].hex())


# --- splitting ------------------------------------------------------------------------------------------


def test_split_rect_limits() -> None:
    parts = split_rect(Rect(5, 7, 3000, 40))
    # 2048 x 40 > 65536 pixels: 32 + 8 rows; then the 952-wide column, whole
    assert [(p.x, p.y, p.w, p.h) for p in parts] == [(5, 7, 2048, 32), (5, 39, 2048, 8), (2053, 7, 952, 40)]
    assert all(p.area <= 65536 for p in parts)
    parts = split_rect(Rect(0, 0, 1000, 100))
    assert [p.h for p in parts] == [64, 36]  # 65536 // 1000 = 65, rounded down to a multiple of 16
    assert sum(p.area for p in split_rect(Rect(3, 4, 4099, 517))) == 4099 * 517


def test_wide_rect_is_split_at_2048() -> None:
    rng = np.random.default_rng(0)
    frame = frame_of(rng.integers(0, 256, (20, 3000, 3), dtype=np.uint8))
    out = encode(TightEncoder(), frame, Rect(0, 0, 3000, 20))
    rects = [struct.unpack(">HHHHi", o[:12]) for o in out]
    assert all(w <= 2048 and enc == 7 for _, _, w, _, enc in rects)
    assert sum(w * h for _, _, w, h, _ in rects) == 3000 * 20
    assert {x for x, *_ in rects} == {0, 2048}


# --- JPEG ---------------------------------------------------------------------------------------------


def _noise(w: int, h: int) -> NDArray[np.uint8]:
    return frame_of(np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_tight_jpeg_framing() -> None:
    (out,) = encode(TightEncoder(), _noise(64, 32), Rect(0, 0, 64, 32), quality=5)
    assert out[:12] == header(0, 0, 64, 32) and out[12] == 0x90
    b0, b1 = out[13], out[14]
    assert b0 & 0x80
    length = (b0 & 0x7F) | ((b1 & 0x7F) << 7) | ((out[15] << 14) if b1 & 0x80 else 0)
    start = 16 if b1 & 0x80 else 15
    assert len(out) == start + length
    assert out[start : start + 2] == b"\xff\xd8" and out.endswith(b"\xff\xd9")


def test_no_jpeg_without_a_quality_level_or_tpixels() -> None:
    (out,) = encode(TightEncoder(), _noise(64, 32), Rect(0, 0, 64, 32))
    assert out[12] >> 4 != 0x9
    for o in encode(TightEncoder(), _noise(64, 32), Rect(0, 0, 64, 32), pf=RGB565_LE, quality=9):
        assert o[12] >> 4 != 0x9


def test_jpeg_encoding_is_a_bare_jfif() -> None:
    (out,) = encode(JPEGEncoder(), _noise(33, 17), Rect(0, 0, 33, 17), quality=2)
    assert out[:12] == header(0, 0, 33, 17, 21)
    assert out[12:14] == b"\xff\xd8" and out.endswith(b"\xff\xd9")


def test_quality_table() -> None:
    assert len(QUALITY_LEVELS) == 10
    qualities = [s.quality for s in QUALITY_LEVELS]
    assert qualities == sorted(qualities)
    assert settings_for_level(None) == QUALITY_LEVELS[6]
    assert settings_for_level(42) == QUALITY_LEVELS[9] and settings_for_level(-3) == QUALITY_LEVELS[0]


# --- stream resets and supports() ------------------------------------------------------------------------


def _text_like(w: int, h: int) -> NDArray[np.uint8]:
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[::3, ::2] = (200, 100, 50)
    rgb[1::4, 1::5] = (10, 250, 30)
    return frame_of(rgb)


def test_compress_level_change_keeps_the_stream() -> None:
    # no reset bits for a level change: noVNC's inflater loses its window on a reset
    enc = TightEncoder(zlib_backend=zlib)
    frame = _text_like(40, 40)
    inflater = zlib.decompressobj()
    for compress in (1, 1, 9, 0):
        (out,) = encode(enc, frame, Rect(0, 0, 40, 40), compress=compress)
        assert out[12] == 0x50
        n = out[15 + 3 * 3]
        assert len(inflater.decompress(out[16 + 9 :])) == 40 * 40, n


def test_reset_marks_all_streams_on_the_next_rect() -> None:
    enc = TightEncoder()
    frame = solid(8, 8, (1, 2, 3))
    encode(enc, frame, Rect(0, 0, 8, 8))
    enc.reset()
    (out,) = encode(enc, frame, Rect(0, 0, 8, 8))
    assert out[12] == 0x8F
    (out,) = encode(enc, frame, Rect(0, 0, 8, 8))
    assert out[12] == 0x80


def test_after_reset_rects_are_deflated_independently() -> None:
    enc = TightEncoder(zlib_backend=zlib)
    frame = _text_like(40, 40)
    encode(enc, frame, Rect(0, 0, 40, 40))
    enc.reset()
    first, second = (encode(enc, frame, Rect(0, 0, 40, 40))[0] for _ in range(2))
    assert first[12] == 0x5F and second[12] == 0x50
    # the second inflates on its own (raw deflate, no zlib header): no reference into the first
    assert len(zlib.decompressobj().decompress(first[16 + 9 :])) == 40 * 40
    assert len(zlib.decompressobj(-15).decompress(second[16 + 9 :])) == 40 * 40


@pytest.mark.parametrize(
    ("pf", "tight", "tpng", "jpeg"),
    [
        (NATIVE, True, True, True),
        (NOVNC, True, True, True),
        (PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0), True, True, True),
        (DEPTH32, True, False, False),
        (RGB565_LE, True, False, False),
        (BGR233, True, False, False),
    ],
)
def test_supports(pf: PixelFormat, tight: bool, tpng: bool, jpeg: bool) -> None:
    assert TightEncoder.supports(pf) is tight
    assert TightPNGEncoder.supports(pf) is tpng
    assert JPEGEncoder.supports(pf) is jpeg


def test_empty_rect_gives_nothing() -> None:
    frame = solid(4, 4, (0, 0, 0))
    assert encode(TightEncoder(), frame, Rect(0, 0, 0, 4)) == []
    assert encode(JPEGEncoder(), frame, Rect(0, 0, 4, 0)) == []


def test_pillow_jpeg_fallback_decodes() -> None:
    from PIL import Image

    from pyvnc.encoders import jpegutil

    frame = _noise(40, 24)
    for level in (0, 7, 9):
        data = jpegutil._compress_jpeg_pillow(frame, settings_for_level(level))
        img = Image.open(__import__("io").BytesIO(data))
        assert img.format == "JPEG" and img.size == (40, 24)


@pytest.mark.parametrize("width", [1920, 4100])  # one column of strips; strips in column chunks of 2048
@pytest.mark.parametrize("jpeg", [False, True])
def test_strips_sampled_at_once_are_classified_as_one_by_one(width: int, jpeg: bool) -> None:
    """many_colour_strips answers classify's sample tests for all strips of one size together: every
    strip it finds many colours in must get exactly the kind classify gives it, it must miss none of them,
    and a strip it says passed both tests gets the same kind from classify without them."""
    rng = np.random.default_rng(width)
    h = 300
    noise = rng.integers(0, 1 << 24, (h, width)).astype(np.uint32)
    smooth = (np.arange(width)[None, :] * 97 + np.arange(h)[:, None] * 13).astype(np.uint32) & 0xFFFFFF
    text = np.where(rng.random((h, width)) < 0.1, 0x101010, 0xF0F0F0).astype(np.uint32)
    values = np.where((np.arange(h) // 40 % 3 == 0)[:, None], noise, np.where(np.arange(h)[:, None] % 3, smooth, text))
    rect = Rect(5, 9, width, h)
    strips = split_rect(rect)
    limit = tightclassify.MAX_PALETTE if jpeg else tightclassify.MAX_PALETTE_WITH_JPEG
    batch = tightclassify.many_colour_strips(rect, values, strips, limit)
    assert batch  # the noisy and smooth strips
    for i, s in enumerate(strips):
        v = values[s.y - rect.y : s.bottom - rect.y, s.x - rect.x : s.right - rect.x]
        alone = tightclassify.classify(v, tightclassify.MAX_PALETTE_WITH_JPEG, jpeg)
        if batch.get(i) is not None:
            assert batch[i] == alone
        elif (s.w, s.h) == (strips[0].w, strips[0].h):  # sampled with the group, and neither sample has
            assert i in batch  # more than ``limit`` colours
            flat = v.reshape(-1)
            for sample in (tightclassify.SAMPLE // 4, tightclassify.SAMPLE):
                assert np.unique(flat[:: max(1, flat.size // sample)]).size <= limit
            skipped = tightclassify.classify(v, tightclassify.MAX_PALETTE_WITH_JPEG, jpeg, sampled=True)
            assert type(skipped) is type(alone)
            if isinstance(alone, tightclassify.Palette):
                assert isinstance(skipped, tightclassify.Palette)
                assert np.array_equal(skipped.colours, alone.colours)
                assert np.array_equal(skipped.indices, alone.indices)
            else:
                assert skipped == alone
