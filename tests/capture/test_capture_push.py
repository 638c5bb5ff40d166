"""PushSource: conversion to BGRX, partial updates, thread safety, validation, resizes, callbacks."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pyvnc.capture.push import PushSource
from pyvnc.region import Rect

if TYPE_CHECKING:
    from conftest import FakeSink


def _rgb(w: int, h: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _bgrx(rgb: np.ndarray) -> np.ndarray:
    out = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = rgb[..., 2], rgb[..., 1], rgb[..., 0]
    return out


async def test_initial_frame_is_black(sink: FakeSink) -> None:
    src = PushSource(64, 48)
    assert src.size == (64, 48)
    await src.start(sink, max_fps=30)
    frame, rects = sink.published[0]
    assert rects is None and frame.shape == (48, 64, 4) and not frame.any()
    await src.stop()


@pytest.mark.parametrize("channels", [3, 4])
async def test_conversion_is_exact(sink: FakeSink, channels: int) -> None:
    src = PushSource(37, 23)
    await src.start(sink, max_fps=30)
    img = _rgb(37, 23, channels=channels)
    src.push(img)
    frame, rects = sink.published[-1]
    assert rects is None
    assert np.array_equal(frame, _bgrx(img))
    await src.stop()


async def test_partial_update_changes_only_the_rects(sink: FakeSink) -> None:
    src = PushSource(100, 80)
    await src.start(sink, max_fps=30)
    first = _rgb(100, 80, 1)
    src.push(first)
    second = _rgb(100, 80, 2)
    src.push(second, rects=[(10, 5, 20, 10), (90, 70, 50, 50), (200, 200, 5, 5)])
    frame, rects = sink.published[-1]
    assert rects == [Rect(10, 5, 20, 10), Rect(90, 70, 10, 10)]  # clipped; the outside one dropped
    expected = _bgrx(first)
    expected[5:15, 10:30] = _bgrx(second)[5:15, 10:30]
    expected[70:80, 90:100] = _bgrx(second)[70:80, 90:100]
    assert np.array_equal(frame, expected)
    assert not np.shares_memory(frame, sink.published[-2][0]), "a published frame is never modified"
    count = len(sink.published)
    src.push(second, rects=[(500, 500, 10, 10)])
    assert len(sink.published) == count, "nothing inside the frame changed"
    await src.stop()


async def test_push_before_start(sink: FakeSink) -> None:
    src = PushSource(10, 10)
    img = _rgb(10, 10, 3)
    src.push(img)
    await src.start(sink, max_fps=30)
    assert len(sink.published) == 1
    assert np.array_equal(sink.last, _bgrx(img))
    await src.stop()


async def test_push_from_another_thread(sink: FakeSink) -> None:
    src = PushSource(64, 64)
    await src.start(sink, max_fps=30)
    images = [_rgb(64, 64, seed) for seed in range(50)]

    def producer() -> None:
        for i, img in enumerate(images):
            src.push(img, rects=[(i, i, 8, 8)])

    thread = threading.Thread(target=producer)
    thread.start()
    thread.join()
    await sink.wait_for(2)
    await asyncio.sleep(0.05)
    assert all(rects is not None for _, rects in sink.published[1:])
    expected = np.zeros((64, 64, 4), dtype=np.uint8)
    for i, img in enumerate(images):
        expected[i : i + 8, i : i + 8] = _bgrx(img)[i : i + 8, i : i + 8]
    assert np.array_equal(sink.last, expected)
    assert np.array_equal(src.frame, expected)
    # pushes coalesce, but every pushed area is covered by what was published after the start
    covered = np.zeros((64, 64), dtype=bool)
    for _, rects in sink.published[1:]:
        for r in rects if rects is not None else [Rect(0, 0, 64, 64)]:
            covered[r.y : r.bottom, r.x : r.right] = True
    assert covered[np.any(expected != 0, axis=2)].all()
    await src.stop()


async def test_resize(sink: FakeSink) -> None:
    src = PushSource(64, 48)
    await src.start(sink, max_fps=30)
    img = _rgb(80, 60)
    src.push(img, rects=[(0, 0, 4, 4)])  # a new size is always taken whole
    frame, rects = sink.published[-1]
    assert rects is None and frame.shape == (60, 80, 4)
    assert src.size == (80, 60)
    await src.stop()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((10, 10, 5), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((2, 10, 10, 3), np.uint8),
    ],
)
def test_bad_frames_raise_value_error(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="pushed frame"):
        PushSource(10, 10).push(bad)


def test_non_contiguous_input() -> None:
    src = PushSource(50, 50)
    big = _rgb(100, 50, channels=4)
    view = big[:, ::2]
    src.push(view)
    assert np.array_equal(src.frame, _bgrx(view))


async def test_callbacks_and_name(sink: FakeSink) -> None:
    keys: list[tuple[int, bool]] = []
    pointer: list[tuple[int, int, int]] = []
    clips: list[str] = []
    src = PushSource(
        10,
        10,
        name="my app",
        on_key=lambda k, d: keys.append((k, d)),
        on_pointer=lambda x, y, b: pointer.append((x, y, b)),
        on_clipboard=clips.append,
    )
    assert src.name == "my app"
    src.key_event(0x61, True)
    src.pointer_event(3, 4, 1)
    src.cut_text("hi")
    assert keys == [(0x61, True)] and pointer == [(3, 4, 1)] and clips == ["hi"]
    await src.start(sink, max_fps=30)
    src.set_name("renamed")
    assert sink.names == ["renamed"]
    threading.Thread(target=src.set_name, args=("from a thread",)).start()
    for _ in range(100):
        if len(sink.names) == 2:
            break
        await asyncio.sleep(0.01)
    assert sink.names == ["renamed", "from a thread"]
    await src.stop()


def test_callback_errors_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("bug in the host program")

    src = PushSource(10, 10, on_key=boom, on_pointer=boom, on_clipboard=boom)
    src.key_event(1, True)
    src.pointer_event(1, 1, 0)
    src.cut_text("x")
    assert sum("callback failed" in r.getMessage() for r in caplog.records) == 3
