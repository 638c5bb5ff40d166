"""What the tests with real viewers share: corpus crops, picture comparisons, and a viewer process on a private
Xvfb whose screen grabs are its picture of the remote framebuffer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from xhelpers import grab

# shared/ sits beside the checkout (in CI too); /work/shared is its usual place on these machines
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")

WIDTH, HEIGHT = 640, 480
Frame = npt.NDArray[np.uint8]


def corpus_crop(name: str, x: int = 200, y: int = 100, w: int = WIDTH, h: int = HEIGHT) -> Frame:
    path = CORPUS / f"{name}.png"
    if not path.exists():
        pytest.skip(f"corpus image {path} missing")
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[y : y + h, x : x + w])


def psnr(a: Frame, b: Frame) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def describe_difference(got: Frame, want: Frame) -> str:
    diff = np.any(got != want, axis=2)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    ys, xs = np.nonzero(diff)
    if len(ys) == 0:
        return "identical"
    return (
        f"{len(ys)} pixels differ, bounding box x {xs.min()}..{xs.max()} y {ys.min()}..{ys.max()}, "
        f"max channel difference {int(np.abs(got.astype(int) - want.astype(int)).max())}, "
        f"PSNR {psnr(got, want):.1f} dB"
    )


class Viewer:
    """A running ``vncviewer`` process on ``display``."""

    def __init__(self, proc: asyncio.subprocess.Process, display: str) -> None:
        self.proc = proc
        self.display = display

    async def grab(self) -> Frame:
        return await asyncio.to_thread(grab, self.display)

    async def log(self) -> str:
        """The viewer's output so far (only once it has exited)."""
        assert self.proc.stdout is not None
        return (await self.proc.stdout.read()).decode(errors="replace")

    async def wait_exact(self, want: Frame, timeout: float = 10.0) -> None:
        """Poll grabs until the viewer shows exactly ``want``; fail with a description of the last grab."""
        deadline = time.monotonic() + timeout
        got = await self.grab()
        while not np.array_equal(got, want):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                await self._fail(f"the viewer never showed the expected picture: {describe_difference(got, want)}")
            await asyncio.sleep(0.02)
            got = await self.grab()

    async def wait_settled(self, want: Frame, min_psnr: float, timeout: float = 10.0) -> Frame:
        """Poll grabs until the picture is close to ``want`` (PSNR ≥ ``min_psnr``) and stops changing."""
        deadline = time.monotonic() + timeout
        previous = await self.grab()
        stable_since = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            got = await self.grab()
            now = time.monotonic()
            if not np.array_equal(got, previous):
                previous, stable_since = got, now
            elif psnr(got, want) >= min_psnr and now - stable_since >= 0.3:
                return got
            if self.proc.returncode is not None or now > deadline:
                await self._fail(
                    f"the viewer's picture did not settle near the expected one: {describe_difference(got, want)}"
                )

    async def _fail(self, message: str) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 10)
        pytest.fail(f"{message}\nviewer output:\n{(await self.log())[-3000:]}")


@asynccontextmanager
async def viewer_process(argv: Sequence[str], display: str, home: Path) -> AsyncIterator[Viewer]:
    """Run the viewer command ``argv`` on ``display`` (with ``home`` as its HOME, for the files viewers keep
    there); stop it on exit. The display must show nothing else before and after."""
    home.mkdir(exist_ok=True)
    # the previous viewer's window must be gone: a leftover picture must not pass for this viewer's
    await wait_blank(display)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ, HOME=str(home), DISPLAY=display),
    )
    try:
        yield Viewer(proc, display)
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await wait_blank(display)


async def wait_blank(display: str, timeout: float = 10.0) -> None:
    """Poll until ``display`` shows only its black root window (``Xvfb -br``): no viewer window is left."""
    deadline = time.monotonic() + timeout
    while (await asyncio.to_thread(grab, display)).any():
        if time.monotonic() > deadline:
            raise AssertionError(f"{display} still shows a window")
        await asyncio.sleep(0.02)
