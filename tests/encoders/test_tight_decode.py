"""Round trips of Tight, TightPNG and JPEG on the corpus: through the independent reference decoder in
``test_tight_reference.py`` (every pixel format, JPEG and PNG via Pillow) and through noVNC's own tight.js
/ tightpng.js (lossless paths; noVNC decodes JPEG and PNG images only in a browser).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from novnc_decode import decode_each_with_novnc, decode_with_novnc, requires_novnc
from numpy.typing import NDArray
from test_tight_reference import CORPUS_NAMES, TightReference, corpus_frame, frame_rgb, psnr

from pyvnc.encoders import tight as tight_module
from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.jpeg import JPEGEncoder
from pyvnc.encoders.tight import TightEncoder
from pyvnc.encoders.tightpng import TightPNGEncoder
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat, converter_for, decode_pixels
from pyvnc.region import Rect

NOVNC_PF = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)
FORMATS = {
    "native": NATIVE,
    "novnc": NOVNC_PF,
    "bgrx-be": PixelFormat(32, 24, True, True, 255, 255, 255, 0, 8, 16),
    "depth32": PixelFormat(32, 32, False, True, 255, 255, 255, 16, 8, 0),
    "rgb565": PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    "rgb565-be": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "rgb555-be": PixelFormat(16, 15, True, True, 31, 31, 31, 10, 5, 0),
    "bgr233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
}
#: small and odd rectangles, frame edges and corners, and a >2048-pixel band
RECTS = [
    Rect(0, 0, 1, 1),
    Rect(3, 5, 7, 3),
    Rect(1919, 0, 1, 1080),
    Rect(0, 1079, 1920, 1),
    Rect(1850, 1000, 70, 80),
    Rect(101, 203, 333, 211),
    Rect(0, 500, 1920, 40),
    Rect(640, 0, 129, 1080),
]
BACKENDS = ["zlib", "isal"] if tight_module.FAST_DEFLATE is not None else ["zlib"]


def expected_rgb(pf: PixelFormat, frame: NDArray[np.uint8], r: Rect) -> NDArray[np.uint8]:
    """What a client of ``pf`` sees for ``r``: the pixels through the client's format."""
    pixels = frame[r.y : r.bottom, r.x : r.right]
    return decode_pixels(pf, converter_for(pf).convert(pixels), r.w, r.h)


def backend(name: str) -> object:
    return zlib if name == "zlib" else tight_module.FAST_DEFLATE


# --- reference decoder: every pixel format ----------------------------------------------------------------


@pytest.mark.parametrize("pf_name", list(FORMATS))
@pytest.mark.parametrize("image", CORPUS_NAMES)
def test_lossless_rects_all_formats(image: str, pf_name: str) -> None:
    pf = FORMATS[pf_name]
    frame = corpus_frame(image)
    enc = TightEncoder()
    ref = TightReference(pf, 1920, 1080)
    for r in RECTS:
        ref.feed(enc.encode(EncodeJob(frame, (r,), pf)))
        got = ref.fb[r.y : r.bottom, r.x : r.right]
        assert np.array_equal(got, expected_rgb(pf, frame, r)), (image, pf_name, r, ref.stats)


@pytest.mark.parametrize("zname", BACKENDS)
@pytest.mark.parametrize("image", CORPUS_NAMES)
def test_full_frame_lossless(image: str, zname: str) -> None:
    frame = corpus_frame(image)
    ref = TightReference(NATIVE, 1920, 1080)
    enc = TightEncoder(zlib_backend=backend(zname))  # type: ignore[arg-type]
    ref.feed(enc.encode(EncodeJob(frame, (Rect(0, 0, 1920, 1080),), NATIVE, compress=2)))
    assert np.array_equal(ref.fb, frame_rgb(frame)), ref.stats


def two_colour_text(w: int, h: int) -> NDArray[np.uint8]:
    """A BGRX frame of dark "glyphs" on a light background: two colours."""
    rng = np.random.default_rng(2)
    frame = np.full((h, w, 4), 235, dtype=np.uint8)
    frame[..., 3] = 0
    ink = rng.random((h // 4, w // 3)) < 0.3
    frame[: h // 4 * 4, : w // 3 * 3][np.repeat(np.repeat(ink, 4, 0), 3, 1)] = (40, 30, 20, 0)
    return frame


def test_every_filter_and_method_is_exercised() -> None:
    stats: dict[str, int] = {}
    frames = [corpus_frame(image) for image in CORPUS_NAMES] + [two_colour_text(1920, 1080)]
    for frame in frames:
        ref = TightReference(NATIVE, 1920, 1080)
        ref.feed(TightEncoder().encode(EncodeJob(frame, (Rect(0, 0, 1920, 1080),), NATIVE)))
        assert np.array_equal(ref.fb, frame_rgb(frame))
        for k, v in ref.stats.items():
            stats[k] = stats.get(k, 0) + v
    for what in ("fill", "mono", "indexed", "copy", "gradient"):
        assert stats.get(what, 0) > 0, stats


@pytest.mark.parametrize("compress", [0, 1, 5, 9])
def test_compress_levels_decode(compress: int) -> None:
    frame = corpus_frame("desktop")
    ref = TightReference(NATIVE, 1920, 1080)
    enc = TightEncoder()
    r = Rect(0, 0, 900, 400)
    ref.feed(enc.encode(EncodeJob(frame, (r,), NATIVE, compress=compress)))
    assert np.array_equal(ref.fb[: r.h, : r.w], frame_rgb(frame)[: r.h, : r.w])


def _sequence(n: int, seed: int) -> list[tuple[str, Rect]]:
    """``n`` updates of random rectangles over random corpus images."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = int(rng.integers(1, 700))
        h = int(rng.integers(1, 300))
        x = int(rng.integers(0, 1920 - w + 1))
        y = int(rng.integers(0, 1080 - h + 1))
        out.append((CORPUS_NAMES[int(rng.integers(0, 5))], Rect(x, y, w, h)))
    return out


@pytest.mark.parametrize("pf_name", ["native", "rgb565-be"])
def test_long_sequence_keeps_streams_in_step(pf_name: str) -> None:
    pf = FORMATS[pf_name]
    enc = TightEncoder()
    ref = TightReference(pf, 1920, 1080)
    for i, (image, r) in enumerate(_sequence(40, 7)):
        frame = corpus_frame(image)
        # the compress level changes now and then: streams restart with their reset bits
        ref.feed(enc.encode(EncodeJob(frame, (r,), pf, compress=(i // 10) * 3)))
        assert np.array_equal(ref.fb[r.y : r.bottom, r.x : r.right], expected_rgb(pf, frame, r)), (i, r)
        if i == 25:
            enc.reset()  # as after a discarded encode: nothing of update 25 reaches the client
            enc.encode(EncodeJob(frame, (r,), pf))
            enc.reset()


# --- JPEG and PNG through the reference decoder -------------------------------------------------------


@pytest.mark.parametrize("quality", [6, 7, 8, 9])
@pytest.mark.parametrize("image", CORPUS_NAMES)
def test_tight_jpeg_psnr(image: str, quality: int) -> None:
    """At quality levels 6-9 every corpus image decodes at 30 dB or better: random pixels, which JPEG 4:2:0
    q79 would return at 12.5 dB, go lossless at 6 and 7, and as JPEG 4:4:4 at 8 and 9 (31.5 dB)."""
    frame = corpus_frame(image)
    ref = TightReference(NATIVE, 1920, 1080)
    ref.feed(TightEncoder().encode(EncodeJob(frame, (Rect(0, 0, 1920, 1080),), NATIVE, quality=quality)))
    rgb = frame_rgb(frame)
    assert psnr(ref.fb, rgb) >= 30, ref.stats
    # the lossless parts stay exact
    assert np.array_equal(ref.fb[~ref.lossy], rgb[~ref.lossy])
    if image in ("photo", "desktop") or (image == "noise" and quality >= 8):
        assert ref.stats.get("jpeg", 0) > 0, ref.stats
    if image == "noise" and quality < 8:
        assert not ref.lossy.any(), ref.stats


@pytest.mark.parametrize("amplitude", [8, 16, 32])
def test_tight_jpeg_keeps_30_db_on_noisy_photographs(amplitude: int) -> None:
    """A photograph with noise added: JPEG where it keeps 30 dB (little noise), lossless where it would not."""
    frame = corpus_frame("photo")[300:556, 400:1424].copy()
    rng = np.random.default_rng(amplitude)
    noisy = frame[..., :3].astype(np.int16) + rng.integers(-amplitude, amplitude + 1, frame[..., :3].shape)
    frame[..., :3] = np.clip(noisy, 0, 255)
    ref = TightReference(NATIVE, 1024, 256)
    ref.feed(TightEncoder().encode(EncodeJob(frame, (Rect(0, 0, 1024, 256),), NATIVE, quality=6)))
    assert psnr(ref.fb, frame_rgb(frame)) >= 30, ref.stats
    assert (ref.stats.get("jpeg", 0) > 0) == (amplitude == 8), ref.stats


def test_tight_jpeg_quality_verdicts_are_not_shared_across_roughness() -> None:
    """One rectangle: pure noise above (lossless at q6: JPEG would lose the 30 dB floor), a photograph with
    ±10 of noise below (rough too, but JPEG keeps 32 dB). Rough strips of about the same roughness share one
    JPEG round trip's verdict; strips this different must each get their own."""
    photo = corpus_frame("photo")[300:556, 400:1424].copy()
    rng = np.random.default_rng(8)
    noisy = photo[..., :3].astype(np.int16) + rng.integers(-10, 11, photo[..., :3].shape)
    photo[..., :3] = np.clip(noisy, 0, 255)
    frame = np.concatenate((corpus_frame("noise")[:256, :1024], photo))
    ref = TightReference(NATIVE, 1024, 512)
    ref.feed(TightEncoder().encode(EncodeJob(frame, (Rect(0, 0, 1024, 512),), NATIVE, quality=6)))
    assert np.array_equal(ref.fb[:256], frame_rgb(frame)[:256])  # the noise: exact
    assert not ref.lossy[:256].any() and ref.lossy[256:].all()  # the noisy photograph: JPEG
    assert psnr(ref.fb[256:], frame_rgb(frame)[256:]) >= 30


def test_tight_jpeg_noise_decodes() -> None:
    frame = corpus_frame("noise")
    ref = TightReference(NATIVE, 1920, 1080)
    ref.feed(TightEncoder().encode(EncodeJob(frame, (Rect(5, 7, 1000, 301),), NATIVE, quality=0)))
    assert ref.stats.get("jpeg", 0) > 0 and ref.lossy[7:308, 5:1005].all()


@pytest.mark.parametrize("image", CORPUS_NAMES)
def test_tightpng_lossless(image: str) -> None:
    frame = corpus_frame(image)
    enc = TightPNGEncoder()
    ref = TightReference(NATIVE, 1920, 1080)
    for r in [*RECTS, Rect(0, 0, 1920, 1080)]:
        ref.feed(enc.encode(EncodeJob(frame, (r,), NATIVE)))
        assert np.array_equal(ref.fb[r.y : r.bottom, r.x : r.right], frame_rgb(frame)[r.y : r.bottom, r.x : r.right])


def test_tightpng_palette_depths_and_jpeg() -> None:
    rng = np.random.default_rng(5)
    frame = np.zeros((64, 256, 4), dtype=np.uint8)
    for i, n in enumerate((2, 3, 5, 17, 200)):  # 1-, 2-, 4-, 8-bit palette images
        colours = rng.integers(0, 256, (n, 3), dtype=np.uint8)
        idx = rng.integers(0, n, (64, 40))
        idx.flat[:n] = np.arange(n)
        frame[:, i * 40 : i * 40 + 40, :3] = colours[idx]
    ref = TightReference(NATIVE, 256, 64)
    ref.feed(TightPNGEncoder().encode(EncodeJob(frame, tuple(Rect(i * 40, 0, 40, 64) for i in range(5)), NATIVE)))
    assert np.array_equal(ref.fb[:, :200], frame_rgb(frame)[:, :200])
    photo = np.ascontiguousarray(corpus_frame("photo")[:200, :300])
    ref = TightReference(NATIVE, 300, 200)
    ref.feed(TightPNGEncoder().encode(EncodeJob(photo, (Rect(0, 0, 300, 200),), NATIVE, quality=7)))
    assert ref.stats.get("jpeg") and psnr(ref.fb, frame_rgb(photo)) >= 30


@pytest.mark.parametrize("quality", [6, 7])
@pytest.mark.parametrize("image", CORPUS_NAMES)
def test_jpeg_encoding_psnr(image: str, quality: int) -> None:
    """The JPEG encoding keeps 30 dB from level 6 up on every corpus image: random pixels, which the level's
    4:2:0 settings return at 12.5 dB, go at a higher quality (this encoding has no lossless way)."""
    frame = corpus_frame(image)
    ref = TightReference(NATIVE, 1920, 1080)
    enc = JPEGEncoder()
    rects = (Rect(0, 0, 1920, 1080), Rect(17, 33, 101, 57))
    out = enc.encode(EncodeJob(frame, rects, NATIVE, quality=quality))
    ref.feed(out)
    assert psnr(ref.fb, frame_rgb(frame)) >= 30
    # photographs keep the level's own settings (4:2:0), so their images stay small
    if image == "photo":
        assert sum(len(r) for r in out) < 400_000


# --- noVNC's decoders ---------------------------------------------------------------------------------------


@requires_novnc
def test_novnc_tightpng_fills() -> None:
    """TightPNG through noVNC's tightpng.js: noVNC hands PNG and JPEG images to the browser, so under Node
    only fills can be decoded: solid frames and solid strips of several colours.
    """
    enc = TightPNGEncoder()
    frame = np.zeros((300, 2500, 4), dtype=np.uint8)
    frame[:100, :, :3] = (10, 20, 30)
    frame[100:, :1200, :3] = (200, 100, 0)
    frame[100:, 1200:, :3] = (0, 100, 200)
    rects = (Rect(0, 0, 2500, 100), Rect(0, 100, 1200, 200), Rect(1200, 100, 1300, 200))
    update = enc.encode(EncodeJob(frame, rects, NOVNC_PF))
    assert all(r[12] == 0x80 for r in update)
    assert np.array_equal(decode_with_novnc([update], 2500, 300), frame_rgb(frame))


@requires_novnc
def test_novnc_every_filter_and_sequence() -> None:
    """Lossless Tight through noVNC: corpus crops covering fill, mono, indexed, copy and gradient, then a
    long sequence on the same streams, with a compress-level change and a reset, fed in small chunks.
    """
    enc = TightEncoder()
    ref_stats: dict[str, int] = {}
    updates: list[list[bytes]] = []
    expected: list[NDArray[np.uint8]] = []
    fb = np.zeros((1080, 1920, 3), dtype=np.uint8)
    plan = [(name, Rect(0, 0, 1920, 1080), 2) for name in CORPUS_NAMES]
    plan.insert(2, ("two-colour", Rect(0, 0, 1920, 1080), 2))
    plan += [(image, r, (i // 12) * 4) for i, (image, r) in enumerate(_sequence(36, 11))]
    for i, (image, r, compress) in enumerate(plan):
        if i == 20:
            enc.reset()
        frame = two_colour_text(1920, 1080) if image == "two-colour" else corpus_frame(image)
        rects = enc.encode(EncodeJob(frame, (r,), NOVNC_PF, compress=compress))
        updates.append(rects)
        fb[r.y : r.bottom, r.x : r.right] = frame_rgb(frame)[r.y : r.bottom, r.x : r.right]
        expected.append(fb.copy())
        for rect in rects:
            kind = rect[12] >> 4
            key = "fill" if kind == 8 else "jpeg" if kind == 9 else f"basic{kind & 3}"
            ref_stats[key] = ref_stats.get(key, 0) + 1
    got = decode_each_with_novnc(updates, 1920, 1080, chunk=65521)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert np.array_equal(g, e), f"update {i} ({plan[i]}) differs"
    for key in ("fill", "basic0", "basic1", "basic2", "basic3"):
        assert ref_stats.get(key, 0) > 0, ref_stats


@pytest.mark.parametrize("image", ["terminal", "photo"])
def test_x_byte_of_the_frame_never_changes_what_the_client_sees(image: str) -> None:
    """Tight classifies full-width rectangles on the frame's BGRX words as they are, X byte included: a
    constant X (any value) gives byte for byte the same update as X = 0, and an X that varies from pixel to
    pixel (no source does that) still decodes exactly, losslessly and through JPEG."""
    frame = corpus_frame(image)
    full = Rect(0, 0, 1920, 1080)
    constant = frame.copy()
    constant[..., 3] = 255
    varying = frame.copy()
    varying[..., 3] = np.random.default_rng(4).integers(0, 256, frame.shape[:2])
    for quality in (None, 8):

        def update(f: NDArray[np.uint8], q: int | None = quality) -> list[bytes]:
            return TightEncoder().encode(EncodeJob(f, (full,), NOVNC_PF, quality=q, compress=2))

        assert b"".join(update(constant)) == b"".join(update(frame))
        ref = TightReference(NOVNC_PF, 1920, 1080)
        ref.feed(update(varying))
        if quality is None:
            assert np.array_equal(ref.fb, frame_rgb(frame))
        else:
            assert psnr(ref.fb, frame_rgb(frame)) >= 30.0
