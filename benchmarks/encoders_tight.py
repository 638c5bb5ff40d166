"""Tight, TightPNG and JPEG encoder figures on the screen-content corpus.

Run: ``.venv/bin/python benchmarks/encoders_tight.py`` (from the repository root). For each corpus image it
prints the median encode time of a full 1920×1080 frame and of a 614×338 region, the bytes sent and the
ratio to raw 32-bit pixels, for lossless Tight, Tight with JPEG at quality level 6, TightPNG and JPEG. Each
row uses a fresh encoder (fresh zlib streams) per run, like a new session. The deflate library in use (ISA-L
when ``isal`` is installed, else stdlib zlib) is printed first; set ``PYVNC_TIGHT_ZLIB=zlib`` to force
stdlib zlib. Rows go through the session's encode manager (fills for large one-colour areas) unless
``--direct`` is given.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from encoders import managed
from PIL import Image

from pyvnc._malloc import tune_malloc
from pyvnc.encoders import tight as tight_module
from pyvnc.encoders.base import EncodeJob, Encoder
from pyvnc.encoders.jpeg import JPEGEncoder
from pyvnc.encoders.tight import TightEncoder
from pyvnc.encoders.tightpng import TightPNGEncoder
from pyvnc.protocol.pixelformat import NATIVE
from pyvnc.region import Rect

CORPUS_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "corpus",
    Path("/work/shared/corpus"),
)
NAMES = ("terminal", "webpage", "desktop", "photo", "noise")
FULL = Rect(0, 0, 1920, 1080)
REGION = Rect(653, 371, 614, 338)  # an odd-sized region away from the frame edges


def _corpus() -> Path:
    for p in CORPUS_CANDIDATES:
        if p.is_dir():
            return p
    sys.exit("corpus not found (shared/corpus beside the repository)")


def load(name: str) -> np.ndarray:
    """A corpus image as a BGRX frame."""
    rgb = np.asarray(Image.open(_corpus() / f"{name}.png").convert("RGB"))
    frame = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    frame[..., :3] = rgb[..., ::-1]
    return frame


def _zlib_backend() -> object:
    if os.environ.get("PYVNC_TIGHT_ZLIB") == "zlib":
        return zlib
    return tight_module.FAST_DEFLATE or zlib


def _modes(direct: bool = False) -> list[tuple[str, Callable[[], Encoder], int | None]]:
    backend = _zlib_backend()
    if not direct:
        return [
            ("tight", managed(TightEncoder), None),
            ("tight+jpeg6", managed(TightEncoder), 6),
            ("tightpng", managed(TightPNGEncoder), None),
            ("jpeg6", managed(JPEGEncoder), 6),
        ]
    return [
        ("tight", lambda: TightEncoder(zlib_backend=backend), None),  # type: ignore[arg-type]
        ("tight+jpeg6", lambda: TightEncoder(zlib_backend=backend), 6),  # type: ignore[arg-type]
        ("tightpng", TightPNGEncoder, None),
        ("jpeg6", JPEGEncoder, 6),
    ]


def measure(
    make: Callable[[], Encoder], frame: np.ndarray, rect: Rect, quality: int | None, runs: int
) -> tuple[float, int]:
    """Median milliseconds and bytes of encoding ``rect`` with a fresh encoder each run."""
    job = EncodeJob(frame=frame, rects=(rect,), pixel_format=NATIVE, quality=quality, compress=2)
    times = []
    size = 0
    for _ in range(runs):
        enc = make()
        t0 = time.perf_counter()
        out = enc.encode(job)
        times.append((time.perf_counter() - t0) * 1000)
        size = sum(len(b) for b in out)
    return statistics.median(times), size


def tight_rows(runs: int = 7, direct: bool = False) -> None:
    """Print the table: image, mode, full-frame ms / bytes / ratio, region ms / bytes / ratio."""
    backend = _zlib_backend()
    print(f"deflate: {getattr(backend, '__name__', backend)}  (compress level 2, pixel format NATIVE)")
    head = f"{'image':9} {'mode':12} {'full ms':>8} {'full bytes':>11} {'ratio':>6}"
    print(head + f" {'region ms':>9} {'bytes':>8} {'ratio':>6}")
    for name in NAMES:
        frame = load(name)
        for mode, make, quality in _modes(direct):
            fms, fbytes = measure(make, frame, FULL, quality, runs)
            rms, rbytes = measure(make, frame, REGION, quality, runs * 2)
            print(
                f"{name:9} {mode:12} {fms:8.1f} {fbytes:11,d} {FULL.area * 4 / fbytes:6.1f}"
                f" {rms:9.2f} {rbytes:8,d} {REGION.area * 4 / rbytes:6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    tune_malloc()  # as Server.start() does: frame-sized buffers are reused instead of page-faulted in anew
    tight_rows(direct="--direct" in sys.argv[1:])
