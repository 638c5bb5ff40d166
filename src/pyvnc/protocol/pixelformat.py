"""Pixel formats (rfbproto 7.4) and vectorised conversion from the server's BGRX frames.

Frames inside the server are (H, W, 4) uint8 arrays in BGRX byte order, the little-endian 32-bit value
0x00RRGGBB: exactly :data:`NATIVE`. A client may ask for any true-colour format of 8, 16 or 32 bits per pixel
(any depth, maxima of the form 2^n - 1, any shifts, either byte order); :class:`PixelConverter` turns frames
into it with numpy lookup tables, never a per-pixel Python loop. A client asking for a colour-map format gets
the fixed 3-3-2 palette of :data:`COLOUR_MAP_FORMAT` through SetColourMapEntries (rfbproto 7.6.2).
"""

from __future__ import annotations

import functools
import struct
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ..errors import ProtocolError

PixelValues = npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.uint32]


@dataclass(frozen=True)
class PixelFormat:
    """A PIXEL_FORMAT structure (rfbproto 7.4)."""

    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    #: bits-per-pixel, depth, big-endian-flag, true-colour-flag, 3 maxima, 3 shifts, 3 bytes of padding
    STRUCT: ClassVar[struct.Struct] = struct.Struct(">BBBBHHHBBB3x")

    @classmethod
    def parse(cls, data: bytes) -> PixelFormat:
        """Parse the 16-byte wire form."""
        bpp, depth, be, tc, rm, gm, bm, rs, gs, bs = cls.STRUCT.unpack(data)
        return cls(bpp, depth, bool(be), bool(tc), rm, gm, bm, rs, gs, bs)

    def pack(self) -> bytes:
        """The 16-byte wire form."""
        return self.STRUCT.pack(
            self.bits_per_pixel,
            self.depth,
            int(self.big_endian),
            int(self.true_colour),
            self.red_max,
            self.green_max,
            self.blue_max,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
        )

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    def validate(self) -> None:
        """Raise :class:`ProtocolError` for a format no client may set (rfbproto 7.4, 7.5.1)."""
        bpp = self.bits_per_pixel
        if bpp not in (8, 16, 32):
            raise ProtocolError(f"pixel format: bits-per-pixel must be 8, 16 or 32, got {bpp}")
        if not 0 < self.depth <= bpp:
            raise ProtocolError(f"pixel format: depth {self.depth} does not fit {bpp} bits per pixel")
        if not self.true_colour:
            if bpp != 8:
                raise ProtocolError(f"pixel format: colour maps are supported at 8 bits per pixel, not {bpp}")
            return
        for name, mx, shift in (
            ("red", self.red_max, self.red_shift),
            ("green", self.green_max, self.green_shift),
            ("blue", self.blue_max, self.blue_shift),
        ):
            if mx == 0 or mx & (mx + 1):
                raise ProtocolError(f"pixel format: {name}-max must be 2^n - 1, got {mx}")
            if shift > 31 or (mx << shift) >> bpp:
                raise ProtocolError(f"pixel format: {name} (max {mx}, shift {shift}) does not fit {bpp} bits")


#: the server's own format: the BGRX memory layout, so converting to it is a plain copy
NATIVE = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)

#: how colour-map clients are served: indices laid out as 3-3-2 bits of red, green and blue
COLOUR_MAP_FORMAT = PixelFormat(8, 8, False, True, 7, 7, 3, 5, 2, 0)


def effective_format(pf: PixelFormat) -> PixelFormat:
    """The true-colour format pixels are actually encoded in for a client that asked for ``pf``."""
    return pf if pf.true_colour else COLOUR_MAP_FORMAT


def colour_map_palette() -> list[tuple[int, int, int]]:
    """The 256 16-bit (r, g, b) colours of the fixed palette, indexed as :data:`COLOUR_MAP_FORMAT` lays out."""
    cm = COLOUR_MAP_FORMAT
    out = []
    for index in range(256):
        r = (index >> cm.red_shift) & cm.red_max
        g = (index >> cm.green_shift) & cm.green_max
        b = (index >> cm.blue_shift) & cm.blue_max
        out.append(
            (
                round(r * 65535 / cm.red_max),
                round(g * 65535 / cm.green_max),
                round(b * 65535 / cm.blue_max),
            )
        )
    return out


def set_colour_map_entries_message(first: int = 0) -> bytes:
    """SetColourMapEntries (rfbproto 7.6.2) carrying the whole fixed palette."""
    palette = colour_map_palette()
    head = struct.pack(">BxHH", 1, first, len(palette))
    return head + b"".join(struct.pack(">HHH", *c) for c in palette)


_VALUE_DTYPES: dict[int, type[np.unsignedinteger]] = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def _channel_table(mx: int, shift: int, dtype: type[np.unsignedinteger]) -> npt.NDArray[np.generic]:
    """For every 8-bit channel value v, ``round(v * max / 255) << shift`` (the scaled, placed channel)."""
    v = np.arange(256, dtype=np.uint64)
    scaled = (v * mx + 127) // 255
    return (scaled << np.uint64(shift)).astype(dtype)


class PixelConverter:
    """Converts BGRX pixels into one true-colour client format. Get one with :func:`converter_for`."""

    def __init__(self, pf: PixelFormat) -> None:
        if not pf.true_colour:
            raise ValueError("PixelConverter needs a true-colour format; use effective_format()")
        pf.validate()
        self.pf = pf
        bpp = pf.bits_per_pixel
        self.value_dtype: type[np.unsignedinteger] = _VALUE_DTYPES[bpp]
        self.wire_dtype = np.dtype(self.value_dtype).newbyteorder(">" if pf.big_endian else "<")
        tb, tg, tr = (
            _channel_table(mx, shift, self.value_dtype)
            for mx, shift in (
                (pf.blue_max, pf.blue_shift),
                (pf.green_max, pf.green_shift),
                (pf.red_max, pf.red_shift),
            )
        )
        # two lookups per pixel: one indexed by the 16-bit (green, blue) pair as it lies in memory, one by red
        pair = np.arange(65536, dtype=np.uint32)
        lo, hi = (pair & 0xFF, pair >> 8) if sys.byteorder == "little" else (pair >> 8, pair & 0xFF)
        self._gb_table = tb[lo] | tg[hi]
        self._r_table = tr
        # 32 bpp with 8-bit channels on byte boundaries: whole bytes move, no arithmetic
        self._byte_positions: tuple[int, int, int] | None = None
        if bpp == 32 and pf.red_max == pf.green_max == pf.blue_max == 255:
            shifts = (pf.blue_shift, pf.green_shift, pf.red_shift)
            if all(s % 8 == 0 for s in shifts) and len(set(shifts)) == 3:
                b, g, r = ((3 - s // 8) if pf.big_endian else s // 8 for s in shifts)
                self._byte_positions = (b, g, r)
        self.is_native = self._byte_positions == (0, 1, 2)
        self._is_swapped = self._byte_positions == (3, 2, 1)

    def convert(self, pixels: npt.NDArray[np.uint8]) -> bytes:
        """(h, w, 4) BGRX pixels (any view) → the client's bytes, row-major."""
        if self.is_native:
            return np.ascontiguousarray(pixels).tobytes()
        if self._is_swapped:
            return np.ascontiguousarray(pixels).view(np.uint32).byteswap().tobytes()
        if self._byte_positions is not None:
            return self._move_bytes(pixels).tobytes()
        return self.to_bytes(self.convert_array(pixels))

    def _move_bytes(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        assert self._byte_positions is not None
        out = np.zeros(pixels.shape, np.uint8)
        for src, dst in enumerate(self._byte_positions):
            out[:, :, dst] = pixels[:, :, src]
        return out

    def convert_array(self, pixels: npt.NDArray[np.uint8]) -> PixelValues:
        """(h, w, 4) BGRX pixels → an (h, w) array of pixel values (native-endian integers)."""
        if self.is_native:
            return np.ascontiguousarray(pixels).view(np.uint32)[:, :, 0].copy()
        if self._byte_positions is not None:
            return self._move_bytes(pixels).view(self.wire_dtype)[:, :, 0].astype(np.uint32)
        pairs = np.ascontiguousarray(pixels).view(np.uint16)[:, :, 0]
        out = np.take(self._gb_table, pairs)
        out |= np.take(self._r_table, pixels[:, :, 2])
        return out

    def to_bytes(self, values: PixelValues) -> bytes:
        """Pixel values → wire bytes in the client's byte order."""
        return np.ascontiguousarray(values, dtype=self.wire_dtype).tobytes()


@functools.lru_cache(maxsize=64)
def converter_for(pf: PixelFormat) -> PixelConverter:
    """The (cached) converter for a true-colour format."""
    return PixelConverter(pf)


def decode_pixels(pf: PixelFormat, data: bytes, w: int, h: int) -> npt.NDArray[np.uint8]:
    """Client-format bytes → (h, w, 3) RGB, each channel scaled back to 8 bits (for tests and test clients)."""
    dtype = np.dtype({8: np.uint8, 16: np.uint16, 32: np.uint32}[pf.bits_per_pixel]).newbyteorder(
        ">" if pf.big_endian else "<"
    )
    values = np.frombuffer(data, dtype=dtype, count=w * h).astype(np.uint64).reshape(h, w)
    out = np.empty((h, w, 3), np.uint8)
    for i, (mx, shift) in enumerate(
        ((pf.red_max, pf.red_shift), (pf.green_max, pf.green_shift), (pf.blue_max, pf.blue_shift))
    ):
        c = (values >> np.uint64(shift)) & np.uint64(mx)
        out[:, :, i] = ((c * 255 * 2 + mx) // (2 * mx)).astype(np.uint8)
    return out
