"""The client side of Open H.264 (rfbproto "Open H.264 Encoding"), for tests: written from the spec, with
libavcodec's H.264 decoder (through PyAV: nobody here wrote it) doing the decoding.

:class:`H264View` keeps one decoder per context (a rectangle's position and size), applies the ResetContext and
ResetAllContexts flags before decoding, crops frames larger than their rectangle and paints the last frame of
each rectangle into an RGB framebuffer. It converts I420 to RGB itself (BT.601, limited range, the chroma of
each 2 × 2 block repeated), so that no colour conversion of the encoder's library is trusted. It also checks
the stream's shape, as noVNC needs it: start codes, one slice a frame, the baseline profile.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

RECT = struct.Struct(">HHHHi")
H264_HEAD = struct.Struct(">II")
OPEN_H264 = 50
RESET_CONTEXT, RESET_ALL_CONTEXTS = 1, 2
#: NAL unit types (H.264 table 7-1)
SLICE, IDR, SEI, SPS, PPS = 1, 5, 6, 7, 8
BASELINE = 66
#: BT.601 (AVCOL_SPC_SMPTE170M), limited range (AVCOL_RANGE_MPEG): what i420_to_rgb converts
BT601_LIMITED = (6, 1)


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, each without its start code (three bytes 0 0 1, or four with
    a zero before them: a NAL unit never ends in a zero byte, and never holds 0 0 1)."""
    if not data:
        return []
    assert data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")), "the data does not start with a start code"
    parts = data.split(b"\x00\x00\x01")[1:]
    return [p[:-1] if i + 1 < len(parts) and p.endswith(b"\x00") else p for i, p in enumerate(parts)]


def i420_to_rgb(frame: Any) -> NDArray[np.uint8]:
    """RGB of a decoded yuv420p frame (BT.601, limited range), computed here."""
    assert frame.format.name == "yuv420p", frame.format.name
    w, h = frame.width, frame.height

    def plane(i: int, pw: int, ph: int) -> NDArray[np.float64]:
        p = frame.planes[i]
        rows = np.frombuffer(memoryview(p), np.uint8).reshape(-1, p.line_size)
        return rows[:ph, :pw].astype(np.float64)

    y = (plane(0, w, h) - 16) * (255 / 219)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    cb = np.repeat(np.repeat((plane(1, cw, ch) - 128) * (255 / 224), 2, axis=0), 2, axis=1)[:h, :w]
    cr = np.repeat(np.repeat((plane(2, cw, ch) - 128) * (255 / 224), 2, axis=0), 2, axis=1)[:h, :w]
    rgb = np.stack((y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb), axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@dataclass
class Shown:
    """What one H.264 rectangle did: its geometry, flags, NAL unit types and frame size."""

    rect: tuple[int, int, int, int]
    flags: int
    nal_types: list[int]
    size: int
    frame_size: tuple[int, int] | None = None
    profile: int | None = None
    #: the frame's colour matrix and range as its stream signals them (AVColorSpace, AVColorRange)
    colour: tuple[int, int] | None = None


@dataclass
class H264View:
    """Decodes H.264 rectangles into ``fb`` (h, w, 3) RGB."""

    fb: NDArray[np.uint8]
    contexts: dict[tuple[int, int, int, int], Any] = field(default_factory=dict)
    shown: list[Shown] = field(default_factory=list)

    def feed(self, rect: bytes) -> Shown:
        """Apply one encoded rectangle (header included)."""
        x, y, w, h, enc = RECT.unpack_from(rect)
        assert enc == OPEN_H264, enc
        length, flags = H264_HEAD.unpack_from(rect, RECT.size)
        data = rect[RECT.size + H264_HEAD.size :]
        assert len(data) == length, (len(data), length)
        return self.apply(x, y, w, h, flags, data)

    def apply(self, x: int, y: int, w: int, h: int, flags: int, data: bytes) -> Shown:
        """Apply a rectangle already split into its fields (the socket client reads them so)."""
        key = (x, y, w, h)
        if flags & RESET_ALL_CONTEXTS:
            self.contexts.clear()
        elif flags & RESET_CONTEXT:
            self.contexts.pop(key, None)
        units = nal_units(data)
        types = [u[0] & 0x1F for u in units]
        assert all(u[0] & 0x80 == 0 for u in units), "forbidden zero bit set"
        shown = Shown(key, flags, types, len(data))
        sps = [u for u in units if u[0] & 0x1F == SPS]
        if sps:
            shown.profile = sps[0][1]
        if data:
            decoder = self.contexts.get(key)
            if decoder is None:
                decoder = self.contexts[key] = av.CodecContext.create("h264", "r")
            frames = decoder.decode(av.Packet(data))
            if frames:
                frame = frames[-1]
                shown.frame_size = (frame.width, frame.height)
                shown.colour = (int(frame.colorspace), int(frame.color_range))
                assert frame.width >= w and frame.height >= h, "a frame smaller than its rectangle"
                self.fb[y : y + h, x : x + w] = i420_to_rgb(frame)[:h, :w]
        self.shown.append(shown)
        return shown


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
