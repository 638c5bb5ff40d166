"""Pixel-format conversion speed and full-frame Raw updates per second to a local client.

Run: .venv/bin/python benchmarks/pixel_formats.py [--repeat N] [--seconds S]
Target: converting a 1920×1080 frame takes ≤ 10 ms (median) for each format.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from pyvnc import PushSource, Server, ServerConfig  # noqa: E402
from pyvnc._malloc import tune_malloc  # noqa: E402
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat, converter_for  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "desktop.png"

FORMATS: dict[str, PixelFormat] = {
    "32bpp BGRX little-endian (native)": NATIVE,
    "32bpp BGRX big-endian": PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
    "32bpp RGBX little-endian (noVNC)": PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16),
    "32bpp 10-bit channels": PixelFormat(32, 30, False, True, 1023, 1023, 1023, 20, 10, 0),
    "16bpp RGB565 little-endian": PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    "16bpp RGB565 big-endian": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "16bpp RGB555 little-endian": PixelFormat(16, 15, False, True, 31, 31, 31, 10, 5, 0),
    "8bpp BGR233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
    "8bpp colour map (3-3-2)": PixelFormat(8, 8, False, True, 7, 7, 3, 5, 2, 0),
}


def load_frame() -> np.ndarray:
    """The desktop corpus image as a 1920×1080 BGRX frame (random pixels if the corpus is missing)."""
    frame = np.zeros((1080, 1920, 4), np.uint8)
    if CORPUS.exists():
        from PIL import Image

        rgb = np.asarray(Image.open(CORPUS).convert("RGB"))
        frame[..., :3] = rgb[..., ::-1]
    else:
        frame[..., :3] = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    return frame


def bench_conversions(frame: np.ndarray, repeat: int) -> None:
    print(f"Converting a {frame.shape[1]}x{frame.shape[0]} frame ({repeat} runs each; target <= 10 ms median)")
    print(f"  {'format':36} {'median ms':>10} {'min ms':>8}  target")
    for name, pf in FORMATS.items():
        conv = converter_for(pf)
        conv.convert(frame)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            conv.convert(frame)
            times.append((time.perf_counter() - t0) * 1000)
        med = statistics.median(times)
        print(f"  {name:36} {med:10.2f} {min(times):8.2f}  {'met' if med <= 10 else 'MISSED'}")


async def raw_updates_per_second(frame: np.ndarray, seconds: float, pf: PixelFormat | None) -> float:
    """Full-frame Raw updates a local client receives per second, asking non-incrementally each time."""
    from rfbclient import RFBClient

    h, w = frame.shape[:2]
    source = PushSource(width=w, height=h)
    source.push(np.ascontiguousarray(frame[..., 2::-1]))
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        if pf is not None:
            client.set_pixel_format(pf)
        client.set_encodings([0])
        size = w * h * (pf or NATIVE).bytes_per_pixel
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            client.request(incremental=False)
            # read the update's bytes without decoding them: we measure the server, not our test client
            head = await client.read(4)
            assert head[0] == 0
            hdr = await client.read(12)
            assert int.from_bytes(hdr[8:12], "big", signed=True) == 0
            await client.reader.readexactly(size)
            n += 1
        elapsed = time.perf_counter() - t0
        await client.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    tune_malloc()  # as Server.start() does
    frame = load_frame()
    bench_conversions(frame, args.repeat)
    print(f"\nFull-frame Raw updates per second to a local client over TCP ({args.seconds:g} s each)")
    for label, pf in (
        ("native 32bpp", None),
        ("16bpp RGB565", FORMATS["16bpp RGB565 little-endian"]),
        ("8bpp BGR233", FORMATS["8bpp BGR233"]),
    ):
        rate = asyncio.run(raw_updates_per_second(frame, args.seconds, pf))
        mbytes = rate * frame.shape[0] * frame.shape[1] * (pf or NATIVE).bytes_per_pixel / 1e6
        print(f"  {label:14} {rate:7.1f} updates/s  ({mbytes:.0f} MB/s)")


if __name__ == "__main__":
    main()
