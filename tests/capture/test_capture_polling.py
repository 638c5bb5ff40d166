"""PollingSource: demand-driven grabbing, throttling, damage, resizes and failures."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pyvnc.capture.base import FrameArray
from pyvnc.capture.polling import PollingSource
from pyvnc.errors import CaptureError
from pyvnc.region import Rect

if TYPE_CHECKING:
    from conftest import FakeSink


class ScriptedSource(PollingSource):
    """A polling source whose grab() returns what ``make`` gives for the grab number."""

    def __init__(self, make: Callable[[int], FrameArray]) -> None:
        super().__init__()
        self.make = make
        self.grabs = 0
        self.threads: set[int] = set()

    def grab(self) -> FrameArray:
        self.threads.add(threading.get_ident())
        n = self.grabs
        self.grabs += 1
        return self.make(n)


def _blank(w: int = 100, h: int = 80) -> FrameArray:
    return np.zeros((h, w, 4), dtype=np.uint8)


async def test_first_frame_is_published_whole(sink: FakeSink) -> None:
    src = ScriptedSource(lambda n: _blank())
    await src.start(sink, max_fps=30)
    try:
        assert len(sink.published) == 1
        assert sink.published[0][1] is None
        assert src.size == (100, 80)
    finally:
        await src.stop()


async def test_changes_are_published_with_tight_rects(sink: FakeSink) -> None:
    def make(n: int) -> FrameArray:
        f = _blank()
        if n >= 1:
            f[10, 20, 2] = 255
        if n >= 2:
            f[70:75, 90:100, 0] = 9
        return f

    src = ScriptedSource(make)
    await src.start(sink, max_fps=200)
    try:
        await sink.wait_for(3)
        assert sink.published[1][1] == [Rect(20, 10, 1, 1)]
        assert sink.published[2][1] == [Rect(90, 70, 10, 5)]
        await asyncio.sleep(0.05)
        assert len(sink.published) == 3, "unchanged frames must not be published"
        assert src.grabs > 4
    finally:
        await src.stop()


async def test_unchanged_frames_are_throttled(sink: FakeSink) -> None:
    src = ScriptedSource(lambda n: _blank())
    await src.start(sink, max_fps=20)
    await asyncio.sleep(0.5)
    await src.stop()
    # ~10 grabs in 0.5 s at 20 fps, plus the first one; never a busy loop
    assert 5 <= src.grabs <= 13, src.grabs
    assert len(sink.published) == 1


async def test_no_grabs_without_demand(sink: FakeSink) -> None:
    sink.demand = False
    src = ScriptedSource(lambda n: _blank())
    await src.start(sink, max_fps=100)
    await asyncio.sleep(0.1)
    assert src.grabs == 1  # only the first frame
    sink.demand = True
    await asyncio.sleep(0.1)
    await src.stop()
    assert src.grabs > 1


async def test_resize_is_published_without_rects(sink: FakeSink) -> None:
    src = ScriptedSource(lambda n: _blank(100, 80) if n == 0 else _blank(120, 90))
    await src.start(sink, max_fps=100)
    try:
        await sink.wait_for(2)
        frame, rects = sink.published[1]
        assert rects is None
        assert frame.shape == (90, 120, 4)
        assert src.size == (120, 90)
    finally:
        await src.stop()


async def test_grabs_run_off_the_event_loop_thread(sink: FakeSink) -> None:
    src = ScriptedSource(lambda n: _blank())
    await src.start(sink, max_fps=100)
    await asyncio.sleep(0.05)
    await src.stop()
    assert threading.get_ident() not in src.threads
    assert len(src.threads) == 1


async def test_grab_error_stops_the_task_once(sink: FakeSink, caplog: pytest.LogCaptureFixture) -> None:
    def make(n: int) -> FrameArray:
        if n >= 2:
            raise OSError("display went away")
        return _blank()

    src = ScriptedSource(make)
    with caplog.at_level(logging.ERROR):
        await src.start(sink, max_fps=100)
        await asyncio.sleep(0.2)
    assert isinstance(src.failed, CaptureError)
    assert "display went away" in str(src.failed)
    assert src.grabs == 3, "a failed source must not retry in a loop"
    # the source reports the failure to its sink once (the server logs it and shuts down)
    assert sink.failures == [src.failed]
    await src.stop()  # does not raise


async def test_capture_error_from_the_first_grab_fails_start(sink: FakeSink) -> None:
    def make(n: int) -> FrameArray:
        raise CaptureError("cannot open X display :99: nope")

    src = ScriptedSource(make)
    with pytest.raises(CaptureError, match="cannot open X display"):
        await src.start(sink, max_fps=30)
    assert sink.published == []
    await src.stop()


async def test_wrong_frame_shape_is_a_capture_error(sink: FakeSink) -> None:
    src = ScriptedSource(lambda n: np.zeros((10, 10, 3), dtype=np.uint8))
    with pytest.raises(CaptureError, match="uint8"):
        await src.start(sink, max_fps=30)


async def test_stop_and_restart(sink: FakeSink) -> None:
    src = ScriptedSource(lambda n: _blank())
    await src.start(sink, max_fps=100)
    await src.stop()
    grabs = src.grabs
    await asyncio.sleep(0.05)
    assert src.grabs == grabs
    await src.start(sink, max_fps=100)
    await src.stop()
    assert len(sink.published) == 2
