"""The encoder interface: plain synchronous code over numpy arrays, run in a worker thread."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..capture.base import FrameArray
from ..protocol.pixelformat import PixelFormat
from ..region import Rect


@dataclass(frozen=True)
class EncodeJob:
    """An immutable snapshot of everything one update needs.

    ``frame`` is the BGRX frame (never modified after publication), ``rects`` the areas to send (inside the
    frame), ``pixel_format`` the client's effective true-colour format.
    """

    frame: FrameArray
    rects: tuple[Rect, ...]
    pixel_format: PixelFormat
    quality: int | None = None
    compress: int | None = None


class Encoder(abc.ABC):
    """One encoding. Encoders holding compression streams live one per session."""

    #: the encoding number (rfbproto 7.7)
    encoding: int

    @abc.abstractmethod
    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """Encode one rectangle: a list of encoded rectangles, each starting with its 12-byte header."""

    def encode_fill(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """Encode ``rect``, which the caller knows to be one colour throughout.

        Encodings with a cheap way to say "all this colour" override it; the default encodes as usual.
        """
        return self.encode_rect(job, rect)

    def encode(self, job: EncodeJob) -> list[bytes]:
        """Encode every rectangle of ``job``."""
        out: list[bytes] = []
        for rect in job.rects:
            out.extend(self.encode_rect(job, rect))
        return out

    def encode_with_fills(self, job: EncodeJob, items: Sequence[tuple[Rect, bool]]) -> list[bytes]:
        """Encode ``items`` in their order: (rectangle, True) through :meth:`encode_fill`, (rectangle, False)
        as :meth:`encode` would. A stateful encoder's stream then carries fills and the rest in the order they
        are sent. ``job.rects`` is ignored. Encoders that can prepare the rectangles side by side override it.
        """
        out: list[bytes] = []
        batch: list[Rect] = []
        for rect, fill in items:
            if fill:
                if batch:
                    out.extend(self.encode(replace(job, rects=tuple(batch))))
                    batch = []
                out.extend(self.encode_fill(job, rect))
            else:
                batch.append(rect)
        if batch:
            out.extend(self.encode(replace(job, rects=tuple(batch))))
        return out
