"""Pixel formats: wire layout, validation, and conversion checked against a plain reference formula."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pyvnc.errors import ProtocolError
from pyvnc.protocol.pixelformat import (
    COLOUR_MAP_FORMAT,
    NATIVE,
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
    "xrgb-shift-24": PixelFormat(32, 32, False, True, 255, 255, 255, 24, 16, 8),
    "10-bit": PixelFormat(32, 30, False, True, 1023, 1023, 1023, 20, 10, 0),
    "10-bit-be": PixelFormat(32, 30, True, True, 1023, 1023, 1023, 0, 10, 20),
    "odd-shifts-32": PixelFormat(32, 24, False, True, 255, 255, 255, 3, 13, 22),
    "rgb565-le": PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    "rgb565-be": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "rgb555-le": PixelFormat(16, 15, False, True, 31, 31, 31, 10, 5, 0),
    "bgr555-be": PixelFormat(16, 15, True, True, 31, 31, 31, 0, 5, 10),
    "rgb444": PixelFormat(16, 12, False, True, 15, 15, 15, 8, 4, 0),
    "bgr233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
    "rgb332": COLOUR_MAP_FORMAT,
    "rgb222": PixelFormat(8, 6, False, True, 3, 3, 3, 4, 2, 0),
    "rgb111": PixelFormat(8, 3, True, True, 1, 1, 1, 2, 1, 0),
}


def reference(pf: PixelFormat, bgrx: np.ndarray) -> bytes:
    """Per-channel integer formula in uint64, packed with an explicit dtype: written apart from the module."""
    b = bgrx[..., 0].astype(np.uint64)
    g = bgrx[..., 1].astype(np.uint64)
    r = bgrx[..., 2].astype(np.uint64)

    def scale(c: np.ndarray, mx: int) -> np.ndarray:
        return (c * mx + 127) // 255

    value = (
        (scale(r, pf.red_max) << pf.red_shift)
        | (scale(g, pf.green_max) << pf.green_shift)
        | (scale(b, pf.blue_max) << pf.blue_shift)
    )
    code = {8: "u1", 16: "u2", 32: "u4"}[pf.bits_per_pixel]
    return value.astype((">" if pf.big_endian else "<") + code).tobytes()


def random_frame(h: int, w: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    frame[..., 3] = 0
    return frame


def test_pack_parse_roundtrip_and_layout() -> None:
    raw = bytes([16, 16, 1, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0])
    pf = PixelFormat.parse(raw)
    assert pf == PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0)
    assert pf.pack() == raw
    assert pf.bytes_per_pixel == 2
    assert NATIVE.pack() == bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("pf", "message"),
    [
        (PixelFormat(24, 24, False, True, 255, 255, 255, 16, 8, 0), "bits-per-pixel"),
        (PixelFormat(16, 24, False, True, 31, 63, 31, 11, 5, 0), "depth"),
        (PixelFormat(8, 0, False, True, 7, 7, 3, 5, 2, 0), "depth"),
        (PixelFormat(16, 16, False, True, 30, 63, 31, 11, 5, 0), "red-max"),
        (PixelFormat(16, 16, False, True, 31, 0, 31, 11, 5, 0), "green-max"),
        (PixelFormat(16, 16, False, True, 31, 63, 31, 12, 5, 0), "red"),
        (PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 40), "blue"),
        (PixelFormat(16, 16, False, False, 0, 0, 0, 0, 0, 0), "colour maps"),
    ],
)
def test_validate_rejects(pf: PixelFormat, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        pf.validate()


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (1, 29), (31, 1), (64, 64)])
def test_convert_matches_reference(name: str, shape: tuple[int, int]) -> None:
    pf = FORMATS[name]
    pf.validate()
    big = random_frame(shape[0] + 7, shape[1] + 9, seed=shape[0] * 100 + shape[1])
    view = big[3 : 3 + shape[0], 5 : 5 + shape[1]]  # a non-contiguous view, as encoders pass
    conv = converter_for(pf)
    data = conv.convert(view)
    assert data == reference(pf, view)
    assert len(data) == shape[0] * shape[1] * pf.bytes_per_pixel
    assert conv.to_bytes(conv.convert_array(view)) == data


@pytest.mark.parametrize("name", list(FORMATS))
def test_decode_inverts_within_quantisation(name: str) -> None:
    pf = FORMATS[name]
    frame = random_frame(20, 30, seed=5)
    rgb = decode_pixels(pf, converter_for(pf).convert(frame), 30, 20).astype(int)
    src = frame[..., 2::-1].astype(int)
    for i, mx in enumerate((pf.red_max, pf.green_max, pf.blue_max)):
        tolerance = 0 if mx >= 255 else int(np.ceil(255 / mx / 2))
        assert np.abs(rgb[..., i] - src[..., i]).max() <= tolerance


def test_native_is_a_plain_copy() -> None:
    frame = random_frame(10, 10)
    assert converter_for(NATIVE).convert(frame) == frame.tobytes()


def test_colour_map_palette_matches_332_mapping() -> None:
    palette = colour_map_palette()
    assert len(palette) == 256
    assert palette[0] == (0, 0, 0) and palette[255] == (65535, 65535, 65535)
    assert palette[0b111_000_00] == (65535, 0, 0)
    assert palette[0b000_111_00] == (0, 65535, 0)
    assert palette[0b000_000_11] == (0, 0, 65535)
    # a pixel converted to COLOUR_MAP_FORMAT indexes the palette entry nearest its colour
    frame = random_frame(16, 16, seed=9)
    idx = np.frombuffer(converter_for(COLOUR_MAP_FORMAT).convert(frame), np.uint8).reshape(16, 16)
    pal = np.array(palette) / 257
    err = np.abs(pal[idx] - frame[..., 2::-1])
    assert err.max() <= 255 / 3 / 2 + 1


def test_set_colour_map_entries_message() -> None:
    msg = set_colour_map_entries_message()
    assert msg[:6] == struct.pack(">BxHH", 1, 0, 256)
    assert len(msg) == 6 + 6 * 256
    assert struct.unpack(">HHH", msg[6 + 6 * 255 :]) == (65535, 65535, 65535)


def test_effective_format() -> None:
    cmap = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)
    assert effective_format(cmap) == COLOUR_MAP_FORMAT
    assert effective_format(NATIVE) is NATIVE
