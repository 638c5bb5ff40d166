"""A private virtual X display (Xvfb) that pyvnc starts, grabs, and tears down.

:class:`XvfbSource` starts ``Xvfb :N -screen 0 WxHx24 -nolisten tcp -noreset`` on the first free display
number from ``first_display`` on, learns that the server is ready from ``-displayfd`` (Xvfb writes the display
number there once it accepts connections), optionally starts a session command on it, and grabs it like any
X display. On Linux the children get ``PR_SET_PDEATHSIG`` so they die with pyvnc even if pyvnc is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import IO

from ..errors import CaptureError
from .x11 import X11Source

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _death_signal_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when its parent dies (Linux), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _display_in_use(n: int) -> bool:
    return os.path.exists(f"/tmp/.X{n}-lock") or os.path.exists(f"/tmp/.X11-unix/X{n}")


async def _terminate(proc: subprocess.Popen[bytes], what: str, group: bool = False, timeout: float = 5.0) -> None:
    """SIGTERM ``proc`` (its process group if ``group``), wait up to ``timeout``, then SIGKILL."""
    if proc.poll() is not None:
        return

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.poll() is None and loop.time() < deadline:
        await asyncio.sleep(0.02)
    if proc.poll() is None:
        logger.warning("%s (pid %d) ignored SIGTERM; killing it", what, proc.pid)
        send(signal.SIGKILL)
        while proc.poll() is None:
            await asyncio.sleep(0.01)
    elif group:
        # the leader is gone; make sure nothing it started lingers
        send(signal.SIGKILL)


class XvfbSource(X11Source):
    """A private Xvfb display of ``width``x``height`` (24-bit), with an optional session command ``run``.

    ``run`` is split with :func:`shlex.split` and started with ``DISPLAY`` set to the new display, e.g.
    ``"xterm"`` or ``"openbox-session"``. ``display`` (":N") picks the display number; by default it is the
    first free one from ``first_display`` on. The display exists from :meth:`start` to :meth:`stop`; its name
    is in :attr:`display`, and the Xvfb process id in :attr:`xvfb_pid`.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        *,
        run: str | None = None,
        display: str | None = None,
        name: str | None = None,
        depth: int = 24,
        first_display: int = 90,
        startup_timeout: float = 10.0,
        inject_input: bool = True,
    ) -> None:
        if not (1 <= width <= 16384 and 1 <= height <= 16384):
            raise ValueError(f"Xvfb screen size must be between 1x1 and 16384x16384, not {width}x{height}")
        self._started_display: str | None = None
        super().__init__(display=None, name=name, inject_input=inject_input)
        if name is None:
            self.name = f"pyvnc on {socket.gethostname()}"  # completed with the display number by start()
        self.width = width
        self.height = height
        self._modes: set[str] = set()
        resizable = shutil.which("xrandr") is not None
        self._max_size = (max(width, self.MAX_WIDTH), max(height, self.MAX_HEIGHT)) if resizable else (width, height)
        self.depth = depth
        self.run = run
        self.first_display = first_display
        #: the display number asked for (None: the first free one from first_display on)
        self.requested_display: int | None = None
        if display is not None:
            number = display.strip().lstrip(":").split(".")[0]
            if not number.isdigit() or not display.strip().startswith(":"):
                raise ValueError(f'an Xvfb display must look like ":N", not {display!r}')
            self.requested_display = int(number)
        self.startup_timeout = startup_timeout
        self._xvfb: subprocess.Popen[bytes] | None = None
        self._session: subprocess.Popen[bytes] | None = None

    @property
    def display(self) -> str | None:
        """The display of the running Xvfb (``None`` while not started)."""
        return self._started_display

    @property
    def xvfb_pid(self) -> int | None:
        return self._xvfb.pid if self._xvfb is not None else None

    @property
    def session_pid(self) -> int | None:
        return self._session.pid if self._session is not None else None

    def _initial_size(self) -> tuple[int, int]:
        return (self.width, self.height)

    async def _open(self) -> None:
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise CaptureError("Xvfb is not installed (on Debian/Ubuntu: apt-get install xvfb)")
        try:
            await self._start_xvfb(xvfb)
            if self._max_size != (self.width, self.height):
                await asyncio.to_thread(self._resize_screen, self.width, self.height)
            if self.run:
                self._start_session(self.run)
            await super()._open()
        except BaseException:
            await self._close()
            raise

    async def _start_xvfb(self, xvfb: str) -> None:
        if self.requested_display is not None:
            n = self.requested_display
            if _display_in_use(n):
                raise CaptureError(f"cannot start Xvfb on :{n}: that display is in use (/tmp/.X{n}-lock exists)")
            result = await self._try_display(xvfb, n)
            if result is not None:
                raise CaptureError(f"Xvfb failed to start on :{n}: {result}")
            return
        n = self.first_display
        attempts = 0
        while True:
            while _display_in_use(n):
                n += 1
            attempts += 1
            result = await self._try_display(xvfb, n)
            if result is None:
                return
            if "already active" in result or "server already running" in result.lower() or attempts >= 20:
                if attempts >= 20:
                    raise CaptureError(f"Xvfb could not find a free display after {attempts} attempts: {result}")
                n += 1  # another X server took :n between our check and Xvfb's
                continue
            raise CaptureError(f"Xvfb failed to start on :{n}: {result}")

    async def _try_display(self, xvfb: str, n: int) -> str | None:
        """Start Xvfb on :n and wait until it is ready: None on success, else the reason it failed."""
        # Popen runs on the event loop thread on purpose: PR_SET_PDEATHSIG fires when the thread that forked
        # the child ends, and the loop thread lives as long as the server
        read_fd, write_fd = os.pipe()
        log: IO[bytes] = tempfile.TemporaryFile(prefix="pyvnc-xvfb-")  # noqa: SIM115 - closed below
        args = [
            xvfb,
            f":{n}",
            "-screen",
            "0",
            # with xrandr at hand: the largest size clients may resize to (SetDesktopSize), shrunk to the
            # geometry right away; without it, the geometry and no resizing
            f"{self._max_size[0]}x{self._max_size[1]}x{self.depth}",
            "-nolisten",
            "tcp",
            "-noreset",
            "-displayfd",
            str(write_fd),
        ]
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(write_fd,),
                preexec_fn=_death_signal_hook(),
                start_new_session=False,
            )
        except OSError as exc:
            os.close(read_fd)
            log.close()
            raise CaptureError(f"cannot start Xvfb: {exc}") from exc
        finally:
            os.close(write_fd)
        self._xvfb = proc
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[bytes] = loop.create_future()
        data = bytearray()

        def on_readable() -> None:
            try:
                chunk = os.read(read_fd, 64)
            except OSError as exc:
                chunk = b""
                logger.debug("reading Xvfb's -displayfd pipe failed: %s", exc)
            data.extend(chunk)
            if (not chunk or b"\n" in data) and not ready.done():
                ready.set_result(bytes(data))

        loop.add_reader(read_fd, on_readable)
        try:
            deadline = loop.time() + self.startup_timeout
            while not ready.done() and loop.time() < deadline:
                await asyncio.wait([ready], timeout=0.05)
                if proc.poll() is not None and not ready.done():
                    break
        finally:
            loop.remove_reader(read_fd)
            os.close(read_fd)
        answer = ready.result() if ready.done() else b""
        if answer.strip() == str(n).encode():
            log.close()
            self._started_display = f":{n}"
            logger.info("started Xvfb on :%d (%dx%d, pid %d)", n, self.width, self.height, proc.pid)
            return None
        # failed: collect the reason
        await _terminate(proc, "Xvfb")
        self._xvfb = None
        log.seek(0)
        output = log.read().decode(errors="replace").strip()
        log.close()
        if proc.returncode is not None and proc.returncode != 0 and not answer:
            lines = [ln for ln in output.splitlines() if ln.strip()]
            return " / ".join(lines[-3:]) or f"exit status {proc.returncode}"
        return f"not ready within {self.startup_timeout:g} s" + (f" ({output.splitlines()[-1]})" if output else "")

    #: the screen can grow to this size on a client's SetDesktopSize (Xvfb allocates it up front: ~33 MB)
    MAX_WIDTH = 3840
    MAX_HEIGHT = 2160

    def _resize_screen(self, width: int, height: int) -> None:
        """Set the X screen size with RandR through the ``xrandr`` tool; worker thread.

        Xvfb offers one mode (its full size), so a mode of the wanted size is created and added to its output
        first; the output then switches to it and the screen shrinks or grows to match.
        """
        display = self.display
        assert display is not None
        xrandr = shutil.which("xrandr")
        if xrandr is None:
            raise CaptureError("xrandr is not installed (apt-get install x11-xserver-utils)")
        env = dict(os.environ, DISPLAY=display)
        mode = f"{width}x{height}_pyvnc"
        if mode not in self._modes:
            for args in (
                ["--newmode", mode, "0", str(width), "0", "0", "0", str(height), "0", "0", "0"],
                ["--addmode", "screen", mode],
            ):
                subprocess.run([xrandr, *args], env=env, capture_output=True, timeout=10, check=True)
            self._modes.add(mode)
        subprocess.run(
            [xrandr, "--output", "screen", "--mode", mode, "--fb", f"{width}x{height}"],
            env=env,
            capture_output=True,
            timeout=10,
            check=True,
        )

    async def set_desktop_size(self, width: int, height: int) -> int:
        """A client asked for a new size (SetDesktopSize): resize the virtual screen.

        Returns an ExtendedDesktopSize status: 0 done, 2 out of resources (beyond the maximum the Xvfb was
        started with), 3 invalid.
        """
        max_w, max_h = self._max_size
        if not (width >= 16 and height >= 16):
            return 3
        if width > max_w or height > max_h:
            return 2
        try:
            await asyncio.to_thread(self._resize_screen, width, height)
        except Exception as exc:
            logger.warning("resizing the virtual screen to %dx%d failed: %s", width, height, exc)
            return 3
        self.screen_resized()
        logger.info("virtual screen resized to %dx%d", width, height)
        return 0

    def _start_session(self, command: str) -> None:
        args = shlex.split(command)
        if not args:
            return
        env = dict(os.environ, DISPLAY=self._started_display or "")
        try:
            # its own session, so stop() can end everything it started
            self._session = subprocess.Popen(
                args,
                env=env,
                stdin=subprocess.DEVNULL,
                preexec_fn=_death_signal_hook(),
                start_new_session=True,
            )
        except OSError as exc:
            raise CaptureError(f"cannot run {command!r} on {self._started_display}: {exc}") from exc
        logger.info("started %r on %s (pid %d)", command, self._started_display, self._session.pid)

    async def _close(self) -> None:
        await super()._close()
        session, self._session = self._session, None
        if session is not None:
            await _terminate(session, f"session command {self.run!r}", group=True)
        xvfb, self._xvfb = self._xvfb, None
        if xvfb is not None:
            await _terminate(xvfb, "Xvfb")
            logger.info("stopped Xvfb on %s", self._started_display)
        self._started_display = None
