"""Browser figures: frames per second reaching noVNC, and key-press-to-pixels delay, in Debian's Chromium.

Run: .venv/bin/python benchmarks/browser.py [--seconds S] [--samples N]

1. A continuously changing 1280×720 scene (a moving photo-like band and a counter, pushed at 60 Hz) is served to
   our page; the page counts the framebuffer updates noVNC finishes (its display's ``flip``) per second.
2. The page sends a key through noVNC; the server paints a marker in a new colour when it sees the key; the
   page times from sending the key until a finished update shows the marker's new colour. Medians over many
   samples.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pyvnc import PushSource, Server, ServerConfig  # noqa: E402

W, H = 1280, 720
MARK = (20, 20, 60, 60)  # x, y, w, h of the key marker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scene:
    """A 1280×720 scene that changes every tick and paints a marker when a key arrives."""

    def __init__(self, source: PushSource) -> None:
        self.source = source
        rng = np.random.default_rng(3)
        self.texture = rng.integers(0, 256, (200, W * 2, 3), dtype=np.uint8)
        # smooth it a little so it looks like a photo rather than noise
        self.texture = ((self.texture[:, :-1].astype(np.uint16) + self.texture[:, 1:]) // 2).astype(np.uint8)
        self.frame = np.full((H, W, 3), 200, np.uint8)
        self.tick = 0
        self.marker_colour = 0

    def step(self) -> None:
        self.tick += 1
        off = (self.tick * 7) % W
        frame = self.frame.copy()
        frame[300:500] = self.texture[:, off : off + W]
        self.frame = frame
        self.source.push(frame, rects=[(0, 300, W, 200)])

    def on_key(self, keysym: int, down: bool) -> None:
        if not down:
            return
        self.marker_colour = (self.marker_colour + 1) % 2
        frame = self.frame.copy()
        x, y, w, h = MARK
        frame[y : y + h, x : x + w] = (255, 0, 0) if self.marker_colour else (0, 0, 255)
        self.frame = frame
        self.source.push(frame, rects=[MARK])


HOOK = """
() => {
  const rfb = window.pyvnc.rfb;
  const display = rfb._display;
  window.bench = { flips: 0, waiters: [] };
  const flip = display.flip.bind(display);
  display.flip = (fromQueue) => {
    flip(fromQueue);
    // noVNC calls flip once per finished update, and again from its render queue when images decode late
    if (!fromQueue) window.bench.flips += 1;
    if (window.bench.waiters.length) {
      const ctx = display._target.getContext("2d");
      const px = ctx.getImageData(MARK_X, MARK_Y, 1, 1).data;
      window.bench.waiters = window.bench.waiters.filter((w) => {
        if (px[0] === w.r && px[2] === w.b) { w.resolve(performance.now() - w.t0); return false; }
        return true;
      });
    }
  };
}
""".replace("MARK_X", str(MARK[0] + 5)).replace("MARK_Y", str(MARK[1] + 5))

KEY = """
([r, b]) => new Promise((resolve) => {
  const t0 = performance.now();
  window.bench.waiters.push({ r, b, t0, resolve });
  window.pyvnc.rfb.sendKey(0x61, "KeyA");
})
"""


async def run(seconds: float, samples: int) -> None:
    from playwright.async_api import async_playwright

    source = PushSource(width=W, height=H)
    scene = Scene(source)
    source.on_key = scene.on_key  # type: ignore[assignment]
    scene.step()
    web = free_port()
    async with Server(ServerConfig(port=0, web_port=web, max_fps=60), source=source) as server:
        stop = asyncio.Event()

        async def animate() -> None:
            while not stop.is_set():
                scene.step()
                await asyncio.sleep(1 / 60)

        anim = asyncio.create_task(animate())
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            page = await browser.new_page(viewport={"width": 1300, "height": 800})
            await page.goto(f"http://127.0.0.1:{web}/")
            await page.wait_for_function("document.getElementById('status').textContent.includes('Connected')")
            await page.evaluate(HOOK)
            await asyncio.sleep(1)
            # 1. frames per second
            rates = []
            for _ in range(max(1, int(seconds))):
                f0 = await page.evaluate("window.bench.flips")
                t0 = time.perf_counter()
                await asyncio.sleep(1)
                f1 = await page.evaluate("window.bench.flips")
                rates.append((f1 - f0) / (time.perf_counter() - t0))
            session = server.sessions[0]
            encoding = session.encoders.encoding_for(session.protocol.pixel_format)
            print(f"1280x720 scene changing at 60 Hz, served to noVNC in Chromium (encoding {encoding}):")
            print(
                f"  frames/s reaching noVNC: median {statistics.median(rates):.1f}, "
                f"min {min(rates):.1f}, max {max(rates):.1f} over {len(rates)} one-second windows"
            )
            # 2. key press to pixels
            delays = []
            for i in range(samples):
                colour = [255, 0] if scene.marker_colour == 0 else [0, 255]
                delays.append(await page.evaluate(KEY, colour))
                await asyncio.sleep(0.05 + (i % 5) * 0.01)
            delays.sort()
            print(
                f"  key press in the page -> marker pixels drawn: median {statistics.median(delays):.1f} ms, "
                f"p90 {delays[int(len(delays) * 0.9)]:.1f} ms, min {delays[0]:.1f} ms ({len(delays)} samples)"
            )
            await browser.close()
        stop.set()
        await anim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.samples))


if __name__ == "__main__":
    main()
