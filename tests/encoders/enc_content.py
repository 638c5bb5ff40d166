"""Test content for the encoder tests: corpus frames and synthetic frames (BGRX), and the encoders."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pyvnc.encoders.base import Encoder
from pyvnc.encoders.hextile import HextileEncoder
from pyvnc.encoders.rre import RREEncoder
from pyvnc.encoders.zlibenc import ZlibEncoder
from pyvnc.encoders.zrle import ZRLEEncoder
from pyvnc.protocol.pixelformat import PixelFormat

Frame = NDArray[np.uint8]

# shared/ sits beside the checkout (in CI too); /work/shared is its usual place on these machines
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")
CORPUS_IMAGES = ("desktop", "terminal", "webpage", "photo", "noise")

#: noVNC's client pixel format: 32 bpp, depth 24, little-endian, red shift 0, green 8, blue 16
NOVNC_PF = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)

#: (name, factory) of every encoder under test
ENCODERS: dict[str, Callable[[], Encoder]] = {
    "rre": RREEncoder,
    "hextile": HextileEncoder,
    "zlib": ZlibEncoder,
    "zrle": ZRLEEncoder,
}


def rgb_to_bgrx(rgb: NDArray[np.uint8]) -> Frame:
    frame = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    frame[:, :, 0] = rgb[:, :, 2]
    frame[:, :, 1] = rgb[:, :, 1]
    frame[:, :, 2] = rgb[:, :, 0]
    return frame


def bgrx_to_rgb(frame: Frame) -> NDArray[np.uint8]:
    return np.ascontiguousarray(frame[:, :, 2::-1])


@lru_cache(maxsize=8)
def corpus_frame(name: str) -> Frame:
    """A 1920×1080 corpus image as a read-only BGRX frame."""
    frame = rgb_to_bgrx(np.asarray(Image.open(CORPUS / f"{name}.png").convert("RGB")))
    frame.flags.writeable = False
    return frame


def corpus_available() -> bool:
    return all((CORPUS / f"{n}.png").exists() for n in CORPUS_IMAGES)


def synthetic(rng: np.random.Generator, h: int, w: int, kind: str) -> Frame:
    """A BGRX frame of one kind of content: solid, few (colours, blocky), text, gradient or noise."""
    frame = np.zeros((h, w, 4), dtype=np.uint8)
    if kind == "solid":
        frame[:, :, :3] = rng.integers(0, 256, 3, dtype=np.uint8)
    elif kind == "few":
        palette = rng.integers(0, 256, (int(rng.integers(2, 6)), 3), dtype=np.uint8)
        idx = rng.integers(0, len(palette), (h // 3 + 1, w // 5 + 1))
        frame[:, :, :3] = palette[np.repeat(np.repeat(idx, 3, 0), 5, 1)[:h, :w]]
    elif kind == "text":
        # a background with sparse strokes of one or two colours, like glyphs
        bg, ink, ink2 = rng.integers(0, 256, (3, 3), dtype=np.uint8)
        frame[:, :, :3] = bg
        strokes = rng.random((h, w)) < 0.12
        frame[strokes, :3] = ink
        frame[strokes & (rng.random((h, w)) < 0.2), :3] = ink2
    elif kind == "gradient":
        x = np.linspace(0, 255, w, dtype=np.float64)
        y = np.linspace(0, 255, h, dtype=np.float64)
        frame[:, :, 0] = (x[None, :] // 8 * 8).astype(np.uint8)
        frame[:, :, 1] = (y[:, None] // 4 * 4).astype(np.uint8)
        frame[:, :, 2] = 77
    elif kind == "noise":
        frame[:, :, :3] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        raise ValueError(kind)
    # the X byte of BGRX is not part of the colour: make sure encoders ignore it
    frame[:, :, 3] = rng.integers(0, 256, (h, w), dtype=np.uint8)
    return frame


KINDS = ("solid", "few", "text", "gradient", "noise")


def mixed_frame(rng: np.random.Generator, h: int, w: int) -> Frame:
    """A frame of random blocks of every kind of content."""
    frame = synthetic(rng, h, w, "solid")
    for _ in range(12):
        bh, bw = int(rng.integers(1, h // 2 + 2)), int(rng.integers(1, w // 2 + 2))
        y, x = int(rng.integers(0, h - min(bh, h) + 1)), int(rng.integers(0, w - min(bw, w) + 1))
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
        block = synthetic(rng, min(bh, h - y), min(bw, w - x), kind)
        frame[y : y + block.shape[0], x : x + block.shape[1]] = block
    return frame
