"""The encode manager: one-colour areas found and sent as fills, the rest by kind of content, in the client's
preference order — checked on bytes and decoded pixel-exact by noVNC's own decoders."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from enc_content import NOVNC_PF, bgrx_to_rgb, corpus_available, corpus_frame, rgb_to_bgrx
from novnc_decode import decode_each_with_novnc, decode_with_novnc, novnc_available, requires_novnc
from refdecoders import RefDecoder

from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.select import FILL_MIN_AREA, EncoderSelector, Kind, content_kind
from pyvnc.encoders.solid import MIN_SOLID_AREA, _heights, split_solid
from pyvnc.encoders.tight import TightEncoder
from pyvnc.protocol.constants import Encoding
from pyvnc.protocol.pixelformat import PixelFormat, converter_for
from pyvnc.region import Rect

requires_corpus = pytest.mark.skipif(not corpus_available(), reason="corpus images missing")
FULL = Rect(0, 0, 1920, 1080)
RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
COLOUR_MAP = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)


def text_on_background(h: int = 300, w: int = 500) -> np.ndarray:
    """A light background with a few dark 'words' and a photo-like patch: what a window looks like."""
    rng = np.random.default_rng(7)
    rgb = np.full((h, w, 3), (240, 238, 230), np.uint8)
    for y in range(20, 120, 20):  # lines of glyph-like specks
        for x in range(30, 400, 47):
            rgb[y : y + 9, x : x + 30] = np.where(rng.random((9, 30, 1)) < 0.4, 20, rgb[y : y + 9, x : x + 30])
    rgb[150:280, 300:480] = rng.integers(0, 256, (130, 180, 3), dtype=np.uint8)  # a "photo"
    return rgb_to_bgrx(rgb)


def check_tiling(frame: np.ndarray, rect: Rect) -> tuple[int, int]:
    """split_solid's pieces tile ``rect`` exactly; every solid is one colour and big enough. Returns the
    number of solids and their area."""
    parts = split_solid(frame, rect)
    cover = np.zeros(frame.shape[:2], np.int32)
    for r in parts.solids + parts.rest:
        assert r.w > 0 and r.h > 0
        cover[r.y : r.bottom, r.x : r.right] += 1
    inside = np.zeros_like(cover)
    inside[rect.y : rect.bottom, rect.x : rect.right] = 1
    np.testing.assert_array_equal(cover, inside)
    for r in parts.solids:
        px = frame[r.y : r.bottom, r.x : r.right, :3].reshape(-1, 3)
        assert (px == px[0]).all(), r
        assert r.area >= MIN_SOLID_AREA
    return len(parts.solids), sum(r.area for r in parts.solids)


def test_split_solid_synthetic() -> None:
    frame = text_on_background()
    n, area = check_tiling(frame, Rect(0, 0, 500, 300))
    # the background around the words and the photo is found; the specks and the photo are not in it
    assert n >= 3 and area >= 0.45 * 500 * 300
    # offsets that are not block-aligned, and a rectangle touching the bottom-right corner
    check_tiling(frame, Rect(3, 5, 491, 277))
    check_tiling(frame, Rect(101, 33, 399, 267))
    # too small to search, and pure noise: left whole
    assert split_solid(frame, Rect(0, 0, 40, 40)).rest == [Rect(0, 0, 40, 40)]
    noise = rgb_to_bgrx(np.random.default_rng(1).integers(0, 256, (64, 640, 3), dtype=np.uint8))
    assert split_solid(noise, Rect(0, 0, 640, 64)).solids == []


def test_split_solid_ignores_x_byte_but_not_colour() -> None:
    frame = np.zeros((64, 64, 4), np.uint8)
    frame[..., :3] = 90
    frame[..., 3] = 255
    frame[40, 40, 2] = 91  # one pixel of another red
    parts = split_solid(frame, Rect(0, 0, 64, 64))
    assert parts.solids
    assert not any(r.contains(Rect(40, 40, 1, 1)) for r in parts.solids)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (4, 5), (67, 120)])
def test_block_heights_count_equal_keys_downwards(shape: tuple[int, int]) -> None:
    """Each block's height is the number of blocks from it down with its key; 0 for mixed blocks (key -1).
    Few keys, so that stretches run down the columns and end at the bottom; columns must not run into the
    next."""
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        keys = rng.integers(-1, 2, shape).astype(np.int64)
        keys[:, -1] = keys[0, 0]  # a column equal to the next column's top: a stretch must stop at the bottom
        want = np.zeros(shape, np.intp)
        for y, x in np.ndindex(*shape):
            while keys[y, x] >= 0 and y + want[y, x] < shape[0] and keys[y + want[y, x], x] == keys[y, x]:
                want[y, x] += 1
        assert np.array_equal(_heights(keys), want)


@requires_corpus
@pytest.mark.parametrize("name", ["terminal", "webpage", "desktop", "photo", "noise"])
def test_split_solid_corpus(name: str) -> None:
    n, area = check_tiling(corpus_frame(name), FULL)
    if name in ("terminal", "webpage"):  # mostly plain background
        assert area > 0.5 * FULL.area
    if name == "noise":
        assert n == 0


def plan(encodings: list[int], pf: PixelFormat = NOVNC_PF) -> dict[Kind, int]:
    sel = EncoderSelector()
    sel.configure(encodings)
    return sel.plan(pf)


def test_plan_follows_preference() -> None:
    E = Encoding
    every = [E.TIGHT, E.ZRLE, E.HEXTILE, E.RRE, E.RAW]
    assert set(plan(every).values()) == {E.TIGHT}
    assert set(plan([E.ZRLE, E.TIGHT]).values()) == {E.ZRLE}
    assert set(plan([E.HEXTILE, E.TIGHT]).values()) == {E.HEXTILE}
    # RRE is poor at photos: they go to the next listed encoding that suits them
    assert plan([E.RRE, E.HEXTILE, E.ZRLE]) == {Kind.SOLID: E.RRE, Kind.FEW: E.RRE, Kind.MANY: E.HEXTILE}
    assert plan([E.RRE]) == {Kind.SOLID: E.RRE, Kind.FEW: E.RRE, Kind.MANY: E.RRE}
    # the JPEG encoding only for photo-like content
    assert plan([E.JPEG, E.ZRLE]) == {Kind.SOLID: E.ZRLE, Kind.FEW: E.ZRLE, Kind.MANY: E.JPEG}
    # Raw first: Raw, except one-colour areas when the client listed a way to fill
    assert plan([E.RAW, E.HEXTILE]) == {Kind.SOLID: E.HEXTILE, Kind.FEW: E.RAW, Kind.MANY: E.RAW}
    assert set(plan([E.RAW]).values()) == {E.RAW}
    # a colour-map client cannot take Tight: ZRLE serves it
    assert set(plan([E.TIGHT, E.ZRLE], COLOUR_MAP).values()) == {E.ZRLE}


def test_content_kind() -> None:
    frame = text_on_background()
    job = EncodeJob(frame, (), NOVNC_PF)
    assert content_kind(job, Rect(20, 15, 400, 110)) is Kind.FEW
    assert content_kind(job, Rect(300, 150, 180, 130)) is Kind.MANY


def encode_all(
    sel: EncoderSelector, frame: np.ndarray, rects: list[Rect], pf: PixelFormat = NOVNC_PF
) -> tuple[frozenset[int], list[bytes]]:
    return sel.encode(EncodeJob(frame, tuple(rects), pf))


def headers(encoded: list[bytes]) -> list[tuple[Rect, int]]:
    """(rectangle, encoding) of each encoded rectangle (one per element, as the encoders return them)."""
    out = []
    for data in encoded:
        x, y, w, h, enc = struct.unpack(">HHHHi", data[:12])
        out.append((Rect(x, y, w, h), enc))
    return out


@pytest.mark.parametrize(
    ("encoding", "fill_size"),
    [
        (Encoding.RAW, None),
        (Encoding.TIGHT, 1 + 3),  # fill control byte, one TPIXEL
        (Encoding.TIGHT_PNG, 1 + 3),
    ],
)
def test_fills_are_small(encoding: int, fill_size: int | None) -> None:
    frame = text_on_background(600, 800)
    sel = EncoderSelector()
    sel.configure([encoding, Encoding.RRE])
    used, encoded = encode_all(sel, frame, [Rect(0, 0, 800, 600)])
    parts = split_solid(frame, Rect(0, 0, 800, 600), FILL_MIN_AREA)
    assert parts.solids
    if encoding == Encoding.RAW:  # a Raw fill would be as big as Raw: Raw clients get fills in RRE
        assert used == {Encoding.RAW, Encoding.RRE}
        encoding, fill_size = Encoding.RRE, 4 + 4
    else:
        assert used == {encoding}
    by_rect = {r: data for data, (r, _) in zip(encoded, headers(encoded), strict=True)}
    for solid in parts.solids:
        data = by_rect[solid]
        assert fill_size is not None and len(data) == 12 + fill_size


def sent_whole(encodings: list[int]) -> tuple[np.ndarray, bytes, RefDecoder]:
    """A window-like frame through an encode manager configured with ``encodings``: it must go as one
    rectangle of the first encoding, which decodes exactly. (frame, that rectangle, its decoder.)"""
    frame = text_on_background(600, 800)
    sel = EncoderSelector()
    sel.configure(encodings)
    used, encoded = encode_all(sel, frame, [Rect(0, 0, 800, 600)])
    assert used == {encodings[0]}
    assert headers(encoded) == [(Rect(0, 0, 800, 600), encodings[0])]
    dec = RefDecoder(NOVNC_PF, 800, 600)
    dec.decode(encoded[0])
    assert np.array_equal(dec.fb, bgrx_to_rgb(frame))
    return frame, encoded[0], dec


def test_rre_finds_its_own_fills() -> None:
    """RRE is not searched for fills either: one rectangle, whose background is the colour of the one-colour
    areas the search would have carved out, and no subrectangle reaches into them."""
    frame, data, _dec = sent_whole([Encoding.RRE])
    (n,) = struct.unpack_from(">I", data, 12)
    assert data[16:19] == bytes((240, 238, 230))  # noVNC's format: red first
    subrects = np.frombuffer(
        data, dtype=[("pixel", "<u4"), ("x", ">u2"), ("y", ">u2"), ("w", ">u2"), ("h", ">u2")], count=n, offset=20
    )
    solids = split_solid(frame, Rect(0, 0, 800, 600), FILL_MIN_AREA).solids
    assert solids
    for r in solids:
        assert (frame[r.y, r.x, 2::-1] == (240, 238, 230)).all()
        apart = (subrects["x"] >= r.right) | (subrects["x"] + subrects["w"] <= r.x)
        apart |= (subrects["y"] >= r.bottom) | (subrects["y"] + subrects["h"] <= r.y)
        assert apart.all()


def test_hextile_finds_its_own_fills() -> None:
    """Hextile is not searched for fills: one rectangle, in which every tile of the one-colour areas the
    search would have carved out costs one byte (subencoding 0: the background of the tile before) but the
    first of each area (background specified)."""
    frame, _data, dec = sent_whole([Encoding.HEXTILE, Encoding.RRE])
    masks = np.array(dec.hextile_masks).reshape(-(-600 // 16), -(-800 // 16))
    solids = split_solid(frame, Rect(0, 0, 800, 600), FILL_MIN_AREA).solids
    assert solids
    for r in solids:
        inside = masks[r.y // 16 : r.bottom // 16, r.x // 16 : r.right // 16]
        assert set(inside.reshape(-1).tolist()) <= {0, 2}  # nothing but the background
        assert np.count_nonzero(inside) <= r.h // 16  # specified at most once a tile row


@requires_novnc
@requires_corpus
@pytest.mark.parametrize(
    "encodings",
    [
        [Encoding.TIGHT],
        [Encoding.ZRLE],
        [Encoding.HEXTILE],
        [Encoding.RRE],
        [Encoding.ZLIB],
        [Encoding.RAW, Encoding.RRE],
        [Encoding.RRE, Encoding.ZRLE],
        [Encoding.ZLIB, Encoding.HEXTILE],
    ],
    ids=lambda e: "+".join(Encoding(x).name for x in e),
)
def test_manager_decodes_exact_with_novnc(encodings: list[int]) -> None:
    """Whole corpus frames and odd crops, one connection: fills and the rest, in every plan, decode exactly."""
    sel = EncoderSelector()
    sel.configure(encodings)
    names = ("terminal", "webpage", "desktop", "terminal", "photo")
    crops = [FULL, FULL, Rect(7, 3, 1001, 517), Rect(913, 555, 1007, 525), Rect(100, 100, 300, 200)]
    updates, expected, used_all = [], [], set()
    fb = np.zeros((1080, 1920, 3), np.uint8)
    for name, rect in zip(names, crops, strict=True):
        frame = corpus_frame(name)
        used, encoded = encode_all(sel, frame, [rect])
        used_all |= used
        updates.append(encoded)
        fb[rect.y : rect.bottom, rect.x : rect.right] = bgrx_to_rgb(frame)[rect.y : rect.bottom, rect.x : rect.right]
        expected.append(fb.copy())
    assert used_all <= set(encodings)
    for got, want, name in zip(decode_each_with_novnc(updates, 1920, 1080), expected, names, strict=True):
        np.testing.assert_array_equal(got, want, err_msg=name)


@requires_corpus
def test_fills_in_other_pixel_formats() -> None:
    """Fills carry the colour in the client's format (RGB565 here), converted as every other pixel is (RRE fills
    of a client that prefers Raw)."""
    frame = corpus_frame("terminal")
    sel = EncoderSelector()
    sel.configure([Encoding.RAW, Encoding.RRE])
    _, encoded = encode_all(sel, frame, [FULL], RGB565)
    solids = set(split_solid(frame, FULL, FILL_MIN_AREA).solids)
    fills = [d for d in encoded if headers([d])[0][0] in solids]
    assert len(fills) == len(solids) > 0
    for data in fills:
        ((r, _),) = headers([data])
        assert data[12:16] == bytes(4)  # no subrectangles
        assert data[16:] == converter_for(RGB565).convert(frame[r.y : r.y + 1, r.x : r.x + 1])


@requires_corpus
def test_solid_areas_shrink_tight_output() -> None:
    """On a terminal, most of the screen goes as a few dozen fills, and the update is smaller for it."""
    frame = corpus_frame("terminal")
    sel = EncoderSelector()
    sel.configure([Encoding.TIGHT])
    _, encoded = encode_all(sel, frame, [FULL])
    fills = [d for d in encoded if len(d) == 16 and d[12] & 0xF0 == 0x80]
    assert sum(r.area for r, _ in headers(fills)) > FULL.area // 2
    whole = TightEncoder().encode(EncodeJob(frame, (FULL,), NOVNC_PF))
    assert sum(map(len, encoded)) < sum(map(len, whole))


@requires_corpus
def test_rectangles_in_reading_order() -> None:
    """Fills and the rest come merged top to bottom, left to right (vncdotool takes the first rectangle of
    the first update for its whole screen, so it must be the top-left one)."""
    sel = EncoderSelector()
    sel.configure([Encoding.RRE, Encoding.HEXTILE])
    _, encoded = encode_all(sel, corpus_frame("webpage"), [FULL])
    positions = [(r.y, r.x) for r, _ in headers(encoded)]
    assert positions[0] == (0, 0)
    assert positions == sorted(positions)


@requires_corpus
@pytest.mark.parametrize("pf", [NOVNC_PF, RGB565], ids=["rgbx32", "rgb565"])
@pytest.mark.parametrize("encoding", [Encoding.RRE, Encoding.HEXTILE])
def test_rre_and_hextile_never_larger_than_raw(encoding: int, pf: PixelFormat) -> None:
    """Every rectangle RRE or Hextile sends is no bigger than the same rectangle in Raw (noise included)."""
    rects = [FULL, Rect(3, 5, 517, 333), Rect(1900, 1000, 20, 80), Rect(0, 0, 1, 1), Rect(640, 480, 64, 17)]
    sel = EncoderSelector()
    sel.configure([encoding])
    bpp = pf.bits_per_pixel // 8
    for name in ("terminal", "webpage", "desktop", "photo", "noise"):
        frame = corpus_frame(name)
        for rect in rects:
            _, encoded = encode_all(sel, frame, [rect], pf)
            for data, (r, enc) in zip(encoded, headers(encoded), strict=True):
                assert enc in (encoding, Encoding.RAW)
                assert len(data) <= 12 + r.area * bpp, (name, rect, r, enc)
            assert sum(r.area for r, _ in headers(encoded)) == rect.area


@requires_corpus
@pytest.mark.parametrize(
    ("encoding", "image", "split"),
    [
        (Encoding.RAW, "terminal", False),  # a copy of the frame: one thread is as fast
        (Encoding.HEXTILE, "photo", True),
        (Encoding.HEXTILE, "terminal", False),  # small numpy steps under the GIL: one thread is as fast
        (Encoding.RRE, "terminal", False),  # a second thread saves a tenth of the time for a third more CPU
        (Encoding.RRE, "photo", False),  # Raw after a sample: one thread is faster
    ],
)
def test_big_updates_are_split_across_cores(
    monkeypatch: pytest.MonkeyPatch, encoding: int, image: str, split: bool
) -> None:
    """Stateless encodings encode a big update in bands on two threads (output as from one thread) where that
    is faster: not Raw (a copy), Hextile on text or RRE, where a second thread costs CPU and gains little."""
    import threading
    import time

    from pyvnc.encoders import parallel, select

    monkeypatch.setattr(parallel, "_cores", 2)
    job = EncodeJob(corpus_frame(image), (FULL,), NOVNC_PF)
    threads: set[str] = set()
    cls = select.ENCODERS[encoding]
    original = cls.encode

    def spy(self: object, j: EncodeJob) -> list[bytes]:
        threads.add(threading.current_thread().name)
        # a pause without the GIL, so that the pool thread starts its band before the caller, done with its
        # own, would take that band up itself (parallel.gather)
        time.sleep(0.005)
        return original(self, j)  # type: ignore[arg-type]

    monkeypatch.setattr(cls, "encode", spy)
    selector = EncoderSelector()
    selector.configure([encoding])
    _used, out = selector.encode(job)
    assert (len(threads) == 2) == split, threads
    # the bands tile the frame, in reading order
    rects = [Rect(*struct.unpack_from(">HHHH", r)) for r in out]
    assert sum(r.area for r in rects) == FULL.area
    assert rects == sorted(rects, key=lambda r: (r.y, r.x))
    if novnc_available():
        assert np.array_equal(decode_with_novnc([out], 1920, 1080), bgrx_to_rgb(job.frame))
