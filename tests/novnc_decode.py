"""Decode pyvnc's encoded rectangles with noVNC's own decoders, through ``tests/novnc/decode.mjs``.

noVNC's decoders assume noVNC's client pixel format (32 bpp true colour, little-endian, red shift 0,
green 8, blue 16), so encode with :data:`NOVNC_PF` for these tests. One call is one connection: every
decoder (and its zlib stream) lives for the whole byte stream.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

HARNESS_DIR = Path(__file__).resolve().parent / "novnc"
HARNESS = HARNESS_DIR / "decode.mjs"
NOVNC_PACKAGE = HARNESS_DIR / "node_modules" / "@novnc" / "novnc" / "core" / "decoders"

#: FramebufferUpdate header: type 0, padding, number of rectangles (rfbproto 7.6.1)
_FBU = struct.Struct(">BxH")


def novnc_available() -> bool:
    """Whether node and the installed noVNC package are both there."""
    return shutil.which("node") is not None and NOVNC_PACKAGE.is_dir()


requires_novnc = pytest.mark.skipif(
    not novnc_available(), reason="node or tests/novnc/node_modules missing (cd tests/novnc && npm install)"
)


def update_message(rects: Sequence[bytes]) -> bytes:
    """One FramebufferUpdate message holding the encoded rectangles (each with its 12-byte header)."""
    return _FBU.pack(0, len(rects)) + b"".join(rects)


def _run(stream: bytes, width: int, height: int, snapshots: bool, chunk: int) -> bytes:
    if not novnc_available():
        pytest.skip("node or tests/novnc/node_modules missing")
    header = b"NVD1" + struct.pack(">HHBI", width, height, 1 if snapshots else 0, chunk)
    proc = subprocess.run(["node", str(HARNESS)], input=header + stream, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"noVNC harness failed: {proc.stderr.decode(errors='replace')[-3000:]}")
    return proc.stdout


def decode_with_novnc(
    updates: bytes | Iterable[Sequence[bytes]], width: int, height: int, chunk: int = 0
) -> NDArray[np.uint8]:
    """Decode a byte stream (or a list of updates, each a list of encoded rectangles) with noVNC.

    Returns the final framebuffer as an (height, width, 3) RGB array; the framebuffer starts black.
    ``chunk`` > 0 feeds the stream in pieces of that many bytes.
    """
    stream = updates if isinstance(updates, bytes) else b"".join(update_message(u) for u in updates)
    out = _run(stream, width, height, False, chunk)
    fb = np.frombuffer(out, dtype=np.uint8).reshape(height, width, 4)
    return fb[:, :, :3].copy()


def decode_each_with_novnc(
    updates: Iterable[Sequence[bytes]], width: int, height: int, chunk: int = 0
) -> list[NDArray[np.uint8]]:
    """Decode a sequence of updates on one connection: the framebuffer (RGB) after each update."""
    msgs = [update_message(u) for u in updates]
    out = _run(b"".join(msgs), width, height, True, chunk)
    size = width * height * 4
    assert len(out) == size * len(msgs), f"expected {len(msgs)} snapshots, got {len(out) / size}"
    frames = np.frombuffer(out, dtype=np.uint8).reshape(len(msgs), height, width, 4)
    return [f[:, :, :3].copy() for f in frames]
