"""Input-to-pixels delay and frame rate over a slow link, with and without continuous updates.

Run: .venv/bin/python benchmarks/latency.py [--seconds 60] [--rtt-ms 50] [--mbit 10] [--fps 30] [--mode both]

- A 1280×720 ``PushSource`` scene changes all the time (a photo-like band moving sideways, pushed at ``--fps``)
  and paints a marker in a new colour whenever a key arrives.
- A throttling proxy (a separate process, loopback only) sits between Chromium and the server's web port: it
  adds half the round trip of delay in each direction and limits each direction to ``--mbit`` with a token
  bucket shared by all connections, keeping byte order. Every chunk read is stamped with the time it may leave
  the bottleneck and the time it arrives, so the delay does not depend on how often the proxy wakes up.
- Our noVNC page in Debian's Chromium connects through the proxy. Repeatedly, with random gaps, the page sends
  a key (noVNC's ``sendKey``) and times until a finished update (noVNC's display ``flip``) shows the marker in
  its new colour. The page also counts finished updates (frames/s); the proxy counts bytes and how long its
  bottleneck queue is.
- Two modes: with continuous updates (what noVNC does with our server: it turns them on when the server sends
  EndOfContinuousUpdates) and without (the server is patched in this process so it never announces them, so
  noVNC asks for each update after the previous one arrived — one update per round trip at most).

Target (from the issue): median delay ≤ 2 × round trip + encode time, and not growing over the run. Encode
time is the median duration of the session's ``EncoderSelector.encode`` calls, timed in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pyvnc import PushSource, Server, ServerConfig  # noqa: E402
from pyvnc.encoders.base import EncodeJob  # noqa: E402
from pyvnc.encoders.select import EncoderSelector  # noqa: E402
from pyvnc.protocol.connection import RFBServerProtocol  # noqa: E402
from pyvnc.protocol.constants import Encoding  # noqa: E402

W, H = 1280, 720
BAND_Y, BAND_H = 240, 240  # the moving photo-like band
MARK = (20, 20, 60, 60)  # x, y, w, h of the key marker
WINDOW = 10.0  # seconds per reporting window
KEY_TIMEOUT_MS = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the throttling proxy (runs in its own process) -----------------------------------------------------------


class Link:
    """One direction of the emulated link: a token bucket (rate, burst) then a fixed one-way delay.

    Shared by every connection, like a real bottleneck. ``schedule`` is called in arrival order, so the times it
    returns never go backwards and order is kept.
    """

    def __init__(self, rate: float, burst: int, delay: float) -> None:
        self.rate = rate
        self.burst = burst
        self.delay = delay
        self.tokens = float(burst)
        self.t_tokens = 0.0
        #: when the bottleneck has sent everything queued so far
        self.free_at = 0.0
        self.bytes = 0

    def schedule(self, n: int, now: float) -> float:
        """``n`` bytes arrived at ``now``: returns when they come out at the far end."""
        start = max(now, self.free_at)
        self.tokens = min(float(self.burst), self.tokens + (start - self.t_tokens) * self.rate)
        self.t_tokens = start
        if self.tokens >= n:
            self.tokens -= n
            leave = start
        else:
            leave = start + (n - self.tokens) / self.rate
            self.tokens = 0.0
            self.t_tokens = leave
        self.free_at = leave
        self.bytes += n
        return leave + self.delay

    def backlog(self, now: float) -> float:
        """Seconds of data waiting in front of the bottleneck."""
        return max(0.0, self.free_at - now)


class Pipe:
    """Bytes from ``reader`` to ``writer`` through ``link``; at most ``limit`` bytes held (then reading pauses)."""

    PIECE = 8192  # large reads are scheduled in pieces of this size, so a big read trickles out at the link rate

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, limit: int) -> None:
        self.reader = reader
        self.writer = writer
        self.link = link
        self.limit = limit
        self.queue: deque[tuple[float, bytes]] = deque()
        self.held = 0
        self.more = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.eof = False

    async def pump_in(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self.held >= self.limit:
                    self.room.clear()
                    await self.room.wait()
                data = await self.reader.read(65536)
                if not data:
                    break
                now = loop.time()
                for i in range(0, len(data), self.PIECE):
                    piece = data[i : i + self.PIECE]
                    self.queue.append((self.link.schedule(len(piece), now), piece))
                    self.held += len(piece)
                self.more.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.eof = True
            self.more.set()

    async def pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.queue:
                    if self.eof:
                        break
                    self.more.clear()
                    await self.more.wait()
                    continue
                due = self.queue[0][0]
                now = loop.time()
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                out = []
                while self.queue and self.queue[0][0] <= now:
                    out.append(self.queue.popleft()[1])
                n = sum(len(b) for b in out)
                self.held -= n
                if self.held < self.limit:
                    self.room.set()
                self.writer.write(b"".join(out))
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                self.writer.close()


async def proxy_main(upstream: int, rtt: float, rate: float, burst: int, limit: int) -> None:
    """Listen on a free loopback port, print it, then forward to ``upstream``; print statistics every 0.25 s."""
    down = Link(rate, burst, rtt / 2)  # server -> browser
    up = Link(rate, burst, rtt / 2)  # browser -> server
    tasks: set[asyncio.Task[None]] = set()

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            c_writer.close()
            return
        for sock in (c_writer.get_extra_info("socket"), s_writer.get_extra_info("socket")):
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipes = (Pipe(c_reader, s_writer, up, limit), Pipe(s_reader, c_writer, down, limit))
        jobs = [asyncio.create_task(j) for p in pipes for j in (p.pump_in(), p.pump_out())]
        tasks.update(jobs)
        await asyncio.gather(*jobs, return_exceptions=True)
        tasks.difference_update(jobs)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    loop = asyncio.get_running_loop()
    async with server:
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            print(f"stats {down.bytes} {up.bytes} {down.backlog(now) * 1000:.1f}", flush=True)


# --- the scene and the in-process instrumentation --------------------------------------------------------------


def photo_texture(height: int, width: int, seed: int = 5) -> np.ndarray:
    """Smooth, photo-like RGB content: soft colour gradients with blurred detail (not noise)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        for _ in range(6):
            fx, fy, ph = rng.uniform(1, 14), rng.uniform(0.5, 4), rng.uniform(0, 2 * np.pi)
            img[..., c] += np.sin(2 * np.pi * (fx * x + fy * y) + ph) * rng.uniform(10, 30)
    detail = rng.normal(0, 40, (height, width, 3)).astype(np.float32)
    for axis in (0, 1, 0, 1):  # box blurs approximate a Gaussian
        k = 5
        pad = [(k, k) if a == axis else (0, 0) for a in range(3)]
        csum = np.cumsum(np.pad(detail, pad, mode="edge"), axis=axis)
        hi = np.take(csum, np.arange(2 * k, csum.shape[axis]), axis=axis)
        lo = np.take(csum, np.arange(0, csum.shape[axis] - 2 * k), axis=axis)
        detail = ((hi - lo) / (2 * k)).astype(np.float32)
    img += 128 + detail * 2
    return np.clip(img, 0, 255).astype(np.uint8)


class Scene:
    """A 1280×720 scene whose band moves every tick; a key paints the marker in the other colour."""

    def __init__(self, source: PushSource) -> None:
        self.source = source
        self.texture = photo_texture(BAND_H, W * 2)
        self.frame = np.full((H, W, 3), 200, np.uint8)
        self.frame[BAND_Y + BAND_H :, :, 1] = 160
        self.tick = 0
        self.marker_colour = 0
        self.key_times: list[float] = []  # time.perf_counter() when each key press reached the scene
        self.paint_mark()
        source.push(self.frame)

    def paint_mark(self) -> None:
        x, y, w, h = MARK
        self.frame[y : y + h, x : x + w] = (255, 0, 0) if self.marker_colour else (0, 0, 255)

    def step(self) -> None:
        self.tick += 1
        off = (self.tick * 6) % W
        self.frame[BAND_Y : BAND_Y + BAND_H] = self.texture[:, off : off + W]
        self.source.push(self.frame, rects=[(0, BAND_Y, W, BAND_H)])

    def on_key(self, keysym: int, down: bool) -> None:
        if not down:
            return
        self.key_times.append(time.perf_counter())
        self.marker_colour ^= 1
        self.paint_mark()
        self.source.push(self.frame, rects=[MARK])

    def expected(self) -> list[int]:
        """[red, blue] of the marker after the next key press."""
        return [255, 0] if self.marker_colour == 0 else [0, 255]


class EncodeTimer:
    """Times every ``EncoderSelector.encode`` call (they run in worker threads) while installed."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (perf_counter at end, seconds)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original = EncoderSelector.encode
        timer = self

        def timed(selector: EncoderSelector, job: EncodeJob) -> tuple[int, list[bytes]]:
            t0 = time.perf_counter()
            result = original(selector, job)
            t1 = time.perf_counter()
            with timer._lock:
                timer.samples.append((t1, t1 - t0))
            return result

        EncoderSelector.encode = timed  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            EncoderSelector.encode = original  # type: ignore[method-assign]

    def between(self, t0: float, t1: float) -> list[float]:
        with self._lock:
            return [d for t, d in self.samples if t0 <= t <= t1]


@contextlib.contextmanager
def without_continuous_updates() -> Iterator[None]:
    """Patch the protocol class (this process only) so it never sends EndOfContinuousUpdates.

    noVNC turns continuous updates on only when the server announces them that way; without the announcement it
    sends an incremental FramebufferUpdateRequest after each update, as a client of a server without the
    extension would. Marking the extension as already announced skips the message and nothing else.
    """
    original = RFBServerProtocol._announce_extensions

    def patched(self: RFBServerProtocol) -> None:
        self._announced.add(Encoding.CONTINUOUS_UPDATES)
        original(self)

    RFBServerProtocol._announce_extensions = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        RFBServerProtocol._announce_extensions = original  # type: ignore[method-assign]


# --- the page side ---------------------------------------------------------------------------------------------

HOOK = """
() => {
  const rfb = window.pyvnc.rfb;
  const display = rfb._display;
  window.bench = { flips: [], waiters: [], continuous: () => rfb._enabledContinuousUpdates };
  const flip = display.flip.bind(display);
  display.flip = (fromQueue) => {
    flip(fromQueue);
    // noVNC flips once per finished update, and again from its render queue when images decode late
    if (!fromQueue) window.bench.flips.push(performance.now());
    if (window.bench.waiters.length) {
      const ctx = display._target.getContext("2d");
      const px = ctx.getImageData(MARK_X, MARK_Y, 1, 1).data;
      const now = performance.now();
      window.bench.waiters = window.bench.waiters.filter((w) => {
        if (px[0] === w.r && px[2] === w.b) { w.resolve([w.t0, now - w.t0]); return false; }
        return true;
      });
    }
  };
}
""".replace("MARK_X", str(MARK[0] + 5)).replace("MARK_Y", str(MARK[1] + 5))

KEY = """
([r, b, timeout]) => new Promise((resolve) => {
  const t0 = performance.now();
  const w = { r, b, t0, resolve };
  window.bench.waiters.push(w);
  setTimeout(() => {
    if (window.bench.waiters.includes(w)) {
      window.bench.waiters = window.bench.waiters.filter((x) => x !== w);
      resolve([t0, null]);
    }
  }, timeout);
  window.pyvnc.rfb.sendKey(0x61, "KeyA");
})
"""


# --- one measured run ------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    encoding: str = "?"
    continuous_seen: bool = False
    duration: float = 0.0
    delays: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, ms)
    lost: int = 0
    flips: list[float] = field(default_factory=list)  # seconds into the run
    stats: list[tuple[float, int, int, float]] = field(default_factory=list)  # (s, down, up, backlog ms)
    encode_ms: list[float] = field(default_factory=list)
    updates_sent: int = 0
    bytes_sent: int = 0
    server_key_ms: list[float] = field(default_factory=list)  # page key -> server (approximate)


async def read_proxy_stats(proc: asyncio.subprocess.Process, sink: list[tuple[float, int, int, float]]) -> None:
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    while line := await proc.stdout.readline():
        parts = line.decode().split()
        if parts and parts[0] == "stats":
            sink.append((loop.time(), int(parts[1]), int(parts[2]), float(parts[3])))


async def measure(browser: Any, args: argparse.Namespace, continuous: bool, timer: EncodeTimer) -> Result:
    label = "with continuous updates" if continuous else "without continuous updates"
    result = Result(label)
    source = PushSource(width=W, height=H)
    scene = Scene(source)
    source.on_key = scene.on_key
    web = free_port()
    patch = contextlib.nullcontext() if continuous else without_continuous_updates()
    with patch:
        async with Server(ServerConfig(port=0, web_port=web, max_fps=args.max_fps), source=source) as server:
            stop = asyncio.Event()

            async def animate() -> None:
                loop = asyncio.get_running_loop()
                due = loop.time()
                while not stop.is_set():
                    scene.step()
                    due += 1 / args.fps
                    await asyncio.sleep(max(0.0, due - loop.time()))

            anim = asyncio.create_task(animate())
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--proxy-for",
                str(web),
                "--rtt-ms",
                str(args.rtt_ms),
                "--mbit",
                str(args.mbit),
                "--burst",
                str(args.burst),
                "--queue-limit",
                str(args.queue_limit),
                stdout=asyncio.subprocess.PIPE,
            )
            raw_stats: list[tuple[float, int, int, float]] = []
            stats_task: asyncio.Task[None] | None = None
            page = None
            try:
                assert proc.stdout is not None
                first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().split()
                proxy_port = int(first[1])
                stats_task = asyncio.create_task(read_proxy_stats(proc, raw_stats))
                page = await browser.new_page(viewport={"width": 1300, "height": 800})
                await page.goto(f"http://127.0.0.1:{proxy_port}/")
                await page.wait_for_function(
                    "document.getElementById('status').textContent.includes('Connected')", timeout=30_000
                )
                await page.evaluate(HOOK)
                await asyncio.sleep(args.warmup)
                result.continuous_seen = bool(await page.evaluate("window.bench.continuous()"))
                session = server.sessions[0]
                result.encoding = Encoding(session.encoders.encoding_for(session.protocol.pixel_format)).name
                loop = asyncio.get_running_loop()
                rng = random.Random(args.seed)
                page_t0 = float(await page.evaluate("performance.now()"))
                t0, pc0 = loop.time(), time.perf_counter()
                sent0, bytes0 = session.updates_sent, session.bytes_sent
                keys0 = len(scene.key_times)
                end = t0 + args.seconds
                while loop.time() < end:
                    key_sent = time.perf_counter()
                    t_key, delay = await page.evaluate(KEY, [*scene.expected(), KEY_TIMEOUT_MS])
                    at = (float(t_key) - page_t0) / 1000
                    if delay is None:
                        result.lost += 1
                    else:
                        result.delays.append((at, float(delay)))
                    if len(scene.key_times) > keys0:
                        # includes the playwright call's own hop into the page (well under a millisecond)
                        result.server_key_ms.append((scene.key_times[-1] - key_sent) * 1000)
                        keys0 = len(scene.key_times)
                    gap = rng.uniform(args.gap_min, args.gap_max)
                    await asyncio.sleep(max(0.0, min(gap, end - loop.time())))
                t1, pc1 = loop.time(), time.perf_counter()
                result.duration = t1 - t0
                result.updates_sent = session.updates_sent - sent0
                result.bytes_sent = session.bytes_sent - bytes0
                flips = await page.evaluate("window.bench.flips")
                result.flips = [(f - page_t0) / 1000 for f in flips if f >= page_t0]
                result.flips = [f for f in result.flips if f <= result.duration]
                result.encode_ms = [d * 1000 for d in timer.between(pc0, pc1)]
                result.stats = [(t - t0, d, u, b) for t, d, u, b in raw_stats if t0 - 0.3 <= t <= t1 + 0.3]
            finally:
                if page is not None:
                    with contextlib.suppress(Exception):
                        await page.close()
                if proc.returncode is None:
                    proc.terminate()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 5)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                if stats_task is not None:
                    stats_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await stats_task
                stop.set()
                await anim
    return result


# --- reporting -------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def rate_between(stats: list[tuple[float, int, int, float]], a: float, b: float, col: int) -> float | None:
    """Mbit/s of column ``col`` (1 down, 2 up) between seconds ``a`` and ``b``, from the proxy's counters."""
    inside = [s for s in stats if a - 0.13 <= s[0] <= b + 0.13]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][col] - inside[0][col]) * 8 / (inside[-1][0] - inside[0][0]) / 1e6


def report(r: Result, args: argparse.Namespace) -> dict[str, Any]:
    rtt = args.rtt_ms
    print(f"\n== {r.label} ==")
    delays = [d for _, d in r.delays]
    enc = statistics.median(r.encode_ms) if r.encode_ms else 0.0
    fps = len(r.flips) / r.duration if r.duration else 0.0
    down = rate_between(r.stats, 0, r.duration, 1) or 0.0
    up = rate_between(r.stats, 0, r.duration, 2) or 0.0
    backlog = [s[3] for s in r.stats]
    print(
        f"  noVNC continuous updates on: {'yes' if r.continuous_seen else 'no'}; encoding {r.encoding}; "
        f"{r.duration:.0f} s measured"
    )
    out: dict[str, Any] = {"label": r.label, "fps": fps, "down": down, "enc": enc}
    if not delays:
        print(f"  no key sample arrived ({r.lost} lost)")
        return out
    med = statistics.median(delays)
    p90 = pct(delays, 0.9)
    print(
        f"  key -> marker pixels: median {med:.0f} ms, p90 {p90:.0f} ms, min {min(delays):.0f} ms, "
        f"max {max(delays):.0f} ms ({len(delays)} samples, {r.lost} lost after {KEY_TIMEOUT_MS / 1000:g} s)"
    )
    if r.server_key_ms:
        print(
            f"  key reaching the server (page -> proxy -> server): median {statistics.median(r.server_key_ms):.0f} ms"
        )
    print(
        f"  frames/s in noVNC: {fps:.1f}; server updates/s {r.updates_sent / r.duration:.1f}, "
        f"mean update {r.bytes_sent / max(1, r.updates_sent) / 1024:.0f} KiB"
    )
    print(f"  through the proxy: {down:.2f} Mbit/s down, {up:.3f} Mbit/s up (link {args.mbit:g} Mbit/s each way)")
    if backlog:
        print(
            f"  bottleneck queue (server -> browser): mean {statistics.mean(backlog):.0f} ms, "
            f"max {max(backlog):.0f} ms of data"
        )
    print(
        f"  encode time: median {enc:.1f} ms, p90 {pct(r.encode_ms, 0.9) if r.encode_ms else 0:.1f} ms "
        f"({len(r.encode_ms)} encodes)"
    )
    print("  per 10 s window   delay median    p90    n   frames/s   Mbit/s down   queue max")
    windows: list[float] = []
    start = 0.0
    while start < r.duration - 1:
        stop = min(start + WINDOW, r.duration)
        wd = [d for t, d in r.delays if start <= t < stop]
        wf = [f for f in r.flips if start <= f < stop]
        wr = rate_between(r.stats, start, stop, 1)
        wb = [s[3] for s in r.stats if start <= s[0] < stop]
        wmed = statistics.median(wd) if wd else float("nan")
        if wd:
            windows.append(wmed)
        print(
            f"    {start:3.0f}-{stop:3.0f} s     {wmed:9.0f} ms {pct(wd, 0.9) if wd else float('nan'):6.0f} "
            f"{len(wd):4d}   {len(wf) / (stop - start):8.1f}   {wr if wr is not None else float('nan'):11.2f}"
            f"   {max(wb) if wb else float('nan'):6.0f} ms"
        )
        start = stop
    target = 2 * rtt + enc
    ok_median = med <= target
    # growth: the last third of the samples against the first third, and the least-squares slope
    n3 = max(1, len(r.delays) // 3)
    first = statistics.median([d for _, d in r.delays[:n3]])
    last = statistics.median([d for _, d in r.delays[-n3:]])
    ts = [t for t, _ in r.delays]
    slope = 0.0
    if len(ts) > 2 and max(ts) > min(ts):
        slope = float(np.polyfit(ts, delays, 1)[0]) * 60  # ms per minute
    ok_growth = last <= first * 1.25 + 5
    print(
        f"  target median <= 2 x RTT + encode = 2 x {rtt:g} + {enc:.1f} = {target:.1f} ms: "
        f"{'MET' if ok_median else 'NOT MET'} (median {med:.1f} ms)"
    )
    print(
        f"  growth: median of first third {first:.0f} ms, last third {last:.0f} ms, slope {slope:+.1f} ms/min: "
        f"{'not growing' if ok_growth else 'GROWING'} (rule: last <= 1.25 x first + 5 ms)"
    )
    out.update(med=med, p90=p90, target=target, ok=ok_median and ok_growth, growth=ok_growth, n=len(delays))
    return out


async def run(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    modes = {"both": [True, False], "cu": [True], "nocu": [False]}[args.mode]
    print(
        f"{W}x{H} scene, a {W}x{BAND_H} photo-like band moving at {args.fps:g} Hz; noVNC in Chromium through a "
        f"loopback proxy: {args.rtt_ms:g} ms round trip, {args.mbit:g} Mbit/s each way; {args.seconds:g} s per mode"
    )
    if False in modes:
        print(
            "'without continuous updates': RFBServerProtocol._announce_extensions is patched in this process so the "
            "server never sends EndOfContinuousUpdates; noVNC then requests each update itself."
        )
    timer = EncodeTimer()
    results = []
    with timer.installed():
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            try:
                for continuous in modes:
                    results.append(await measure(browser, args, continuous, timer))
            finally:
                await browser.close()
    summary = [report(r, args) for r in results]
    print(f"\nsummary ({args.rtt_ms:g} ms RTT, {args.mbit:g} Mbit/s, scene {args.fps:g} Hz)")
    print("  mode                         median    p90   target   frames/s   Mbit/s   encode")
    for s in summary:
        if "med" in s:
            print(
                f"  {s['label']:<28} {s['med']:6.0f} {s['p90']:6.0f} {s['target']:6.0f} ms {s['fps']:9.1f} "
                f"{s['down']:8.2f} {s['enc']:6.1f} ms  {'MET' if s['ok'] else 'NOT MET'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds per mode (default 60)")
    parser.add_argument("--rtt-ms", type=float, default=50, help="round trip the proxy adds (default 50)")
    parser.add_argument("--mbit", type=float, default=10, help="link rate each way, Mbit/s (default 10)")
    parser.add_argument("--burst", type=int, default=16384, help="token bucket size in bytes (default 16384)")
    parser.add_argument(
        "--queue-limit", type=int, default=4 << 20, help="bytes the proxy holds per direction and connection"
    )
    parser.add_argument("--fps", type=float, default=30, help="scene changes per second (default 30)")
    parser.add_argument("--max-fps", type=float, default=60, help="the server's max_fps (default 60)")
    parser.add_argument("--mode", choices=["both", "cu", "nocu"], default="both")
    parser.add_argument("--warmup", type=float, default=3, help="seconds after connecting before measuring")
    parser.add_argument("--gap-min", type=float, default=0.15, help="shortest pause between key presses (s)")
    parser.add_argument("--gap-max", type=float, default=0.6, help="longest pause between key presses (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--proxy-for", type=int, help=argparse.SUPPRESS)  # internal: run as the proxy process
    args = parser.parse_args()
    if args.proxy_for:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                proxy_main(args.proxy_for, args.rtt_ms / 1000, args.mbit * 1e6 / 8, args.burst, args.queue_limit)
            )
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
