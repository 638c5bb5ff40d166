"""The tile helpers of ``pyvnc.encoders.classify`` against straightforward definitions."""

from __future__ import annotations

import numpy as np
import pytest

from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.classify import (
    above_equal,
    chain_heads,
    chain_lower_bound,
    client_values,
    count_true,
    distinct,
    find_subrects,
    gather_tiles,
    layout_for,
    left_differs,
    palette_indices,
    solid_tiles,
    split_tiles,
    top_rows_constant,
)
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat
from pyvnc.region import Rect

RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)  # every bit used: padding needs a wider type


def blocky(h: int, w: int, dtype: type, seed: int) -> np.ndarray:
    """Pixel values with solid 16×16 blocks, blocks of two colours and busy blocks, plus stray pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 4, (-(-h // 16), -(-w // 16)))
    values = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:h, :w].astype(dtype)
    busy = rng.random(values.shape) < 0.002
    values[busy] = rng.integers(0, 1 << 16, int(busy.sum())).astype(dtype)
    return values


@pytest.mark.parametrize(("h", "w"), [(64, 64), (33, 47), (16, 1), (1, 70), (5, 5), (100, 257)])
def test_solid_tiles_agree_with_the_tiles(h: int, w: int) -> None:
    values = blocky(h, w, np.uint32, h * w)
    values[-1, -1] ^= 1  # the last (partial) tile is never one colour, whatever the blocks
    grid = split_tiles(values, 16, layout_for(NATIVE))
    solid, first = solid_tiles(values, 16)
    for i in range(grid.n):
        tile = grid.tiles[i, : grid.th[i], : grid.tw[i]]
        assert bool(solid[i]) == bool((tile == tile[0, 0]).all()), i
        assert first[i] == tile[0, 0]
    assert not solid[-1] or h * w == 1
    top = top_rows_constant(values, 16)
    for i in range(grid.n):
        row = grid.tiles[i, 0, : grid.tw[i]]
        assert bool(top[i]) == bool((row == row[0]).all()), i
    assert not (solid & ~top).any()  # a one-colour tile has a one-colour top row
    # told which tiles can be one colour, it finds the same
    assert np.array_equal(solid_tiles(values, 16, top)[0], solid)


@pytest.mark.parametrize("busy_rows", [0, 1, 3, 5])
def test_solid_tiles_skip_bands_without_candidates(busy_rows: int) -> None:
    """Bands of tile rows where no tile can be one colour are not compared, yet the answer is the same; with
    ``maybe`` wrong for a band (a one-colour tile not marked), that band's tiles come out False."""
    values = blocky(6 * 16 + 5, 200, np.uint32, busy_rows)
    noisy = np.random.default_rng(busy_rows).integers(0, 1 << 24, values.shape).astype(np.uint32)
    rows = np.arange(values.shape[0]) // 16 >= busy_rows  # the top busy_rows bands are blocky, the rest noise
    values = np.where(rows[:, None], noisy, values)
    solid, _ = solid_tiles(values, 16)
    top = top_rows_constant(values, 16)
    assert np.array_equal(solid_tiles(values, 16, top)[0], solid)
    if busy_rows:
        assert solid.any()
        hidden = top.copy().reshape(7, -1)
        hidden[0] = False  # band 0 said to hold no candidate: with few candidate bands it is skipped
        got = solid_tiles(values, 16, hidden.reshape(-1))[0].reshape(7, -1)
        if (busy_rows - 1) * 2 < 7:  # the candidate bands left are few enough to be picked out
            assert not got[0].any()
        assert np.array_equal(got[1:], solid.reshape(7, -1)[1:])


@pytest.mark.parametrize("pf", [NATIVE, RGB565], ids=["native", "rgb565"])
@pytest.mark.parametrize(("h", "w"), [(64, 64), (33, 47), (100, 257), (15, 15)])
def test_gather_tiles_equals_split_tiles(pf: PixelFormat, h: int, w: int) -> None:
    dtype = np.uint16 if pf is RGB565 else np.uint32
    values = blocky(h, w, dtype, 7)
    layout = layout_for(pf)
    whole = split_tiles(values, 16, layout)
    rng = np.random.default_rng(1)
    for idx in (np.arange(whole.n), np.sort(rng.choice(whole.n, max(1, whole.n // 3), replace=False))):
        part = gather_tiles(values, idx, 16, layout)
        assert np.array_equal(part.tw, whole.tw[idx]) and np.array_equal(part.th, whole.th[idx])
        for k, i in enumerate(idx):
            th, tw = whole.th[i], whole.tw[i]
            assert np.array_equal(part.tiles[k, :th, :tw], whole.tiles[i, :th, :tw])
            if part.valid is not None:
                assert part.valid[k].sum() == th * tw and part.valid[k, :th, :tw].all()
                assert (part.tiles[k][~part.valid[k]] == part.sentinel).all()
            else:
                assert th == tw == 16


def test_distinct_is_sorted_unique() -> None:
    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 1000):
        a = rng.integers(0, 50, n).astype(np.uint32)
        assert np.array_equal(distinct(a), np.unique(a))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chain_heads_bound_the_subrectangles(seed: int) -> None:
    """RRE gives up early when the chain heads not of the background colour already outweigh Raw: that is
    only right if every cover needs at least that many rectangles, which find_subrects' does."""
    values = blocky(40, 70, np.uint32, seed)
    rng = np.random.default_rng(seed)
    values[rng.random(values.shape) < 0.2] = 9  # runs that continue down and sideways, and ones that do not
    heads = chain_heads(values.reshape(1, 40, 70))[0]
    assert heads[0, 0] and heads[0].sum() == 1 + np.count_nonzero(values[0, 1:] != values[0, :-1])  # row 0: its runs
    for bg in (0, 1, 9):
        need = int(np.count_nonzero(heads & (values != bg)))
        found = len(find_subrects(values.reshape(1, 40, 70), np.array([bg], np.uint32)))
        assert 0 < need <= found, (bg, need, found)


@pytest.mark.parametrize("k", [0, 3, 8, 240, 256, 2040, 2048, 4096, 8 * 509])
def test_count_true_counts_like_count_nonzero(k: int) -> None:
    """8 flags at a time in byte counters: an all-True row is the case where a counter could overflow."""
    rng = np.random.default_rng(k)
    for flags in (rng.random((6, k)) < 0.6, np.ones((3, k), dtype=bool), np.zeros((2, k), dtype=bool)):
        assert np.array_equal(count_true(flags), np.count_nonzero(flags, axis=1))
    assert np.array_equal(count_true(np.ones((4, k), dtype=bool)[:, ::-1]), [k] * 4)  # a view that is not contiguous


@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 5, 7), (4, 1, 9), (2, 6, 1)])
def test_neighbour_flags_of_tiles(shape: tuple[int, int, int]) -> None:
    """left_differs and above_equal work on the flat buffer; no flag may come from the tile before."""
    tiles = np.random.default_rng(sum(shape)).integers(0, 3, shape).astype(np.uint32)
    n, h, w = shape
    left = left_differs(tiles)
    above = above_equal(tiles)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                assert left[i, y, x] == (x == 0 or tiles[i, y, x] != tiles[i, y, x - 1])
                assert above[i, y, x] == (y > 0 and tiles[i, y, x] == tiles[i, y - 1, x])


def test_chain_lower_bound_counts_the_chain_heads() -> None:
    values = blocky(64, 48, np.uint32, 4)
    values[np.random.default_rng(4).random(values.shape) < 0.3] = 7
    tiles = split_tiles(values, 16, layout_for(NATIVE)).tiles
    heads = chain_heads(tiles)
    for i, y, x in np.ndindex(*tiles.shape):
        t = tiles[i]
        starts = x == 0 or t[y, x] != t[y, x - 1]
        above_starts = y > 0 and (x == 0 or t[y - 1, x] != t[y - 1, x - 1]) and t[y, x] == t[y - 1, x]
        assert heads[i, y, x] == (starts and not above_starts)
    assert np.array_equal(chain_lower_bound(tiles), heads.reshape(len(tiles), -1).sum(axis=1))


@pytest.mark.parametrize("n", [1, 2, 17, 222, 256])
def test_palette_indices_agree_with_a_binary_search(n: int) -> None:
    rng = np.random.default_rng(n)
    for dtype, top in ((np.uint32, 1 << 24), (np.uint16, 1 << 16), (np.uint8, 256)):
        if n > top:
            continue
        for _ in range(20):  # some palettes make every hash collide: the binary search answers those
            colours = np.sort(rng.choice(top, n, replace=False)).astype(dtype)
            values = colours[rng.integers(0, n, 5000)]
            assert np.array_equal(palette_indices(colours, values), np.searchsorted(colours, values))
    wide = np.sort(rng.choice(1 << 40, n, replace=False)).astype(np.uint64)  # no hash: a binary search
    assert np.array_equal(palette_indices(wide, wide[::-1]), np.arange(n)[::-1])


def _cover(tiles: np.ndarray, bg: np.ndarray, valid: np.ndarray | None = None) -> int:
    """find_subrects' rectangles, checked: one colour each, and with the background they give every pixel."""
    sub = find_subrects(tiles, bg, valid)
    out = np.repeat(bg, tiles[0].size).reshape(tiles.shape)
    for t, x, y, w, h, c in zip(sub.tile, sub.x, sub.y, sub.w, sub.h, sub.colour, strict=True):
        assert w >= 1 and h >= 1 and (tiles[t, y : y + h, x : x + w] == c).all()
        out[t, y : y + h, x : x + w] = c
    real = np.ones(tiles.shape, dtype=bool) if valid is None else valid
    assert np.array_equal(out[real], tiles[real])
    has_fg = ((tiles != bg[:, None, None]) & real).any(axis=(1, 2))
    assert np.array_equal(np.bincount(sub.tile, minlength=len(tiles)) > 0, has_fg)
    return len(sub)


def test_subrectangles_continue_across_a_wider_run_of_their_colour() -> None:
    """The stem of a "+" is one rectangle through its bar; two bars make a chain of joins; a stem two pixels
    wide whose bar covers only one of its columns cannot be joined."""
    plus = np.zeros((16, 16), np.uint32)
    plus[2:13, 6] = 1
    plus[7, 2:11] = 1
    double = np.zeros((16, 16), np.uint32)
    double[2:13, 6] = 1
    double[5, 2:11] = 1
    double[9, 1:8] = 1
    broken = np.zeros((16, 16), np.uint32)
    broken[2:13, 6:8] = 1
    broken[7, 2:7] = 1  # covers column 6, and column 7 of row 7 is background
    broken[7, 7] = 0
    tiles = np.stack((plus, double, broken))
    bg = np.zeros(3, np.uint32)
    assert _cover(tiles[:1], bg[:1]) == 2  # stem + bar
    assert _cover(tiles[1:2], bg[:1]) == 3  # stem + two bars
    assert _cover(tiles[2:], bg[:1]) == 3  # stem above, bar with the stem's left column, stem below
    assert _cover(tiles, bg) == 8


@pytest.mark.parametrize("seed", range(6))
def test_subrectangles_cover_random_tiles_exactly(seed: int) -> None:
    """Few colours in strokes and blocks (so that runs continue, join and cross), padded edge tiles too."""
    rng = np.random.default_rng(seed)
    values = blocky(50, 71, np.uint32, seed)
    strokes = rng.random(values.shape) < 0.3
    values[strokes] = rng.integers(0, 3, int(strokes.sum()))
    values[::7] = 2  # bars across the strokes
    grid = split_tiles(values, 16, layout_for(NATIVE))
    assert grid.valid is not None
    pairs = zip(grid.tiles, grid.valid, strict=True)
    bg = np.array([np.bincount(t[v].astype(np.int64)).argmax() for t, v in pairs], np.uint32)
    _cover(grid.tiles, bg, grid.valid)


def _runs_reference(tile: np.ndarray, bg: int, valid: np.ndarray | None) -> list[tuple[int, int, int, int, int]]:
    """The plain definition of the subrectangles of a tall tile: every horizontal run not of the background,
    joined to the run right above when that has the same columns and colour; (y, x, w, h, colour), in order."""
    hgt, wid = tile.shape
    owner: dict[tuple[int, int], int] = {}  # (row, first column) of a run → its rectangle
    rects: list[list[int]] = []
    for y in range(hgt):
        x = 0
        while x < wid:
            end = x + 1
            while end < wid and tile[y, end] == tile[y, x]:
                end += 1
            c = int(tile[y, x])
            if c != bg and (valid is None or valid[y, x]):
                k = owner.get((y - 1, x))
                if k is not None and rects[k][2] == end - x and rects[k][4] == c:
                    rects[k][3] += 1
                else:
                    k = len(rects)
                    rects.append([y, x, end - x, 1, c])
                owner[(y, x)] = k
            x = end
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rects]


@pytest.mark.parametrize("seed", range(4))
def test_subrectangles_of_tall_tiles_follow_the_runs(seed: int) -> None:
    """Tiles of more than 64 rows (RRE's whole rectangles) go through the list of runs: exactly the runs joined
    down their columns, in order, on one tile, on several with padding, with a line down the whole tile (a
    chain of every row) and on a tile of background only."""
    rng = np.random.default_rng(seed)
    values = blocky(230, 75, np.uint32, seed)
    strokes = rng.random(values.shape) < 0.2
    values[strokes] = rng.integers(0, 3, int(strokes.sum()))
    values[:, 40] = 5  # one rectangle 230 rows high
    values[100:, 50:53] = 6
    tiles = values.reshape(1, 230, 75)
    bg = np.array([1], np.uint32)
    sub = find_subrects(tiles, bg)
    got = list(zip(sub.y.tolist(), sub.x.tolist(), sub.w.tolist(), sub.h.tolist(), sub.colour.tolist(), strict=True))
    assert got == _runs_reference(values, 1, None)
    assert (0, 40, 1, 230, 5) in got and (100, 50, 3, 130, 6) in got
    assert _cover(tiles, bg) == len(got)
    # three tiles, the last padded on the right and at the bottom with a value no pixel has
    stack = values[:, :72].reshape(230, 3, 24).transpose(1, 0, 2).copy()
    valid = np.ones(stack.shape, dtype=bool)
    valid[2, 200:, :] = False
    valid[2, :, 20:] = False
    stack[~valid] = 99
    tile_bg = np.array([0, 1, 2], np.uint32)
    sub = find_subrects(stack, tile_bg, valid)
    found = list(zip(sub.tile, sub.y, sub.x, sub.w, sub.h, sub.colour, strict=True))
    for t in range(3):
        assert [r[1:] for r in found if r[0] == t] == _runs_reference(stack[t], int(tile_bg[t]), valid[t])
    _cover(stack, tile_bg, valid)
    assert len(find_subrects(np.full((1, 70, 9), 4, np.uint32), np.array([4], np.uint32))) == 0


@pytest.mark.parametrize(
    "pf",
    [
        NATIVE,
        PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
        PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8),  # colour in the top 3 bytes
        PixelFormat(32, 24, False, True, 63, 63, 63, 20, 10, 0),
        RGB565,
        PixelFormat(16, 15, False, True, 31, 31, 31, 10, 5, 0),
        PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
        PixelFormat(8, 6, False, True, 3, 3, 3, 4, 2, 0),
    ],
)
def test_client_values_set_only_colour_bits(pf: PixelFormat) -> None:
    """The encoders compare pixel values as they come: bits outside the colour fields (the frame's X byte
    takes any value here) must never be set, or one colour would split into several."""
    frame = np.random.default_rng(9).integers(0, 256, (19, 23, 4), dtype=np.uint8)
    values = client_values(EncodeJob(frame, (), pf), Rect(0, 0, 23, 19))
    used = layout_for(pf).used_mask
    assert not np.any(values & ~np.array(used, dtype=values.dtype))
    frame[..., 3] ^= 0xFF  # the same colours with another X byte: the same values
    assert np.array_equal(client_values(EncodeJob(frame, (), pf), Rect(0, 0, 23, 19)), values)
