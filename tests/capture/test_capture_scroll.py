"""Scroll detection (CopyRect sources): shifted content is found exactly, or not at all."""

from __future__ import annotations

import numpy as np
import pytest

from pyvnc.capture.polling import find_damage
from pyvnc.capture.scroll import find_copy
from pyvnc.region import Rect


def text_like(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.zeros((h, w, 4), np.uint8)
    frame[..., :3] = 240
    glyphs = rng.random((h, w)) < 0.2
    frame[glyphs, :3] = rng.integers(0, 120, (int(glyphs.sum()), 3), dtype=np.uint8)
    return frame


@pytest.mark.parametrize("dy", [-37, -1, 3, 16, 120])
def test_vertical_scroll_found_exactly(dy: int) -> None:
    prev = text_like(480, 640, 1)
    cur = prev.copy()
    x0, y0, w, h = 40, 60, 500, 360  # a "window" scrolls by dy
    window = prev[y0 : y0 + h, x0 : x0 + w]
    if dy > 0:
        cur[y0 : y0 + h - dy, x0 : x0 + w] = window[dy:]
        cur[y0 + h - dy : y0 + h, x0 : x0 + w] = text_like(dy, w, 2)[:, :, :]
    else:
        cur[y0 - dy : y0 + h, x0 : x0 + w] = window[: h + dy]
        cur[y0 : y0 - dy, x0 : x0 + w] = text_like(-dy, w, 3)
    rects = find_damage(prev, cur)
    big = max(rects, key=lambda r: r.area)
    copy = find_copy(prev, cur, big)
    if abs(dy) >= h - 16:
        return
    assert copy is not None
    assert copy.src_y - copy.dst.y == dy and copy.src_x == copy.dst.x
    d = copy.dst
    assert np.array_equal(
        cur[d.y : d.bottom, d.x : d.right], prev[copy.src_y : copy.src_y + d.h, copy.src_x : copy.src_x + d.w]
    )
    assert d.h >= h - abs(dy) - 64  # nearly all of the scrolled window (damage comes in 64-row tile bands)


def test_horizontal_move_found() -> None:
    prev = text_like(300, 600, 4)
    cur = prev.copy()
    cur[50:250, 100:400] = prev[50:250, 130:430]  # content moved 30 px left
    rects = find_damage(prev, cur)
    copy = find_copy(prev, cur, max(rects, key=lambda r: r.area))
    assert copy is not None and copy.src_x - copy.dst.x == 30 and copy.src_y == copy.dst.y


def test_unrelated_change_gives_no_copy() -> None:
    prev = text_like(300, 400, 5)
    cur = text_like(300, 400, 6)
    assert find_copy(prev, cur, Rect(0, 0, 400, 300)) is None
    assert find_copy(prev, prev.copy(), Rect(0, 0, 10, 10)) is None  # too small to bother
