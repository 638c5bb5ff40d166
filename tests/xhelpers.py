"""Private X servers for the tests: an Xvfb on a display number it picks itself, and screen grabs."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

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
