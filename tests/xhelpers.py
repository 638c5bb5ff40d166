"""Private X servers for the tests: an Xvfb on a display number it picks itself, screen grabs, and a recorder
of the input events an X program receives."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mss
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Xvfb:
    proc: subprocess.Popen[bytes]
    display: str


@contextlib.contextmanager
def xvfb_process(geometry: str = "640x480x24", *extra: str) -> Iterator[Xvfb]:
    """An Xvfb on a free display number (reported through -displayfd), stopped on the way out."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", geometry, "-nolisten", "tcp", "-noreset", *extra],
        pass_fds=(write_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        data = b""
        deadline = time.monotonic() + 10
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                raise RuntimeError("Xvfb did not report a display within 10 s")
            chunk = os.read(read_fd, 16)
            if not chunk:
                raise RuntimeError("Xvfb exited before reporting a display")
            data += chunk
        yield Xvfb(proc, f":{int(data)}")
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def private_xvfb(geometry: str = "640x480x24", *extra: str) -> Iterator[str]:
    """:func:`xvfb_process`, giving just the display name."""
    with xvfb_process(geometry, *extra) as x:
        yield x.display


def grab(display: str) -> npt.NDArray[np.uint8]:
    """The whole X screen as an (h, w, 3) RGB array (mss, XShm)."""
    with mss.MSS(display=display) as sct:
        shot = sct.grab(sct.monitors[0])
        return np.asarray(shot)[..., 2::-1].copy()


#: the X program that prints every key, button and motion event it sees (tests/input/xrecorder.py)
RECORDER = Path(__file__).with_name("input") / "xrecorder.py"
MODIFIER_KEYSYMS = {k for k in range(0xFE01, 0xFE10)} | {k for k in range(0xFFE1, 0xFFEF)} | {0xFF7E, 0xFF7F}

Event = dict[str, Any]


class Recorder:
    """Runs xrecorder.py on a display and hands out the events it prints."""

    def __init__(self, display: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RECORDER), display],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, LC_ALL="C.UTF-8"),
        )
        self.events: queue.Queue[Event] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.next(10)
        assert ready["type"] == "ready", ready

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next(self, timeout: float = 5.0) -> Event:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            raise AssertionError(f"the recorder saw nothing for {timeout} s {err}") from None

    def clear(self) -> None:
        while True:
            try:
                self.events.get_nowait()
            except queue.Empty:
                return

    def collect(self, want: Callable[[Event], bool], count: int, timeout: float = 5.0) -> list[Event]:
        """The next ``count`` events that satisfy ``want`` (others are skipped)."""
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"expected {count} events, got {out}")
            ev = self.next(left)
            if want(ev):
                out.append(ev)
        return out

    def typed(self, count: int, timeout: float = 5.0) -> list[Event]:
        """The next ``count`` key presses of non-modifier keys."""
        return self.collect(
            lambda e: e["type"] == "key" and e["down"] and e["keysym"] not in MODIFIER_KEYSYMS, count, timeout
        )

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RootPainter:
    """Draws filled rectangles straight onto the root window with python-xlib (no client program needed)."""

    def __init__(self, display: str) -> None:
        from Xlib import X
        from Xlib import display as xdisplay

        self.d = xdisplay.Display(display)
        self.root = self.d.screen().root
        self.gc = self.root.create_gc(foreground=0, subwindow_mode=X.IncludeInferiors)

    def rect(self, x: int, y: int, w: int, h: int, rgb: int) -> None:
        self.gc.change(foreground=rgb)
        self.root.fill_rectangle(self.gc, x, y, w, h)
        self.d.sync()

    def text_window(self, seed: int = 9) -> None:
        """A light screen with 300 glyph-sized specks of random colours in a "window" (40..600, 40..440)."""
        rng = np.random.default_rng(seed)
        self.rect(0, 0, 640, 480, 0xF0F0F0)
        for _ in range(300):
            self.gc.change(foreground=int(rng.integers(0, 1 << 24)))
            self.root.fill_rectangle(self.gc, int(rng.integers(40, 590)), int(rng.integers(40, 430)), 7, 12)
        self.d.sync()

    def scroll_window(self, step: int) -> None:
        """Scroll the text window up by 20 rows and draw a new line at its bottom, as a terminal does."""
        from Xlib import X

        gc = self.root.create_gc(subwindow_mode=X.IncludeInferiors)
        self.root.copy_area(gc, self.root, 40, 60, 560, 380, 40, 40)
        self.rect(40, 420, 560, 20, 0xF0F0F0 - step)

    def close(self) -> None:
        self.d.close()
