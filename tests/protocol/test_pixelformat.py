"""Pixel formats: wire layout, validation, and conversion checked against references written apart from the module.

Two references: :func:`reference_bytes` computes every pixel value with a plain integer formula in numpy uint64
and packs it with an explicit dtype; :func:`python_reference_bytes` does the same pixel by pixel in pure Python
with :mod:`struct` (small arrays only).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pyvnc.errors import ProtocolError
from pyvnc.protocol.pixelformat import (
    COLOUR_MAP_FORMAT,
    NATIVE,
    PixelConverter,
    PixelFormat,
    colour_map_palette,
    converter_for,
    decode_pixels,
    effective_format,
    set_colour_map_entries_message,
)

FORMATS = {
    "native": NATIVE,
    "bgrx-be": PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
    "rgbx-le (noVNC)": PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16),
    "rgbx-be": PixelFormat(32, 24, True, True, 255, 255, 255, 0, 8, 16),
    "xrgb-le": PixelFormat(32, 32, False, True, 255, 255, 255, 24, 16, 8),
    "xbgr-le": PixelFormat(32, 24, False, True, 255, 255, 255, 8, 16, 24),
    "bgrx-memory-as-be": PixelFormat(32, 24, True, True, 255, 255, 255, 8, 16, 24),
    "gbr-permuted-le": PixelFormat(32, 24, False, True, 255, 255, 255, 0, 16, 8),
    "permuted-be": PixelFormat(32, 24, True, True, 255, 255, 255, 24, 0, 16),
    "10-bit": PixelFormat(32, 30, False, True, 1023, 1023, 1023, 20, 10, 0),
    "10-bit-be": PixelFormat(32, 30, True, True, 1023, 1023, 1023, 0, 10, 20),
    "16-bit-red-32": PixelFormat(32, 32, True, True, 65535, 255, 255, 16, 8, 0),
    "odd-shifts-32": PixelFormat(32, 24, False, True, 255, 255, 255, 3, 13, 22),
    "rgb565-le": PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    "rgb565-be": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "rgb555-le": PixelFormat(16, 15, False, True, 31, 31, 31, 10, 5, 0),
    "bgr555-be": PixelFormat(16, 15, True, True, 31, 31, 31, 0, 5, 10),
    "rgb444": PixelFormat(16, 12, False, True, 15, 15, 15, 8, 4, 0),
    "overlapping-16": PixelFormat(16, 16, True, True, 255, 255, 255, 0, 4, 8),
    "16-bit-red-16": PixelFormat(16, 16, False, True, 65535, 1, 1, 0, 3, 9),
    "bgr233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
    "rgb332 (colour map)": COLOUR_MAP_FORMAT,
    "rgb222": PixelFormat(8, 6, False, True, 3, 3, 3, 4, 2, 0),
    "rgb111-be": PixelFormat(8, 3, True, True, 1, 1, 1, 2, 1, 0),
}

SHAPES = [(37, 53), (1, 1), (1, 29), (31, 1), (64, 64)]


def reference_values(pf: PixelFormat, bgrx: np.ndarray) -> np.ndarray:
    """Pixel values as uint64: each channel scaled by (v * max + 127) // 255, shifted, OR'ed."""
    b = bgrx[..., 0].astype(np.uint64)
    g = bgrx[..., 1].astype(np.uint64)
    r = bgrx[..., 2].astype(np.uint64)

    def scale(c: np.ndarray, mx: int) -> np.ndarray:
        return (c * np.uint64(mx) + np.uint64(127)) // np.uint64(255)

    return (
        (scale(r, pf.red_max) << np.uint64(pf.red_shift))
        | (scale(g, pf.green_max) << np.uint64(pf.green_shift))
        | (scale(b, pf.blue_max) << np.uint64(pf.blue_shift))
    )


def reference_bytes(pf: PixelFormat, bgrx: np.ndarray) -> bytes:
    code = {8: "u1", 16: "u2", 32: "u4"}[pf.bits_per_pixel]
    return reference_values(pf, bgrx).astype((">" if pf.big_endian else "<") + code).tobytes()


def python_reference_bytes(pf: PixelFormat, bgrx: np.ndarray) -> bytes:
    """Pixel by pixel in pure Python: the integer formula, then struct.pack."""
    fmt = (">" if pf.big_endian else "<") + {8: "B", 16: "H", 32: "I"}[pf.bits_per_pixel]
    out = bytearray()
    for row in bgrx.tolist():
        for b, g, r, _x in row:
            value = 0
            for v, mx, shift in ((r, pf.red_max, pf.red_shift), (g, pf.green_max, pf.green_shift)):
                value |= ((v * mx + 127) // 255) << shift
            value |= ((b * pf.blue_max + 127) // 255) << pf.blue_shift
            out += struct.pack(fmt, value)
    return bytes(out)


def random_frame(h: int, w: int, seed: int = 1, x_byte: int | None = 0) -> np.ndarray:
    """Random BGRX pixels; byte 3 is ``x_byte``, or random when None."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if x_byte is not None:
        frame[..., 3] = x_byte
    return frame


def view_of(shape: tuple[int, int], seed: int, x_byte: int | None = 0) -> np.ndarray:
    """A non-contiguous (h, w, 4) view into a bigger frame, as encoders pass sub-rectangles."""
    h, w = shape
    big = random_frame(h + 7, w + 9, seed=seed, x_byte=x_byte)
    view = big[3 : 3 + h, 5 : 5 + w]
    assert not view.flags.c_contiguous or h == 1
    return view


# --- wire layout -------------------------------------------------------------------------------------------------


def test_pack_parse_roundtrip_and_layout() -> None:
    # bpp, depth, big-endian, true-colour, red/green/blue-max (U16 big-endian), red/green/blue-shift, 3 padding
    raw = bytes([16, 16, 1, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0])
    pf = PixelFormat.parse(raw)
    assert pf == PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0)
    assert pf.pack() == raw
    assert pf.bytes_per_pixel == 2
    assert PixelFormat.STRUCT.size == 16
    assert NATIVE.pack() == bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0])
    assert NATIVE.bytes_per_pixel == 4 and COLOUR_MAP_FORMAT.bytes_per_pixel == 1


def test_parse_wide_maxima_and_any_nonzero_flag() -> None:
    raw = bytes([32, 30, 0xFF, 7, 0x03, 0xFF, 0x03, 0xFF, 0x03, 0xFF, 20, 10, 0, 9, 9, 9])
    pf = PixelFormat.parse(raw)
    assert pf == PixelFormat(32, 30, True, True, 1023, 1023, 1023, 20, 10, 0)
    # flags are written back as 1 and padding as zeros
    assert pf.pack() == bytes([32, 30, 1, 1, 3, 255, 3, 255, 3, 255, 20, 10, 0, 0, 0, 0])


def test_pixel_format_is_hashable_and_frozen() -> None:
    a = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
    b = PixelFormat.parse(a.pack())
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.depth = 8  # type: ignore[misc]


# --- validation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pf", "message"),
    [
        (PixelFormat(24, 24, False, True, 255, 255, 255, 16, 8, 0), "bits-per-pixel"),
        (PixelFormat(0, 0, False, True, 255, 255, 255, 16, 8, 0), "bits-per-pixel"),
        (PixelFormat(64, 24, False, True, 255, 255, 255, 16, 8, 0), "bits-per-pixel"),
        (PixelFormat(16, 24, False, True, 31, 63, 31, 11, 5, 0), "depth"),
        (PixelFormat(8, 9, False, True, 7, 7, 3, 5, 2, 0), "depth"),
        (PixelFormat(32, 33, False, True, 255, 255, 255, 16, 8, 0), "depth"),
        (PixelFormat(8, 0, False, True, 7, 7, 3, 5, 2, 0), "depth"),
        (PixelFormat(16, 16, False, True, 30, 63, 31, 11, 5, 0), "red-max"),
        (PixelFormat(16, 16, False, True, 31, 0, 31, 11, 5, 0), "green-max"),
        (PixelFormat(16, 16, False, True, 31, 63, 6, 11, 5, 0), "blue-max"),
        (PixelFormat(32, 24, False, True, 256, 255, 255, 16, 8, 0), "red-max"),
        (PixelFormat(16, 16, False, True, 31, 63, 31, 12, 5, 0), "red .* does not fit"),
        (PixelFormat(8, 8, False, True, 7, 7, 3, 5, 2, 7), "blue .* does not fit"),
        (PixelFormat(16, 16, False, True, 65535, 1, 1, 1, 0, 0), "red .* does not fit"),
        (PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 40), "blue-shift"),
        (PixelFormat(32, 24, False, True, 255, 1, 255, 16, 32, 0), "green-shift"),
        (PixelFormat(16, 16, False, False, 0, 0, 0, 0, 0, 0), "colour maps"),
        (PixelFormat(32, 24, False, False, 0, 0, 0, 0, 0, 0), "colour maps"),
    ],
)
def test_validate_rejects(pf: PixelFormat, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        pf.validate()


@pytest.mark.parametrize(
    "pf",
    [
        *FORMATS.values(),
        PixelFormat(32, 32, False, True, 255, 255, 255, 16, 8, 0),  # depth may equal bpp
        PixelFormat(16, 16, False, True, 255, 255, 255, 0, 0, 0),  # all three channels on the same bits
        PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0),  # a colour map at 8 bpp
        PixelFormat(8, 8, True, False, 0, 0, 0, 0, 0, 0),
    ],
)
def test_validate_accepts(pf: PixelFormat) -> None:
    pf.validate()


# --- conversion --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("shape", SHAPES)
def test_convert_matches_reference(name: str, shape: tuple[int, int]) -> None:
    pf = FORMATS[name]
    view = view_of(shape, seed=shape[0] * 100 + shape[1])
    conv = converter_for(pf)
    data = conv.convert(view)
    assert len(data) == shape[0] * shape[1] * pf.bytes_per_pixel
    assert data == reference_bytes(pf, view)
    assert conv.convert(np.ascontiguousarray(view)) == data


@pytest.mark.parametrize("name", list(FORMATS))
def test_convert_matches_pure_python_reference(name: str) -> None:
    pf = FORMATS[name]
    view = view_of((13, 17), seed=3)
    assert converter_for(pf).convert(view) == python_reference_bytes(pf, view)


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("shape", SHAPES)
def test_convert_array_values_and_to_bytes(name: str, shape: tuple[int, int]) -> None:
    pf = FORMATS[name]
    view = view_of(shape, seed=7 + shape[0])
    conv = converter_for(pf)
    values = conv.convert_array(view)
    assert values.shape == shape
    assert values.dtype == {8: np.uint8, 16: np.uint16, 32: np.uint32}[pf.bits_per_pixel]
    assert values.dtype.isnative
    assert np.array_equal(values.astype(np.uint64), reference_values(pf, view))
    assert conv.to_bytes(values) == conv.convert(view)
    # a slice of the values serialises like converting the same slice of pixels
    assert conv.to_bytes(values[:, ::2]) == conv.convert(view[:, ::2])


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_channel_value_maps_like_the_formula(name: str) -> None:
    """All 256 values of each channel alone, and a grey ramp, so no table entry goes untested."""
    pf = FORMATS[name]
    ramp = np.arange(256, dtype=np.uint8)
    frame = np.zeros((4, 256, 4), np.uint8)
    for row, channel in enumerate((0, 1, 2)):
        frame[row, :, channel] = ramp
    frame[3, :, :3] = ramp[:, None]
    assert converter_for(pf).convert(frame) == reference_bytes(pf, frame)


@pytest.mark.parametrize("name", list(FORMATS))
def test_unused_byte_is_ignored_by_values_and_channel_bits(name: str) -> None:
    """Byte 3 of a frame is unused: with garbage there, values and decoded colours are unchanged."""
    pf = FORMATS[name]
    dirty = view_of((9, 11), seed=4, x_byte=None)
    clean = dirty.copy()
    clean[..., 3] = 0
    conv = converter_for(pf)
    assert np.array_equal(conv.convert_array(dirty), conv.convert_array(clean))
    assert np.array_equal(decode_pixels(pf, conv.convert(dirty), 11, 9), decode_pixels(pf, conv.convert(clean), 11, 9))


@pytest.mark.parametrize("name", list(FORMATS))
def test_conversion_never_touches_or_aliases_the_frame(name: str) -> None:
    frame = random_frame(16, 16, seed=11)
    before = frame.copy()
    conv = converter_for(FORMATS[name])
    values = conv.convert_array(frame)
    conv.convert(frame)
    assert np.array_equal(frame, before)
    assert not np.shares_memory(values, frame)
    values[...] = 0  # encoders may scribble on their values
    assert np.array_equal(frame, before)


@pytest.mark.parametrize("name", ["native", "rgbx-le (noVNC)", "permuted-be", "rgb565-be", "bgr233"])
def test_pixels_whose_bytes_are_not_contiguous(name: str) -> None:
    """An (h, w, 4) array whose last axis is strided still converts (by copying it first)."""
    pf = FORMATS[name]
    wide = np.repeat(random_frame(6, 7, seed=2), 2, axis=2)  # each byte twice
    pixels = wide[..., ::2]
    assert pixels.strides[2] == 2
    assert converter_for(pf).convert(pixels) == reference_bytes(pf, pixels)
    assert np.array_equal(converter_for(pf).convert_array(pixels).astype(np.uint64), reference_values(pf, pixels))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
@pytest.mark.parametrize("name", ["native", "rgbx-le (noVNC)", "rgb565-le", "bgr233"])
def test_empty_rectangles(name: str, shape: tuple[int, int]) -> None:
    conv = converter_for(FORMATS[name])
    pixels = np.zeros((*shape, 4), np.uint8)
    assert conv.convert(pixels) == b""
    assert conv.convert_array(pixels).shape == shape


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((2, 2, 4))])
def test_convert_rejects_arrays_that_are_not_bgrx(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="BGRX"):
        converter_for(NATIVE).convert(bad)
    with pytest.raises(ValueError, match="BGRX"):
        converter_for(FORMATS["rgb565-le"]).convert_array(bad)


def test_native_is_a_plain_copy() -> None:
    frame = random_frame(10, 10, x_byte=None)
    for pf in (NATIVE, FORMATS["bgrx-memory-as-be"]):
        conv = converter_for(pf)
        assert conv.is_native
        assert conv.convert(frame) == frame.tobytes()
        assert conv.convert(frame[2:5, 3:9]) == frame[2:5, 3:9].tobytes()
    assert not converter_for(FORMATS["bgrx-be"]).is_native


def test_converter_construction() -> None:
    assert converter_for(PixelFormat.parse(NATIVE.pack())) is converter_for(NATIVE)
    with pytest.raises(ValueError, match="true-colour"):
        PixelConverter(PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0))
    with pytest.raises(ProtocolError):
        PixelConverter(PixelFormat(16, 16, False, True, 30, 63, 31, 11, 5, 0))


# --- decoding ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMATS))
def test_decode_inverts_within_quantisation(name: str) -> None:
    pf = FORMATS[name]
    frame = random_frame(20, 30, seed=5)
    conv = converter_for(pf)
    data = conv.convert(frame)
    rgb = decode_pixels(pf, data, 30, 20)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert np.array_equal(conv.decode(data, 30, 20), rgb)
    src = frame[..., 2::-1].astype(int)
    for i, mx in enumerate((pf.red_max, pf.green_max, pf.blue_max)):
        if "overlap" in name or "16-bit-red-16" in name:
            continue  # channels share bits: colours do not survive
        err = np.abs(rgb[..., i].astype(int) - src[..., i])
        if mx >= 255:
            assert err.max() == 0
        else:
            # v → round(v * mx / 255) → back: off by at most half a quantisation step (plus rounding)
            assert err.max() <= 255 / mx / 2 + 0.5


def test_decode_is_exact_for_every_8bit_value() -> None:
    ramp = np.zeros((1, 256, 4), np.uint8)
    ramp[0, :, :3] = np.arange(256, dtype=np.uint8)[:, None]
    for name in ("native", "bgrx-be", "rgbx-le (noVNC)", "xbgr-le", "permuted-be", "10-bit", "16-bit-red-32"):
        pf = FORMATS[name]
        rgb = decode_pixels(pf, converter_for(pf).convert(ramp), 256, 1)
        assert np.array_equal(rgb[0, :, 0], np.arange(256)), name


def test_decode_pixels_checks_length_and_handles_colour_maps() -> None:
    with pytest.raises(ValueError, match="need 8 bytes"):
        decode_pixels(FORMATS["rgb565-le"], b"\0" * 7, 2, 2)
    data = bytes([0b111_000_00, 0b000_111_00, 0b000_000_11, 0xFF])
    cmap = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)
    rgb = decode_pixels(cmap, data, 2, 2)
    assert rgb.reshape(4, 3).tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]


# --- colour maps -------------------------------------------------------------------------------------------------


def test_effective_format() -> None:
    cmap = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)
    assert effective_format(cmap) == COLOUR_MAP_FORMAT
    assert effective_format(NATIVE) is NATIVE
    assert effective_format(FORMATS["rgb565-be"]) is FORMATS["rgb565-be"]


def test_colour_map_palette_matches_332_mapping() -> None:
    palette = colour_map_palette()
    assert len(palette) == 256
    assert palette[0] == (0, 0, 0) and palette[255] == (65535, 65535, 65535)
    assert palette[0b111_000_00] == (65535, 0, 0)
    assert palette[0b000_111_00] == (0, 65535, 0)
    assert palette[0b000_000_11] == (0, 0, 65535)
    for index, colour in enumerate(palette):
        r, g, b = index >> 5, (index >> 2) & 7, index & 3
        assert colour == (round(r * 65535 / 7), round(g * 65535 / 7), round(b * 65535 / 3))
    colour_map_palette().append((1, 2, 3))  # callers get their own list
    assert len(colour_map_palette()) == 256


def test_each_palette_colour_converts_back_to_its_index() -> None:
    """A pixel of palette colour i (in 8 bits) converts to index i: the map and the conversion agree."""
    palette = np.array(colour_map_palette(), dtype=np.int64)
    frame = np.zeros((1, 256, 4), np.uint8)
    frame[0, :, 2::-1] = (palette * 255 + 32767) // 65535  # 16-bit → 8-bit, rounded
    indices = np.frombuffer(converter_for(COLOUR_MAP_FORMAT).convert(frame), np.uint8)
    assert indices.tolist() == list(range(256))


def test_converted_pixels_index_their_nearest_palette_colour() -> None:
    frame = random_frame(16, 16, seed=9)
    idx = np.frombuffer(converter_for(COLOUR_MAP_FORMAT).convert(frame), np.uint8).reshape(16, 16)
    pal = np.array(colour_map_palette()) / 257
    err = np.abs(pal[idx] - frame[..., 2::-1])
    assert err.max() <= 255 / 3 / 2 + 1


def test_set_colour_map_entries_message() -> None:
    msg = set_colour_map_entries_message()
    # message-type 1, one byte of padding, first-colour 0, number-of-colours 256 (all U16 big-endian)
    assert msg[:6] == bytes([1, 0, 0, 0, 1, 0])
    assert len(msg) == 6 + 6 * 256
    body = b"".join(struct.pack(">HHH", *colour) for colour in colour_map_palette())
    assert msg[6:] == body
    assert struct.unpack(">HHH", msg[6 + 6 * 0b111_000_00 : 12 + 6 * 0b111_000_00]) == (65535, 0, 0)
    assert set_colour_map_entries_message(first=5)[:6] == bytes([1, 0, 0, 5, 1, 0])
    with pytest.raises(ValueError):
        set_colour_map_entries_message(first=65500)
