"""Fixtures the X input tests share: a private Xvfb per module, the event recorder on it, and an XTEST sink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from xhelpers import Recorder, private_xvfb

from pyvnc.input.x11 import X11InputSink


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """One private 640x480 Xvfb for the test module."""
    with private_xvfb("640x480x24") as name:
        yield name


@pytest.fixture(scope="module")
def recorder(display: str) -> Iterator[Recorder]:
    """The X program recording the input events it receives, for the whole module."""
    rec = Recorder(display)
    try:
        yield rec
    finally:
        rec.close()


@pytest.fixture
def injector(display: str, recorder: Recorder) -> Iterator[X11InputSink]:
    """An XTEST input sink on the display; the recorder's queue is emptied first, held input released after."""
    s = X11InputSink(display)
    recorder.clear()
    try:
        yield s
    finally:
        s.release_all()
        s.close()
