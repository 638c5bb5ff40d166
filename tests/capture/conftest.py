"""Test doubles shared by the capture tests: a frame sink standing in for the server's frame hub."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from pyvnc.capture.base import FrameArray
from pyvnc.region import Rect


class FakeSink:
    """Records what a source publishes; ``demand`` says whether a client wants frames."""

    def __init__(self) -> None:
        self.published: list[tuple[FrameArray, list[Rect] | None]] = []
        self.names: list[str] = []
        self.demand = True
        self.failures: list[Exception] = []
        self.copies: list[list[object]] = []
        self.clipboards: list[str] = []
        self.bells = 0
        self.cursors: list[object] = []
        self.pointers: list[tuple[int, int]] = []

    def publish(self, frame: FrameArray, rects: Sequence[Rect] | None = None, copies: Sequence[object] = ()) -> None:
        self.copies.append(list(copies))
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 4
        assert not np.any(frame[..., 3]), "byte 3 of a published frame must be 0"
        self.published.append((frame, None if rects is None else list(rects)))

    def wants_frames(self) -> bool:
        return self.demand

    async def wait_for_demand(self) -> None:
        while not self.demand:
            await asyncio.sleep(0.005)

    def set_desktop_name(self, name: str) -> None:
        self.names.append(name)

    def fail(self, error: Exception) -> None:
        self.failures.append(error)

    def set_clipboard(self, text: str) -> None:
        self.clipboards.append(text)

    def bell(self) -> None:
        self.bells += 1

    def set_cursor(self, cursor: object) -> None:
        self.cursors.append(cursor)

    def set_pointer(self, x: int, y: int) -> None:
        self.pointers.append((x, y))

    def needs_pointer(self) -> bool:
        return True

    @property
    def last(self) -> FrameArray:
        return self.published[-1][0]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` frames were published."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.published) < count:
            if loop.time() > deadline:
                raise AssertionError(f"expected {count} published frames, got {len(self.published)}")
            await asyncio.sleep(0.005)


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()
