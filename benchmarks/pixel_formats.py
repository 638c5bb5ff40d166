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
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# this checkout's src/ first, so the code measured is the code beside this script even when another copy of
# pyvnc is installed (and pyvnc imports when none is)
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the test client (rfbclient) for the Raw updates section

from pyvnc import PushSource, Server, ServerConfig  # noqa: E402
from pyvnc._malloc import tune_malloc  # noqa: E402
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat, converter_for  # noqa: E402

#: the desktop screenshot of the shared corpus (beside the checkout, or at its usual place)
CORPUS_CANDIDATES = (ROOT.parent / "shared" / "corpus" / "desktop.png", Path("/work/shared/corpus/desktop.png"))

FORMATS: dict[str, PixelFormat] = {
    "32bpp BGRX little-endian (native)": NATIVE,
    "32bpp BGRX big-endian": PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
    "32bpp RGBX little-endian (noVNC)": PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16),
    "32bpp RGBX big-endian": PixelFormat(32, 24, True, True, 255, 255, 255, 0, 8, 16),
    "32bpp GBR permuted bytes": PixelFormat(32, 24, False, True, 255, 255, 255, 0, 16, 8),
    "32bpp 10-bit channels": PixelFormat(32, 30, False, True, 1023, 1023, 1023, 20, 10, 0),
    "16bpp RGB565 little-endian": PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    "16bpp RGB565 big-endian": PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    "16bpp RGB555 little-endian": PixelFormat(16, 15, False, True, 31, 31, 31, 10, 5, 0),
    "8bpp BGR233": PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
    "8bpp colour map (3-3-2)": PixelFormat(8, 8, False, True, 7, 7, 3, 5, 2, 0),
}

#: conversion target per 1920×1080 frame, median
TARGET_MS = 10.0


def load_frame(width: int = 1920, height: int = 1080) -> np.ndarray:
    """The desktop corpus image as a ``width`` × ``height`` BGRX frame (random pixels if the corpus is missing).

    A corpus image of another size is cropped or tiled to fit.
    """
    frame = np.zeros((height, width, 4), np.uint8)
    corpus = next((p for p in CORPUS_CANDIDATES if p.exists()), None)
    if corpus is not None:
        from PIL import Image

        rgb = np.asarray(Image.open(corpus).convert("RGB"))
        reps = (-(-height // rgb.shape[0]), -(-width // rgb.shape[1]), 1)
        frame[..., :3] = np.tile(rgb, reps)[:height, :width, ::-1]
        print(f"Frame: {corpus} ({rgb.shape[1]}x{rgb.shape[0]})")
    else:
        frame[..., :3] = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
        print("Frame: random pixels (no corpus image found)")
    return frame


def time_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock milliseconds of ``repeat`` calls of ``fn``, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def bench_conversions(frame: np.ndarray, repeat: int) -> None:
    """Convert the whole frame, and a non-contiguous view of almost all of it, into each format."""
    h, w = frame.shape[:2]
    padded = np.zeros((h + 16, w + 16, 4), np.uint8)
    padded[8 : 8 + h, 8 : 8 + w] = frame
    view = padded[8 : 8 + h, 8 : 8 + w]  # the same pixels as a strided view, as encoders pass rectangles
    print(f"Converting a {w}x{h} frame ({repeat} runs each; target <= {TARGET_MS:g} ms median)")
    print(f"  {'format':36} {'median ms':>10} {'min ms':>8} {'view med':>9}  target")
    for name, pf in FORMATS.items():
        conv = converter_for(pf)
        times = time_ms(lambda conv=conv: conv.convert(frame), repeat)
        view_times = time_ms(lambda conv=conv: conv.convert(view), repeat)
        med, view_med = statistics.median(times), statistics.median(view_times)
        met = "met" if max(med, view_med) <= TARGET_MS else "MISSED"
        print(f"  {name:36} {med:10.2f} {min(times):8.2f} {view_med:9.2f}  {met}")


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


def bench_raw_updates(frame: np.ndarray, seconds: float) -> None:
    """Section: full-frame Raw updates per second to a local client, in three pixel formats."""
    print(f"\nFull-frame Raw updates per second to a local client over TCP ({seconds:g} s each)")
    for label, pf in (
        ("native 32bpp", None),
        ("16bpp RGB565", FORMATS["16bpp RGB565 little-endian"]),
        ("8bpp BGR233", FORMATS["8bpp BGR233"]),
    ):
        rate = asyncio.run(raw_updates_per_second(frame, seconds, pf))
        mbytes = rate * frame.shape[0] * frame.shape[1] * (pf or NATIVE).bytes_per_pixel / 1e6
        print(f"  {label:14} {rate:7.1f} updates/s  ({mbytes:.0f} MB/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30, help="conversions timed per format")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each Raw updates run")
    parser.add_argument("--no-raw", action="store_true", help="skip the Raw updates section")
    args = parser.parse_args()
    tune_malloc()  # as Server.start() does
    frame = load_frame()
    bench_conversions(frame, args.repeat)
    if not args.no_raw:
        bench_raw_updates(frame, args.seconds)


if __name__ == "__main__":
    main()
