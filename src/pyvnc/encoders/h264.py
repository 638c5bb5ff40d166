"""Open H.264 encoding (rfbproto "Open H.264 Encoding", encoding 50) through libx264 (PyAV).

An H.264 rectangle is ``U32 length, U32 flags, data``: whole H.264 frames of the baseline profile, decoded by
the client in a *context* that its rectangle's position and size name. pyvnc keeps one context per session,
the whole framebuffer: every update is one rectangle (0, 0, width, height) carrying one frame, whatever part
of the screen changed. libx264 codes the unchanged macroblocks of a frame as skipped (a few bytes), and the
client's decoder keeps the picture in step without ever reading its own framebuffer, so nothing it draws
with other encodings (the painted cursor) can drift into the video.

The stream starts with an IDR frame and a ResetAllContexts flag; it starts over the same way when the
framebuffer size, the quality level or the compression level changes, or after :meth:`H264Encoder.reset`
(an encoded frame thrown away). There are no other key frames: RFB runs over a reliable stream.

Settings, chosen for what clients decode (noVNC through WebCodecs): baseline profile (the spec prescribes it),
no lookahead and no B-frames (each call returns its own frame), one slice per frame (noVNC hands each slice to
the decoder as a frame of its own) and so one encoder thread. The quality level maps to x264's CRF (level 6,
noVNC's default, is x264's own default of 23), the compression level to its preset. Odd sizes are padded by
repeating the last column and row; the client crops (the spec allows frames larger than their rectangle).

Pixels go BGRX → I420 through libswscale (BT.601, limited range, as the stream's VUI says), then through
libx264: both C, mostly outside the GIL (two sessions' encoders side by side took 0.73 of the time of one after
the other, on two cores). ``benchmarks/h264.py`` has the figures: an update of a still or slightly changed
1080p screen costs 5-7 ms at the default levels, a first (key) frame 9-12 ms, noise 21.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from fractions import Fraction
from types import ModuleType
from typing import Any

import numpy as np

from ..capture.base import FrameArray
from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..protocol.pixelformat import PixelFormat
from ..region import Rect
from .base import EncodeJob, Encoder
from .jpegutil import DEFAULT_QUALITY_LEVEL, is_tpixel_format

_av: ModuleType | None
try:
    import av

    av.codec.Codec("libx264", "w")
    _av = av
except Exception:  # pragma: no cover - PyAV missing, or built without libx264
    _av = None

__all__ = ["CRF_FOR_LEVEL", "RESET_ALL_CONTEXTS", "RESET_CONTEXT", "H264Encoder", "available", "preset_for"]

#: rfbproto "Open H.264 Encoding": flags of the rectangle
RESET_CONTEXT = 1
RESET_ALL_CONTEXTS = 2
#: the rectangle's length and flags, before the data
H264_HEADER = struct.Struct(">II")

#: quality level 0-9 → x264 constant rate factor (lower is better); level 6 is x264's default of 23. On the
#: corpus at level 6 a frame decodes at 37-40 dB (random noise, which no video codec keeps, at 13 dB).
CRF_FOR_LEVEL: tuple[int, ...] = (41, 38, 35, 32, 29, 26, 23, 20, 17, 14)


def preset_for(compress: int | None) -> str:
    """The x264 preset for a compression level: the faster the lower (None: as level 2, the fastest)."""
    level = 2 if compress is None else compress
    return "ultrafast" if level <= 3 else "superfast" if level <= 6 else "veryfast"


def available() -> bool:
    """Whether H.264 can be sent here: PyAV is installed and built with libx264."""
    return _av is not None


class H264Encoder(Encoder):
    """Open H.264 (encoding 50). Holds the session's libx264 encoder: one instance per session."""

    encoding = Encoding.OPEN_H264

    def __init__(self) -> None:
        self._codec: Any = None
        #: (width, height, crf, preset) the open encoder was made for
        self._settings: tuple[int, int, int, str] | None = None
        #: the BGRX picture handed to libswscale, padded to even sizes, and a numpy view of its plane
        self._picture: Any = None
        self._pixels: FrameArray | None = None
        self._pts = 0

    @classmethod
    def supports(cls, pixel_format: PixelFormat) -> bool:
        """Whether H.264 can serve a client of ``pixel_format``: libx264 present, a TPIXEL format (32 bpp,
        depth 24, 8-bit channels), as for the other encodings whose images carry RGB of their own."""
        return available() and is_tpixel_format(pixel_format)

    def reset(self) -> None:
        """Start the stream over: the next frame is an IDR frame sent with ResetAllContexts. Call it when an
        encoded frame is thrown away unsent, since every later frame would refer to it."""
        self._codec = None
        self._settings = None

    def encode(self, job: EncodeJob) -> list[bytes]:
        """One rectangle, the whole frame, carrying one H.264 frame; nothing for a job without rectangles."""
        if not job.rects:
            return []
        h, w = job.frame.shape[:2]
        level = DEFAULT_QUALITY_LEVEL if job.quality is None else min(9, max(0, job.quality))
        settings = (w, h, CRF_FOR_LEVEL[level], preset_for(job.compress))
        flags = 0
        if settings != self._settings:
            self._open(settings)
            flags = RESET_ALL_CONTEXTS
        data = self._frame(job.frame)
        return [rect_header(0, 0, w, h, self.encoding) + H264_HEADER.pack(len(data), flags) + data]

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """As :meth:`encode`: the rectangle sent is always the whole frame (the session's one context)."""
        return self.encode(replace(job, rects=(rect,)))

    def _open(self, settings: tuple[int, int, int, str]) -> None:
        assert _av is not None
        w, h, crf, preset = settings
        ew, eh = w + (w & 1), h + (h & 1)  # 4:2:0 needs even sizes
        codec = _av.CodecContext.create("libx264", "w")
        codec.width, codec.height = ew, eh
        codec.pix_fmt = "yuv420p"
        codec.time_base = Fraction(1, 30)
        codec.options = {
            "preset": preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "crf": str(crf),
            "x264-params": "keyint=infinite:scenecut=0:threads=1:sliced-threads=0:rc-lookahead=0:bframes=0:"
            # libswscale converts with BT.601 (limited range): say so, or decoders take HD video for BT.709
            # (Chromium's did: greens came out 19 levels dark)
            "colormatrix=smpte170m:colorprim=smpte170m:transfer=smpte170m:range=tv",
        }
        codec.open()
        picture = _av.VideoFrame(ew, eh, "bgra")
        plane = picture.planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(eh, plane.line_size)
        self._codec, self._settings, self._picture = codec, settings, picture
        self._pixels = rows[:, : ew * 4].reshape(eh, ew, 4)
        self._pts = 0

    def _frame(self, frame: FrameArray) -> bytes:
        """The H.264 data of the next frame (the encoder returns every frame at once: no lookahead)."""
        assert self._pixels is not None
        h, w = frame.shape[:2]
        px = self._pixels
        px[:h, :w] = frame
        if px.shape[1] > w:
            px[:h, w] = frame[:, w - 1]
        if px.shape[0] > h:
            px[h] = px[h - 1]
        yuv = self._picture.reformat(format="yuv420p")
        yuv.pts = self._pts
        self._pts += 1
        return b"".join(bytes(packet) for packet in self._codec.encode(yuv))
