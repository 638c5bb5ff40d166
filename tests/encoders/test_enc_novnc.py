"""RRE, Hextile, Zlib and ZRLE decoded pixel-exact by noVNC's own decoders (tests/novnc/decode.mjs)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from enc_content import (
    ENCODERS,
    NOVNC_PF,
    bgrx_to_rgb,
    corpus_available,
    corpus_frame,
    mixed_frame,
    synthetic,
)
from novnc_decode import decode_each_with_novnc, decode_with_novnc, requires_novnc

from pyvnc.encoders.base import EncodeJob, Encoder
from pyvnc.region import Rect

pytestmark = requires_novnc
requires_corpus = pytest.mark.skipif(not corpus_available(), reason="corpus images missing")

ENCODINGS = sorted(ENCODERS)


def painted(fb: np.ndarray, frame: np.ndarray, rects: list[Rect]) -> None:
    """What a client's framebuffer holds after ``rects`` of ``frame`` arrive."""
    rgb = bgrx_to_rgb(frame)
    for r in rects:
        fb[r.y : r.bottom, r.x : r.right] = rgb[r.y : r.bottom, r.x : r.right]


def encode(enc: Encoder, frame: np.ndarray, rects: list[Rect], compress: int | None = None) -> list[bytes]:
    return enc.encode(EncodeJob(frame, tuple(rects), NOVNC_PF, compress=compress))


@requires_corpus
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_corpus_crops(encoding: str) -> None:
    """Crops of all five corpus images, one connection, at offsets that are not tile-aligned."""
    enc = ENCODERS[encoding]()
    names = ("desktop", "terminal", "webpage", "photo", "noise")
    # 15 disjoint crops, 3 per image, from a 5×5 grid of 384×216 cells, each crop offset inside its cell
    cells = [(i % 5, i // 5) for i in (0, 6, 12, 18, 24, 4, 8, 16, 20, 2, 10, 14, 22, 7, 17)]
    updates, expect = [], np.zeros((1080, 1920, 3), np.uint8)
    for k, (cx, cy) in enumerate(cells):
        frame = corpus_frame(names[k % 5])
        dx, dy = (k * 7) % 13, (k * 5) % 11
        rect = Rect(cx * 384 + dx, cy * 216 + dy, 384 - dx - k % 3, 216 - dy - k % 2)
        updates.append(encode(enc, frame, [rect]))
        painted(expect, frame, [rect])
    np.testing.assert_array_equal(decode_with_novnc(updates, 1920, 1080), expect, err_msg=encoding)


@requires_corpus
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_full_frames(encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full 1920×1080 frames: terminal then desktop on one connection (stream state carried over), spread over
    two threads whatever this machine has (bands of tile data, deflate segments side by side)."""
    from pyvnc.encoders import parallel

    monkeypatch.setattr(parallel, "_cores", 2)
    enc = ENCODERS[encoding]()
    full = Rect(0, 0, 1920, 1080)
    names = ("terminal", "desktop") if encoding != "rre" else ("webpage", "terminal")
    updates = [encode(enc, corpus_frame(n), [full]) for n in names]
    got = decode_each_with_novnc(updates, 1920, 1080)
    for name, fb in zip(names, got, strict=True):
        np.testing.assert_array_equal(fb, bgrx_to_rgb(corpus_frame(name)), err_msg=f"{encoding} {name}")


ODD_SIZES = [(1, 1), (1, 37), (37, 1), (17, 33), (65, 63), (16, 16), (64, 64), (15, 17), (129, 70), (200, 3)]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("kind", ["solid", "few", "text", "gradient", "noise"])
def test_small_and_odd_rectangles(encoding: str, kind: str) -> None:
    """Tiny and odd-sized rectangles, including ones touching every edge of the frame."""
    rng = np.random.default_rng(zlib.crc32(f"{encoding}-{kind}".encode()))
    h, w = 150, 230
    frame = synthetic(rng, h, w, kind)
    rects = [Rect(int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1)), rw, rh) for rw, rh in ODD_SIZES]
    rects += [Rect(0, 0, 1, 1), Rect(w - 1, h - 1, 1, 1), Rect(w - 17, 0, 17, h), Rect(0, h - 33, w, 33)]
    rects += [Rect(0, 0, w, h)]
    enc = ENCODERS[encoding]()
    updates = [encode(enc, frame, [r]) for r in rects]
    got = decode_each_with_novnc(updates, w, h)
    expect = np.zeros((h, w, 3), np.uint8)
    for r, fb in zip(rects, got, strict=True):
        painted(expect, frame, [r])
        np.testing.assert_array_equal(fb, expect, err_msg=f"{encoding} {kind} {r}")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_long_sequence_one_stream(encoding: str) -> None:
    """30 updates of changing content and regions (several rectangles each) on one connection."""
    rng = np.random.default_rng(1234)
    h, w = 200, 300
    enc = ENCODERS[encoding]()
    expect = np.zeros((h, w, 3), np.uint8)
    updates, expected = [], []
    for step in range(30):
        frame = mixed_frame(rng, h, w)
        rects = []
        for _ in range(int(rng.integers(1, 4))):
            rw, rh = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
            rects.append(Rect(int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1)), rw, rh))
        if step % 7 == 0:
            rects = [Rect(0, 0, w, h)]
        updates.append(encode(enc, frame, rects, compress=int(rng.integers(0, 10))))
        painted(expect, frame, rects)
        expected.append(expect.copy())
    got = decode_each_with_novnc(updates, w, h)
    for i, (fb, exp) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_array_equal(fb, exp, err_msg=f"{encoding} update {i}")


def test_mixed_encodings_one_connection_fed_in_small_pieces() -> None:
    """Every encoding interleaved on one connection, the stream fed to noVNC 997 bytes at a time."""
    rng = np.random.default_rng(99)
    h, w = 120, 170
    encoders = {name: factory() for name, factory in ENCODERS.items()}
    expect = np.zeros((h, w, 3), np.uint8)
    updates, expected = [], []
    for step in range(24):
        frame = mixed_frame(rng, h, w)
        name = ENCODINGS[step % len(ENCODINGS)]
        rw, rh = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
        rect = Rect(int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1)), rw, rh)
        updates.append(encode(encoders[name], frame, [rect]))
        painted(expect, frame, [rect])
        expected.append(expect.copy())
    got = decode_each_with_novnc(updates, w, h, chunk=997)
    for i, (fb, exp) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_array_equal(fb, exp, err_msg=f"update {i}")


def test_harness_final_frame_only() -> None:
    """decode_with_novnc returns the framebuffer after the whole stream."""
    rng = np.random.default_rng(5)
    frame = synthetic(rng, 40, 50, "few")
    enc = ENCODERS["zrle"]()
    fb = decode_with_novnc([encode(enc, frame, [Rect(0, 0, 50, 40)])], 50, 40)
    np.testing.assert_array_equal(fb, bgrx_to_rgb(frame))
