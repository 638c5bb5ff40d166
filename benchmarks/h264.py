"""Open H.264 benchmark: what a session's video stream costs per update, on the screen-content corpus.

    .venv/bin/python benchmarks/h264.py [--runs N] [--images a,b] [--levels Q:C,Q:C]

For each corpus image (1920×1080) and each quality:compression level pair (default 6:2, noVNC's default
quality at the fastest preset; 9:2; 6:9) it prints medians of wall and CPU ms (all threads of the process) and
bytes for the frames a session sends:

- ``key``: the first frame of a stream (an IDR frame: every update after a size or level change too);
- ``still``: the same screen again, converted whole (a non-incremental request on a still screen);
- ``text``: a 300×40 area changed, as typing or a blinking cursor does (only it is converted);
- ``scroll``: the whole screen moved up by 40 rows, as a scrolling page does;

and the PSNR of the picture after the last frame of each kind, decoded by libavcodec and converted here
(``tests/h264view.py``, BT.601 as the stream says).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from encoders import IMAGES, NOVNC_PF, load_frame
from h264view import H264View, psnr

from pyvnc._malloc import tune_malloc
from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.h264 import H264Encoder, available, preset_for
from pyvnc.region import Rect


def timed(
    enc: H264Encoder, frame: np.ndarray, quality: int, compress: int, rects: tuple[Rect, ...] = ()
) -> tuple[float, float, bytes]:
    """Encode ``frame`` whose ``rects`` changed (default: all of it)."""
    rects = rects or (Rect(0, 0, frame.shape[1], frame.shape[0]),)
    job = EncodeJob(frame, rects, NOVNC_PF, quality, compress)
    t, c = time.perf_counter(), time.process_time()
    out = enc.encode(job)
    return (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3, out[0]


def rgb(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame[..., 2::-1])


def measure(name: str, quality: int, compress: int, runs: int) -> list[str]:
    base = load_frame(name)
    h, w = base.shape[:2]
    rows: list[str] = []
    kinds: dict[str, list[tuple[float, float, int]]] = {"key": [], "still": [], "text": [], "scroll": []}
    last: dict[str, float] = {}
    for r in range(runs):
        enc = H264Encoder()
        view = H264View(np.zeros((h, w, 3), np.uint8))
        ms, cpu, data = timed(enc, base, quality, compress)
        view.feed(data)
        kinds["key"].append((ms, cpu, len(data)))
        last["key"] = psnr(view.fb, rgb(base))
        for _ in range(3):
            ms, cpu, data = timed(enc, base, quality, compress)
            view.feed(data)
            kinds["still"].append((ms, cpu, len(data)))
        last["still"] = psnr(view.fb, rgb(base))
        frame = base.copy()
        for i in range(6):
            y = 100 + 45 * i
            frame[y : y + 40, 200:500] = 255 - frame[y : y + 40, 200:500]
            ms, cpu, data = timed(enc, frame, quality, compress, (Rect(200, y, 300, 40),))
            view.feed(data)
            kinds["text"].append((ms, cpu, len(data)))
        last["text"] = psnr(view.fb, rgb(frame))
        for i in range(4):
            frame = np.ascontiguousarray(np.roll(base, -40 * (i + 1), axis=0))
            ms, cpu, data = timed(enc, frame, quality, compress)
            view.feed(data)
            kinds["scroll"].append((ms, cpu, len(data)))
        last["scroll"] = psnr(view.fb, rgb(frame))
        del r
    for kind, values in kinds.items():
        ms = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        size = statistics.median(v[2] for v in values)
        rows.append(
            f"{name:9} {quality}:{compress} {preset_for(compress):9} {kind:6} {ms:8.1f} {cpu:8.1f} "
            f"{size / 1024:10.1f} {last[kind]:8.1f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="streams per image and level pair (default 5)")
    parser.add_argument("--images", default=",".join(IMAGES), help="corpus images (default: all five)")
    parser.add_argument("--levels", default="6:2,9:2,6:9", help="quality:compression pairs (default 6:2,9:2,6:9)")
    args = parser.parse_args()
    if not available():
        sys.exit("PyAV with libx264 is not installed")
    tune_malloc()
    pairs = [tuple(int(x) for x in p.split(":")) for p in args.levels.split(",")]
    print("1920x1080, medians; ms = wall, cpu = CPU of all threads; PSNR after the last frame of the kind")
    print(f"{'image':9} q:c {'preset':9} {'frame':6} {'ms':>8} {'cpu ms':>8} {'KiB':>10} {'PSNR dB':>8}")
    for name in args.images.split(","):
        for quality, compress in pairs:
            for row in measure(name, quality, compress, args.runs):
                print(row)


if __name__ == "__main__":
    main()
