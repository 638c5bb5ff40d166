"""Every encoding in pixel formats noVNC cannot decode, checked with our own reference decoder."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from enc_content import ENCODERS, NOVNC_PF, corpus_available, corpus_frame, mixed_frame, synthetic
from refdecoders import RefDecoder

from pyvnc.encoders.base import EncodeJob
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat, converter_for, decode_pixels
from pyvnc.region import Rect

FORMATS = {
    "rgb565-be": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "rgb555-le": PixelFormat(16, 15, False, True, 31, 31, 31, 10, 5, 0),
    "bgr233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
    "rgb332": PixelFormat(8, 8, False, True, 7, 7, 3, 5, 2, 0),
    "native": NATIVE,
    "novnc": NOVNC_PF,
    "xrgb-be": PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
    "rgbx-high-le": PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8),
    "depth32": PixelFormat(32, 32, False, True, 255, 255, 255, 16, 8, 0),
    "ten-bit-be": PixelFormat(32, 30, True, True, 1023, 1023, 1023, 20, 10, 0),
}


def expected(pf: PixelFormat, frame: np.ndarray, rect: Rect) -> np.ndarray:
    """What the client sees: the rectangle converted to its format and decoded back to RGB."""
    crop = frame[rect.y : rect.bottom, rect.x : rect.right]
    return decode_pixels(pf, converter_for(pf).convert(crop), rect.w, rect.h)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_sequence_in_format(encoding: str, fmt: str) -> None:
    pf = FORMATS[fmt]
    rng = np.random.default_rng(zlib.crc32(f"{encoding}{fmt}".encode()))
    h, w = 90, 140
    enc = ENCODERS[encoding]()
    dec = RefDecoder(pf, w, h)
    fb = np.zeros((h, w, 3), np.uint8)
    for step in range(8):
        frame = mixed_frame(rng, h, w)
        rw, rh = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
        rect = Rect(int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1)), rw, rh)
        if step == 0:
            rect = Rect(0, 0, w, h)
        for data in enc.encode(EncodeJob(frame, (rect,), pf)):
            dec.decode(data)
        fb[rect.y : rect.bottom, rect.x : rect.right] = expected(pf, frame, rect)
        np.testing.assert_array_equal(dec.fb, fb, err_msg=f"{encoding} {fmt} step {step}")


@pytest.mark.skipif(not corpus_available(), reason="corpus images missing")
@pytest.mark.parametrize("fmt", ["rgb565-be", "bgr233", "xrgb-be", "rgbx-high-le"])
@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_corpus_crop_in_format(encoding: str, fmt: str) -> None:
    pf = FORMATS[fmt]
    enc = ENCODERS[encoding]()
    dec = RefDecoder(pf, 1920, 1080)
    fb = np.zeros((1080, 1920, 3), np.uint8)
    for name, rect in (("terminal", Rect(301, 203, 190, 97)), ("webpage", Rect(1000, 500, 129, 130))):
        frame = corpus_frame(name)
        for data in enc.encode(EncodeJob(frame, (rect,), pf)):
            dec.decode(data)
        fb[rect.y : rect.bottom, rect.x : rect.right] = expected(pf, frame, rect)
    np.testing.assert_array_equal(dec.fb, fb)


def test_zrle_uses_every_subencoding() -> None:
    """Solid, raw, packed palettes of 1/2/4 bits, palette RLE and plain RLE all appear and decode."""
    rng = np.random.default_rng(7)
    tiles = []
    tiles.append(synthetic(rng, 64, 64, "solid"))  # 1
    tiles.append(synthetic(rng, 64, 64, "noise"))  # 0
    for ncol in (2, 4, 9):  # packed: 1, 2 and 4 bits
        palette = rng.integers(0, 256, (ncol, 3), dtype=np.uint8)
        t = np.zeros((64, 64, 4), np.uint8)
        t[:, :, :3] = palette[rng.integers(0, ncol, (64, 64))]
        tiles.append(t)
    pal_runs = np.zeros((64, 64, 4), np.uint8)  # 20 colours in runs of 8 → palette RLE
    palette = rng.integers(0, 256, (20, 3), dtype=np.uint8)
    pal_runs[:, :, :3] = np.repeat(palette[rng.integers(0, 20, (64, 8))], 8, axis=1)
    tiles.append(pal_runs)
    runs = np.zeros((64, 64, 4), np.uint8)  # > 127 colours in runs of 8 → plain RLE
    runs[:, :, :3] = np.repeat(rng.integers(0, 256, (64, 8, 3), dtype=np.uint8), 8, axis=1)
    tiles.append(runs)
    frame = np.concatenate(tiles, axis=1)
    h, w = frame.shape[:2]
    for pf in (NOVNC_PF, FORMATS["rgb565-be"]):
        dec = RefDecoder(pf, w, h)
        for data in ENCODERS["zrle"]().encode(EncodeJob(frame, (Rect(0, 0, w, h),), pf)):
            dec.decode(data)
        kinds = {
            0 if s == 0 else 1 if s == 1 else 2 if s <= 16 else 128 if s == 128 else 130 for s in dec.zrle_subencodings
        }
        assert kinds == {0, 1, 2, 128, 130}
        assert {s for s in dec.zrle_subencodings if 2 <= s <= 16} >= {2, 4, 9}
        np.testing.assert_array_equal(dec.fb, expected(pf, frame, Rect(0, 0, w, h)))


def test_hextile_uses_every_subencoding_bit() -> None:
    rng = np.random.default_rng(8)
    frame = mixed_frame(rng, 160, 160)
    dec = RefDecoder(NOVNC_PF, 160, 160)
    for data in ENCODERS["hextile"]().encode(EncodeJob(frame, (Rect(0, 0, 160, 160),), NOVNC_PF)):
        dec.decode(data)
    seen = 0
    for m in dec.hextile_masks:
        seen |= m
    assert seen == 31
    np.testing.assert_array_equal(dec.fb, expected(NOVNC_PF, frame, Rect(0, 0, 160, 160)))
