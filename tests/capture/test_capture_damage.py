"""Change detection between two frames: find_damage must be exact for small changes and never miss one."""

from __future__ import annotations

import numpy as np
import pytest

from pyvnc.capture.polling import find_damage
from pyvnc.region import Rect

SIZES = [(1281, 719), (1920, 1080), (64, 64), (65, 63), (1, 1), (3, 200), (200, 3), (127, 129)]


def _frame(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    frame[..., 3] = 0
    return frame


def _coverage(rects: list[Rect], w: int, h: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.int32)
    for r in rects:
        assert r.w > 0 and r.h > 0
        assert r.x >= 0 and r.y >= 0 and r.right <= w and r.bottom <= h, r
        mask[r.y : r.bottom, r.x : r.right] += 1
    return mask


def _assert_tight(prev: np.ndarray, cur: np.ndarray, rects: list[Rect]) -> None:
    """Every changed pixel is covered, no overlaps, and each rect's border rows and cols hold a change."""
    h, w = cur.shape[:2]
    changed = np.any(prev != cur, axis=2)
    cover = _coverage(rects, w, h)
    assert not np.any(changed & (cover == 0)), "a changed pixel is not covered"
    assert cover.max(initial=0) <= 1, "rectangles overlap"
    for r in rects:
        sub = changed[r.y : r.bottom, r.x : r.right]
        assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any(), f"{r} is not tight"


@pytest.mark.parametrize(("w", "h"), SIZES)
def test_single_pixel_anywhere_is_a_1x1_rect(w: int, h: int) -> None:
    prev = _frame(w, h)
    rng = np.random.default_rng(w * 7919 + h)
    positions = {(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, h // 2)}
    positions.update((int(rng.integers(w)), int(rng.integers(h))) for _ in range(20))
    for x, y in positions:
        for channel in (0, 1, 2):
            cur = prev.copy()
            cur[y, x, channel] ^= 0x01
            assert find_damage(prev, cur) == [Rect(x, y, 1, 1)], (x, y, channel)


def test_no_change_gives_nothing() -> None:
    prev = _frame(1281, 719)
    assert find_damage(prev, prev.copy()) == []
    assert find_damage(prev, prev) == []


def test_glyph_sized_change_is_exact() -> None:
    prev = _frame(1920, 1080)
    for x, y in [(10, 10), (700, 500), (60, 60), (1910, 1070), (1000, 63)]:
        cur = prev.copy()
        glyph = (slice(y, min(y + 13, 1080)), slice(x, min(x + 8, 1920)))
        cur[glyph] ^= 0x80
        rects = find_damage(prev, cur)
        gy, gx = glyph
        assert rects == [Rect(x, y, gx.stop - x, gy.stop - y)], (x, y, rects)


def test_change_spanning_tiles_merges_into_one_rect() -> None:
    prev = _frame(300, 300)
    cur = prev.copy()
    cur[50:200, 30:250] = 7
    assert find_damage(prev, cur) == [Rect(30, 50, 220, 150)]


def test_whole_frame_change() -> None:
    prev = _frame(1281, 719)
    cur = prev ^ np.uint8(1)
    assert find_damage(prev, cur) == [Rect(0, 0, 1281, 719)]


def test_separate_changes_stay_separate() -> None:
    prev = _frame(1280, 720)
    cur = prev.copy()
    cur[5, 5] ^= 1
    cur[700, 1270] ^= 1
    cur[300:310, 600:640] ^= 1
    rects = sorted(find_damage(prev, cur))
    assert rects == sorted([Rect(5, 5, 1, 1), Rect(1270, 700, 1, 1), Rect(600, 300, 40, 10)])


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_are_covered_tightly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(1, 400)), int(rng.integers(1, 400))
    prev = _frame(w, h, seed)
    cur = prev.copy()
    for _ in range(int(rng.integers(1, 30))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        cw, ch = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        cur[y : y + ch, x : x + cw, int(rng.integers(3))] ^= 0xFF
    _assert_tight(prev, cur, find_damage(prev, cur))


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        find_damage(_frame(10, 10), _frame(11, 10))


def test_non_contiguous_frames() -> None:
    big = _frame(200, 100)
    prev = big[:, :100]
    cur = prev.copy()
    cur[42, 99] ^= 3
    assert find_damage(prev, cur) == [Rect(99, 42, 1, 1)]
