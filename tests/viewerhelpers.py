"""What the tests with real viewers share: corpus crops, picture comparisons, and a viewer process on a private
Xvfb whose screen grabs are its picture of the remote framebuffer."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from xhelpers import grab

from pyvnc import PushSource, Server, ServerConfig

# shared/ sits beside the checkout (in CI too); /work/shared is its usual place on these machines
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")

WIDTH, HEIGHT = 640, 480
Frame = npt.NDArray[np.uint8]


def requires(viewer: str, name: str) -> pytest.MarkDecorator:
    """Skip a module's tests where the ``viewer`` program (``name`` in the reason) or Xvfb is missing."""
    missing = shutil.which(viewer) is None or shutil.which("Xvfb") is None
    return pytest.mark.skipif(missing, reason=f"{name} ({viewer}) or Xvfb is not installed")


def corpus_crop(name: str, x: int = 200, y: int = 100, w: int = WIDTH, h: int = HEIGHT) -> Frame:
    path = CORPUS / f"{name}.png"
    if not path.exists():
        pytest.skip(f"corpus image {path} missing")
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[y : y + h, x : x + w])


def serve(frame: Frame, password: str | None = None) -> tuple[Server, PushSource]:
    """A server on a free loopback port (no web listener) whose desktop shows ``frame``."""
    source = PushSource(width=frame.shape[1], height=frame.shape[0])
    source.push(frame)
    return Server(ServerConfig(port=0, web_port=0, password=password), source=source), source


def password_file(directory: Path, password: str) -> Path:
    """A VNC password file (the obfuscated form ``vncpasswd -f`` writes, which VNC viewers read)."""
    if shutil.which("vncpasswd") is None:
        pytest.skip("vncpasswd (tigervnc-tools) is not installed")
    path = directory / "passwd"
    with path.open("wb") as f:
        subprocess.run(["vncpasswd", "-f"], input=f"{password}\n".encode(), stdout=f, check=True)
    return path


#: the areas :func:`small_changes` changes, (x, y, w, h): a bar, a patch, the bottom-left pixel
CHANGED_AREAS = [(20, 10, 200, 30), (600, 300, 40, 17), (0, HEIGHT - 1, 1, 1)]


def small_changes(frame: Frame, patch: Frame) -> Frame:
    """``frame`` (WIDTH × HEIGHT) with :data:`CHANGED_AREAS` changed: an orange bar, ``patch`` (17 × 40), and
    one pixel in the bottom-left corner."""
    changed = frame.copy()
    changed[10:40, 20:220] = (255, 64, 0)
    changed[300:317, 600:640] = patch
    changed[HEIGHT - 1, 0] = (1, 2, 3)
    return changed


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


#: the part of a grab of the viewer's display that shows the remote desktop, given the picture expected there
Locate = Callable[[Frame, Frame], Frame]


class Viewer:
    """A running viewer process on ``display``. By default the whole display is its picture of the remote
    desktop (a full-screen viewer); ``locate`` finds the picture in a windowed viewer's grab."""

    def __init__(self, proc: asyncio.subprocess.Process, display: str, locate: Locate | None = None) -> None:
        self.proc = proc
        self.display = display
        self.locate = locate

    async def grab(self) -> Frame:
        return await asyncio.to_thread(grab, self.display)

    async def picture(self, want: Frame) -> Frame:
        """A grab of the viewer's picture of the remote desktop, to compare with ``want``."""
        got = await self.grab()
        return got if self.locate is None else self.locate(got, want)

    async def log(self) -> str:
        """The viewer's output so far (only once it has exited)."""
        assert self.proc.stdout is not None
        return (await self.proc.stdout.read()).decode(errors="replace")

    async def wait_exact(self, want: Frame, timeout: float = 10.0) -> None:
        """Poll grabs until the viewer shows exactly ``want``; fail with a description of the last grab."""
        deadline = time.monotonic() + timeout
        got = await self.picture(want)
        while not np.array_equal(got, want):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                await self._fail(f"the viewer never showed the expected picture: {describe_difference(got, want)}")
            await asyncio.sleep(0.02)
            got = await self.picture(want)

    async def wait_settled(self, want: Frame, min_psnr: float, timeout: float = 10.0) -> Frame:
        """Poll grabs until the picture is close to ``want`` (PSNR ≥ ``min_psnr``) and stops changing."""
        deadline = time.monotonic() + timeout
        previous = await self.picture(want)
        stable_since = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            got = await self.picture(want)
            now = time.monotonic()
            if not np.array_equal(got, previous):
                previous, stable_since = got, now
            elif got.shape == want.shape and psnr(got, want) >= min_psnr and now - stable_since >= 0.3:
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
async def viewer_process(
    argv: Sequence[str], display: str, home: Path, locate: Locate | None = None
) -> AsyncIterator[Viewer]:
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
        yield Viewer(proc, display, locate)
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
