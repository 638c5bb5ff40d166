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
the other, on two cores). Updates that change a small part of the screen convert only that part into the
picture kept from the last frame. ``benchmarks/h264.py`` has the figures: at the default levels a 1080p update
that changes a text line costs about 4 ms, one converted whole 6, a first (key) frame 9-12, noise 21.
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
#: an update whose changed area is at most this share of the screen is converted rectangle by rectangle
#: (a changed text line on a 1080p screen: 1.8 ms of conversion saved of about 5.5 ms)
PARTIAL_SHARE = 0.25
#: how far (pixels) a changed pixel changes the chroma libswscale computes, and how much context (pixels) a
#: chroma value needs to come out as in a whole-frame conversion (both found by trying, with room to spare)
REACH = 4
MARGIN = 8

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
        #: the I420 picture last sent and numpy views of its planes (None: convert the next frame whole)
        self._yuv: Any = None
        self._planes: tuple[FrameArray, FrameArray, FrameArray] | None = None
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

    def invalidate(self) -> None:
        """The client's screen was drawn in other encodings since the last frame (its pixel format or encoding
        list changed for a while): the next frame converts the whole screen, not only what its job says changed.
        The stream goes on: the client's decoder has missed nothing."""
        self._yuv = self._planes = None

    def encode(self, job: EncodeJob) -> list[bytes]:
        """One rectangle, the whole frame, carrying one H.264 frame; nothing for a job without rectangles.

        ``job.rects`` must cover everything that changed since the last frame of this encoder (a session's
        damage does): only they are converted when they are a small part of the screen."""
        h, w = job.frame.shape[:2]
        whole = Rect(0, 0, w, h)
        rects = tuple(c for r in job.rects if (c := r.intersect(whole)) is not None)
        if not rects:
            return []
        level = DEFAULT_QUALITY_LEVEL if job.quality is None else min(9, max(0, job.quality))
        settings = (w, h, CRF_FOR_LEVEL[level], preset_for(job.compress))
        flags = 0
        if settings != self._settings:
            self._open(settings)
            flags = RESET_ALL_CONTEXTS
        data = self._frame(job.frame, rects)
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
        self._codec, self._settings, self._picture = codec, settings, picture
        self._pixels = _plane_view(picture, 0, ew, eh, 4)
        self._yuv = self._planes = None
        self._pts = 0

    def _frame(self, frame: FrameArray, rects: tuple[Rect, ...]) -> bytes:
        """The H.264 data of the next frame (the encoder returns every frame at once: no lookahead).

        ``rects`` are what changed since the last frame: when they are a small part of the screen only they
        are converted, each with :data:`MARGIN` pixels of context around it, into the I420 picture kept from
        the last frame (libx264 copies its input, so the picture may be changed and sent again)."""
        h, w = frame.shape[:2]
        if self._yuv is None or sum(r.area for r in rects) > PARTIAL_SHARE * w * h:
            self._pad(frame, Rect(0, 0, w, h))
            self._yuv = self._picture.reformat(format="yuv420p")
            self._planes = _planes(self._yuv)
        else:
            for rect in rects:
                self._convert(frame, rect)
        yuv = self._yuv
        yuv.pts = self._pts
        self._pts += 1
        return b"".join(bytes(packet) for packet in self._codec.encode(yuv))

    def _pad(self, frame: FrameArray, rect: Rect) -> None:
        """Copy ``rect`` of ``frame`` into the BGRX picture; where it reaches an odd edge, the padding column or
        row repeats the last one."""
        assert self._pixels is not None
        px = self._pixels
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = rect.x, rect.y, rect.right, rect.bottom
        px[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
        if x1 == w and px.shape[1] > w:
            px[y0:y1, w] = frame[y0:y1, w - 1]
            x1 += 1
        if y1 == h and px.shape[0] > h:
            px[h, x0:x1] = px[h - 1, x0:x1]

    def _convert(self, frame: FrameArray, rect: Rect) -> None:
        """Bring the kept I420 picture up to date with ``rect`` of ``frame``.

        libswscale's chroma filter reaches beyond a pixel's own 2 × 2 block: a changed pixel changes chroma
        up to :data:`REACH` pixels away, and a chroma value needs :data:`MARGIN` pixels of context to come out
        as a whole-frame conversion makes it. So the rectangle widened by REACH (to even edges) is written,
        converted from a window MARGIN pixels wider still: the same values as converting the whole frame
        (tested, byte for byte, on random pixels)."""
        assert _av is not None and self._pixels is not None and self._planes is not None
        self._pad(frame, rect)
        eh, ew = self._pixels.shape[:2]
        x0, y0 = max(0, rect.x - REACH) & ~1, max(0, rect.y - REACH) & ~1
        x1, y1 = min(ew, _even(rect.right + REACH)), min(eh, _even(rect.bottom + REACH))
        wx0, wy0 = max(0, x0 - MARGIN), max(0, y0 - MARGIN)
        wx1, wy1 = min(ew, x1 + MARGIN), min(eh, y1 + MARGIN)
        window = _av.VideoFrame(wx1 - wx0, wy1 - wy0, "bgra")
        _plane_view(window, 0, wx1 - wx0, wy1 - wy0, 4)[...] = self._pixels[wy0:wy1, wx0:wx1]
        part = _planes(window.reformat(format="yuv420p"))
        ox, oy = x0 - wx0, y0 - wy0
        self._planes[0][y0:y1, x0:x1] = part[0][oy : oy + y1 - y0, ox : ox + x1 - x0]
        for i in (1, 2):
            self._planes[i][y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = part[i][
                oy // 2 : (oy + y1 - y0) // 2, ox // 2 : (ox + x1 - x0) // 2
            ]


def _even(n: int) -> int:
    return n + (n & 1)


def _plane_view(frame: Any, index: int, w: int, h: int, channels: int = 1) -> FrameArray:
    """A writable numpy view of plane ``index`` of a PyAV frame: (h, w) bytes, or (h, w, channels)."""
    plane = frame.planes[index]
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)[:h, : w * channels]
    return rows.reshape(h, w, channels) if channels > 1 else rows


def _planes(yuv: Any) -> tuple[FrameArray, FrameArray, FrameArray]:
    """Numpy views of the Y, U and V planes of a yuv420p frame of even size."""
    w, h = yuv.width, yuv.height
    return _plane_view(yuv, 0, w, h), _plane_view(yuv, 1, w // 2, h // 2), _plane_view(yuv, 2, w // 2, h // 2)
