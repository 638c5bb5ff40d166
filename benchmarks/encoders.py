"""Encoder benchmark: time, throughput and compression of every encoding on the screen-content corpus.

    .venv/bin/python benchmarks/encoders.py [--runs N] [--only NAME[,NAME]] [--images a,b] [--native]

For each encoding × corpus image it prints the median time to encode a full 1920×1080 frame and a 614×338
region (the client pixel format is noVNC's, 32 bpp RGBX little-endian; ``--native`` adds the server's own
BGRX format), megapixels a second, encoded bytes and the compression ratio against Raw. Times are wall
("ms") and CPU of all threads ("cpu ms"): big updates use both cores (stateless encodings in bands, ZRLE's tile
data in bands, deflate in segments, Tight's JPEG images side by side), so "cpu ms" is what an encode costs on
one core and "ms" what the client waits. ``--cores N`` spreads updates over N threads (1: none).

Every content encoding has a row: Raw, RRE, Hextile, Zlib, ZRLE, Tight (lossless and with JPEG at quality
level 6), TightPNG and JPEG (``encoders_tight.py`` shows the Tight family on another region as well).
Encodings are rows of :data:`ENCODERS`, (name, factory, job options): add a row to benchmark a new encoder.
A fresh encoder is made for every run, so zlib-based encoders start each run with a new stream, as the
first update of a session does. Each encoding is measured as a session sends it: behind the encode manager
(:class:`Managed`: large one-colour areas as fills, the rest by the encoder) with that encoding preferred;
``--direct`` measures the encoder classes alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pyvnc._malloc import tune_malloc
from pyvnc.encoders import parallel
from pyvnc.encoders.base import EncodeJob, Encoder
from pyvnc.encoders.hextile import HextileEncoder
from pyvnc.encoders.jpeg import JPEGEncoder
from pyvnc.encoders.raw import RawEncoder
from pyvnc.encoders.rre import RREEncoder
from pyvnc.encoders.select import EncoderSelector
from pyvnc.encoders.tight import TightEncoder
from pyvnc.encoders.tightpng import TightPNGEncoder
from pyvnc.encoders.zlibenc import ZlibEncoder
from pyvnc.encoders.zrle import ZRLEEncoder
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat
from pyvnc.region import Rect

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")
IMAGES = ("desktop", "terminal", "webpage", "photo", "noise")

#: noVNC's pixel format: 32 bpp true colour, little-endian, red shift 0, green 8, blue 16
NOVNC_PF = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)


class Managed(Encoder):
    """An encoding as a session uses it: the session's encode manager with ``encoding`` preferred."""

    def __init__(self, cls: type[Encoder]) -> None:
        self.encoding = cls.encoding
        self.selector = EncoderSelector()
        self.selector.configure([cls.encoding])

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        return self.encode(EncodeJob(job.frame, (rect,), job.pixel_format, job.quality, job.compress))

    def encode(self, job: EncodeJob) -> list[bytes]:
        self.selector.quality, self.selector.compress = job.quality, job.compress
        return self.selector.encode(job)[1]


def managed(cls: type[Encoder]) -> Callable[[], Encoder]:
    """A factory of :class:`Managed` encoders of ``cls``'s encoding."""
    return lambda: Managed(cls)


#: (name, factory, job options): one row per encoding (the JPEG rows at quality level 6, the issue's target;
#: compression level 2 where the encoding has levels, the default of TigerVNC and noVNC). CopyRect has no
#: row: it sends a source position, whatever the content (its tests are in tests/encoders).
ENCODERS: list[tuple[str, Callable[[], Encoder], dict[str, int]]] = [
    ("raw", RawEncoder, {}),
    ("rre", RREEncoder, {}),
    ("hextile", HextileEncoder, {}),
    ("zlib", ZlibEncoder, {"compress": 2}),
    ("zrle", ZRLEEncoder, {"compress": 2}),
    ("tight", TightEncoder, {"compress": 2}),
    ("tight-jpeg6", TightEncoder, {"compress": 2, "quality": 6}),
    ("tightpng", TightPNGEncoder, {"compress": 2}),
    ("jpeg6", JPEGEncoder, {"quality": 6}),
]

#: the region benchmarked besides the full frame: 614×338 at an offset that is not tile-aligned
REGION = Rect(403, 211, 614, 338)


def load_frame(name: str) -> NDArray[np.uint8]:
    """A corpus PNG as an (H, W, 4) BGRX frame."""
    rgb = np.asarray(Image.open(CORPUS / f"{name}.png").convert("RGB"))
    frame = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    frame[:, :, 0] = rgb[:, :, 2]
    frame[:, :, 1] = rgb[:, :, 1]
    frame[:, :, 2] = rgb[:, :, 0]
    return frame


def measure(factory: Callable[[], Encoder], job: EncodeJob, runs: int) -> tuple[float, float, int]:
    """Median wall seconds and median CPU seconds (every thread of the process: what the encode costs on one
    core) of ``runs`` encodes after one warm-up, and the encoded size in bytes."""
    size = sum(len(r) for r in factory().encode(job))
    times = []
    cpu = []
    for _ in range(runs):
        enc = factory()
        c0, t0 = time.process_time(), time.perf_counter()
        enc.encode(job)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", help="comma-separated encoder names")
    parser.add_argument("--images", help="comma-separated corpus images")
    parser.add_argument("--native", action="store_true", help="also measure the server's BGRX format")
    parser.add_argument("--direct", action="store_true", help="the encoder classes alone, without the manager")
    parser.add_argument("--cores", type=int, help="threads a big update is spread over (default: every core)")
    args = parser.parse_args(argv)
    if args.cores is not None:
        parallel.set_cores(args.cores)
    tune_malloc()  # as Server.start() does: frame-sized buffers are reused instead of page-faulted in anew

    rows = [r for r in ENCODERS if not args.only or r[0] in args.only.split(",")]
    if not args.direct:
        rows = [(name, managed(factory), opts) for name, factory, opts in rows]  # type: ignore[arg-type]
    images = args.images.split(",") if args.images else list(IMAGES)
    formats = [("novnc", NOVNC_PF)] + ([("native", NATIVE)] if args.native else [])

    head = (
        f"{'encoding':<10} {'image':<9} {'format':<7} {'area':<8} {'ms':>8} {'cpu ms':>8} {'Mpx/s':>8} {'bytes':>10} "
        f"{'ratio':>7}"
    )
    print(head)
    print("-" * len(head))
    for name in images:
        frame = load_frame(name)
        h, w = frame.shape[:2]
        for fmt_name, pf in formats:
            for area_name, rect in (("frame", Rect(0, 0, w, h)), ("region", REGION)):
                raw_size = rect.area * pf.bits_per_pixel // 8
                for enc_name, factory, opts in rows:
                    job = EncodeJob(frame, (rect,), pf, **opts)
                    secs, cpu, size = measure(factory, job, args.runs)
                    print(
                        f"{enc_name:<10} {name:<9} {fmt_name:<7} {area_name:<8} {secs * 1000:8.1f} {cpu * 1000:8.1f} "
                        f"{rect.area / secs / 1e6:8.1f} {size:10d} {raw_size / size:7.2f}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
