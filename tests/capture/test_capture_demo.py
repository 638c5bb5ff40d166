"""DemoSource: a deterministic scene without animation, input echoed into the picture, cheap rendering."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import numpy as np

from pyvnc.capture.demo import DemoSource
from pyvnc.capture.polling import find_damage
from pyvnc.region import Rect

if TYPE_CHECKING:
    from conftest import FakeSink


def _type(src: DemoSource, text: str) -> None:
    for ch in text:
        cp = ord(ch)
        keysym = cp if cp <= 0xFF else 0x01000000 + cp
        src.key_event(keysym, True)
        src.key_event(keysym, False)


def test_size_and_format() -> None:
    src = DemoSource(640, 480, animate=False)
    assert src.size == (640, 480)
    frame = src.grab()
    assert frame.shape == (480, 640, 4) and frame.dtype == np.uint8
    assert not frame[..., 3].any()
    assert DemoSource().size == (1280, 720)


def test_static_scene_is_repeatable() -> None:
    a = DemoSource(320, 240, animate=False)
    b = DemoSource(320, 240, animate=False)
    assert np.array_equal(a.grab(), a.grab())
    assert np.array_equal(a.grab(), b.grab())


def test_typing_changes_only_the_text_box() -> None:
    src = DemoSource(640, 480, animate=False)
    before = src.grab()
    _type(src, "Hello")
    after = src.grab()
    rects = find_damage(before, after)
    assert rects
    area = sum(r.area for r in rects)
    assert area < 640 * 480 // 20, rects
    # the same text renders the same pixels; BackSpace undoes a character exactly
    other = DemoSource(640, 480, animate=False)
    _type(other, "Hellox")
    other.key_event(0xFF08, True)
    assert np.array_equal(other.grab(), after)


def test_key_mapping() -> None:
    src = DemoSource(320, 240, animate=False)
    _type(src, "aé")
    src.key_event(0x01000000 + 0x20AC, True)  # € as a Unicode keysym
    src.key_event(0xFF0D, True)  # Return
    src.key_event(ord("b"), True)
    src.key_event(ord("c"), False)  # key up: ignored
    src.key_event(0xFFE1, True)  # Shift_L: not printable
    src.key_event(0x01000000 + 0x07, True)  # a control character
    assert src._text == "aé€\nb"
    for _ in range(100):
        src.key_event(ord("z"), True)
    assert len(src._text) == 60


def test_pointer_marker_and_paint() -> None:
    src = DemoSource(640, 480, animate=False)
    base = src.grab()
    src.pointer_event(300, 350, 0)
    hover = src.grab()
    rects = find_damage(base, hover)
    assert rects and all(r.intersect(Rect(295, 345, 30, 40)) == r for r in rects), rects
    src.pointer_event(300, 350, 1)
    pressed = src.grab()
    assert not np.array_equal(hover, pressed), "the marker changes colour while a button is held"
    src.pointer_event(400, 380, 1)  # drag: paints a stroke
    src.pointer_event(500, 100, 0)  # release and move away
    moved = src.grab()
    stroke = find_damage(base, moved)
    covered = np.zeros((480, 640), dtype=bool)
    for r in stroke:
        covered[r.y : r.bottom, r.x : r.right] = True
    assert covered[365, 350], "the paint trail stays visible along the drag"


def test_clipboard_is_shown() -> None:
    src = DemoSource(640, 480, animate=False)
    before = src.grab()
    src.cut_text("from the client")
    assert find_damage(before, src.grab())


def test_animation_changes_little() -> None:
    src = DemoSource(1280, 720)
    a = src.grab()
    time.sleep(0.06)
    b = src.grab()
    rects = find_damage(a, b)
    assert rects, "the animated scene moves"
    assert sum(r.area for r in rects) < 1280 * 720 // 10


def test_small_sizes_render() -> None:
    for w, h in [(1, 1), (16, 9), (50, 400), (400, 20)]:
        assert DemoSource(w, h).grab().shape == (h, w, 4)


def test_rendering_is_cheap() -> None:
    src = DemoSource(1280, 720)
    _type(src, "some text")
    src.pointer_event(100, 100, 0)
    src.grab()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        src.grab()
        times.append(time.perf_counter() - t0)
    assert sorted(times)[10] < 0.025, times


async def test_served_frames_follow_input(sink: FakeSink) -> None:
    src = DemoSource(320, 240, animate=False)
    await src.start(sink, max_fps=100)
    try:
        await asyncio.sleep(0.1)
        assert len(sink.published) == 1, "a static scene publishes nothing new"
        _type(src, "x")
        await sink.wait_for(2)
        rects = sink.published[1][1]
        assert rects and sum(r.area for r in rects) < 320 * 240 // 10
    finally:
        await src.stop()
