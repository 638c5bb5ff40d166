"""Pixel formats (rfbproto "ServerInit": PIXEL_FORMAT) and vectorised conversion from the server's frames.

Frames inside the server are (H, W, 4) uint8 arrays in BGRX byte order: read as a little-endian 32-bit word a
pixel is 0x00RRGGBB, which is exactly :data:`NATIVE`. Byte 3 is unused and frame sources keep it 0; the
plain-copy paths below pass it through unchanged, every other path ignores it.

A client may ask (rfbproto "SetPixelFormat") for any true-colour format of 8, 16 or 32 bits per pixel: any
depth, channel maxima of the form 2^n - 1 (up to 16 bits), any shifts, either byte order.
:class:`PixelConverter` turns frames into it with numpy only, never a per-pixel Python loop:

- the native format is a plain copy;
- 32 bpp formats whose 8-bit channels sit on byte boundaries only move whole bytes (a byteswap and/or a
  shift of the 32-bit word for the common orders such as RGBX and XBGR, a column gather for the rest);
- everything else goes through two lookup tables per pixel: one indexed by the 16-bit (blue, green) pair as it
  lies in memory, one by red, OR'ed together.

A client asking for a colour-map format gets the fixed 3-3-2 palette of :data:`COLOUR_MAP_FORMAT`, sent with
SetColourMapEntries (rfbproto "SetColourMapEntries"); its pixels are then encoded as if that format were true
colour (see :func:`effective_format`).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..errors import ProtocolError

#: pixel values in a client's format, one per pixel, as native-endian integers of the format's width
PixelValues = npt.NDArray[np.uint8] | npt.NDArray[np.uint16] | npt.NDArray[np.uint32]

#: a BGRX pixel read as one little-endian 32-bit word: 0xXXRRGGBB
_WORD = np.dtype("<u4")
#: the first two bytes of a BGRX pixel read as one little-endian 16-bit word: 0xGGBB
_PAIR = np.dtype("<u2")


@dataclass(frozen=True)
class PixelFormat:
    """A PIXEL_FORMAT structure (rfbproto "ServerInit"; also carried by "SetPixelFormat").

    Instances are immutable and hashable, so they key caches such as :func:`converter_for`.
    """

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

    #: bits-per-pixel, depth, big-endian-flag, true-colour-flag, red/green/blue-max (U16),
    #: red/green/blue-shift (U8), 3 bytes of padding (rfbproto "ServerInit", PIXEL_FORMAT): 16 bytes
    STRUCT: ClassVar[struct.Struct] = struct.Struct(">BBBBHHHBBB3x")

    @classmethod
    def parse(cls, data: bytes) -> PixelFormat:
        """Parse the 16-byte wire form (from SetPixelFormat). Any non-zero flag byte means true."""
        bpp, depth, be, tc, rm, gm, bm, rs, gs, bs = cls.STRUCT.unpack(data)
        return cls(bpp, depth, bool(be), bool(tc), rm, gm, bm, rs, gs, bs)

    def pack(self) -> bytes:
        """The 16-byte wire form (for ServerInit); flags are written as 0 or 1."""
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
        """Bytes of one pixel on the wire (1, 2 or 4 for a valid format)."""
        return self.bits_per_pixel // 8

    def validate(self) -> None:
        """Raise :class:`ProtocolError` for a format a client must not set; call it on every SetPixelFormat.

        rfbproto "ServerInit": bits-per-pixel is 8, 16 or 32 and at least depth; each max is 2^n - 1. We also
        require every channel to fit in the pixel and serve colour maps at 8 bits per pixel only. Overlapping
        channels are odd but legal, so they are accepted.
        """
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
                raise ProtocolError(f"pixel format: {name}-max must be 2^n - 1 and non-zero, got {mx}")
            if shift > 31:
                raise ProtocolError(f"pixel format: {name}-shift must be at most 31, got {shift}")
            if (mx << shift) >> bpp:
                raise ProtocolError(f"pixel format: {name} (max {mx}, shift {shift}) does not fit {bpp} bits")


#: the server's own format (sent in ServerInit): the BGRX memory layout, so converting to it is a plain copy
NATIVE = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)

#: how colour-map clients are served: pixel values are palette indices laid out as 3-3-2 bits of red, green,
#: blue, and the palette (:func:`colour_map_palette`) makes each index show the colour it encodes
COLOUR_MAP_FORMAT = PixelFormat(8, 8, False, True, 7, 7, 3, 5, 2, 0)


def effective_format(pf: PixelFormat) -> PixelFormat:
    """The true-colour format pixels are actually encoded in for a client that asked for ``pf``.

    A true-colour format is its own answer; a colour-map format (true-colour-flag false) is served as
    :data:`COLOUR_MAP_FORMAT`, after the session has sent :func:`set_colour_map_entries_message`.
    """
    return pf if pf.true_colour else COLOUR_MAP_FORMAT


@functools.cache
def _palette() -> tuple[tuple[int, int, int], ...]:
    cm = COLOUR_MAP_FORMAT
    out = []
    for index in range(256):
        channels = []
        for mx, shift in ((cm.red_max, cm.red_shift), (cm.green_max, cm.green_shift), (cm.blue_max, cm.blue_shift)):
            v = (index >> shift) & mx
            channels.append((v * 65535 * 2 + mx) // (2 * mx))  # round(v * 65535 / mx), exactly
        out.append((channels[0], channels[1], channels[2]))
    return tuple(out)


def colour_map_palette() -> list[tuple[int, int, int]]:
    """The 256 16-bit (red, green, blue) colours of the fixed palette.

    ``palette[index]`` is the colour ``index`` stands for under :data:`COLOUR_MAP_FORMAT`: each channel value
    v of max m scaled to round(v * 65535 / m).
    """
    return list(_palette())


#: SetColourMapEntries header: message-type, padding, first-colour, number-of-colours
#: (rfbproto "SetColourMapEntries"); each colour follows as three U16: red, green, blue
SET_COLOUR_MAP_ENTRIES_HEADER = struct.Struct(">BxHH")
SET_COLOUR_MAP_ENTRIES_TYPE = 1


@functools.lru_cache(maxsize=4)
def set_colour_map_entries_message(first: int = 0) -> bytes:
    """The whole SetColourMapEntries server message carrying the 256-entry fixed palette.

    Send it after a client sets a colour-map pixel format (and again if it sets one anew: rfbproto
    "SetPixelFormat" empties the client's colour map), before any update in that format.
    """
    palette = _palette()
    if not 0 <= first <= 65536 - len(palette):
        raise ValueError(f"first colour {first} leaves no room for {len(palette)} entries")
    head = SET_COLOUR_MAP_ENTRIES_HEADER.pack(SET_COLOUR_MAP_ENTRIES_TYPE, first, len(palette))
    return head + np.array(palette, dtype=">u2").tobytes()


_VALUE_DTYPES: dict[int, type[np.unsignedinteger]] = {8: np.uint8, 16: np.uint16, 32: np.uint32}

#: how to move a BGRX word's bytes with whole-word operations: (byteswap first?, shift in bits). Without a
#: byteswap the shift is to the left, after one it is to the right.
_WordPlan = tuple[bool, int]


def _word_plan(positions: tuple[int, int, int]) -> _WordPlan | None:
    """A :data:`_WordPlan` taking blue, green, red (bytes 0, 1, 2 of the word) to ``positions``, if one exists.

    ``positions`` are byte indices in a little-endian 32-bit word. In order (b, b+1, b+2) is a left shift by
    whole bytes; reversed (b, b-1, b-2) is a byteswap followed by a right shift. Other orders return None.
    """
    b, g, r = positions
    if (g, r) == (b + 1, b + 2) and b in (0, 1):
        return (False, 8 * b)
    if (g, r) == (b - 1, b - 2) and b in (2, 3):
        return (True, 8 * (3 - b))
    return None


def _apply_word_plan(words: npt.NDArray[np.uint32], plan: _WordPlan, mask: int | None) -> npt.NDArray[np.uint32]:
    """A new C-contiguous array of ``words`` moved as ``plan`` says, then AND'ed with ``mask`` if one is given.

    Never returns (a view of) ``words`` itself, which is usually a view of a shared frame.
    """
    swap, shift = plan
    out: npt.NDArray[np.uint32]
    if swap:
        # a byteswap: store the values with the other byte order and read them back (3x faster than byteswap())
        out = words.astype(words.dtype.newbyteorder()).view(words.dtype)
        if shift:
            out >>= np.uint32(shift)
        if mask is not None:
            out &= np.uint32(mask)
    elif shift:
        out = words << np.uint32(shift)
        if mask is not None:
            out &= np.uint32(mask)
    else:
        out = words & np.uint32(mask) if mask is not None else np.array(words, order="C")
    return out


def _channel_table(mx: int, shift: int, dtype: type[np.unsignedinteger]) -> npt.NDArray[np.unsignedinteger]:
    """For every 8-bit channel value v, ``(v * max + 127) // 255 << shift``: the scaled channel in place."""
    v = np.arange(256, dtype=np.uint64)
    scaled = (v * np.uint64(mx) + np.uint64(127)) // np.uint64(255)
    return (scaled << np.uint64(shift)).astype(dtype)


def _check_pixels(pixels: npt.NDArray[np.uint8]) -> None:
    if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
        raise ValueError(f"expected (h, w, 4) uint8 BGRX pixels, got shape {pixels.shape} of {pixels.dtype}")


def _words(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """(h, w) little-endian words of BGRX pixels; a view, without copying, whenever each pixel is contiguous."""
    if pixels.strides[2] != 1:
        pixels = np.ascontiguousarray(pixels)
    words: npt.NDArray[np.uint32] = pixels.view(_WORD)[:, :, 0]
    return words


class PixelConverter:
    """Converts BGRX pixels into one true-colour client format; get one with :func:`converter_for`.

    All lookup tables and plans are built once here, so a converter is cheap to call per rectangle from any
    thread (it holds no mutable state).
    """

    def __init__(self, pf: PixelFormat) -> None:
        if not pf.true_colour:
            raise ValueError("PixelConverter needs a true-colour format; use effective_format()")
        pf.validate()
        self.pf = pf
        bpp = pf.bits_per_pixel
        #: the numpy type of :meth:`convert_array` values
        self.value_dtype: type[np.unsignedinteger] = _VALUE_DTYPES[bpp]
        #: the numpy dtype that serialises pixel values in the client's byte order
        self.wire_dtype = np.dtype(self.value_dtype).newbyteorder(">" if pf.big_endian else "<")
        #: whether converting is a plain copy (the client uses :data:`NATIVE`'s memory layout)
        self.is_native = False

        # bits of a pixel value that belong to a channel
        self._channel_mask = (
            (pf.red_max << pf.red_shift) | (pf.green_max << pf.green_shift) | (pf.blue_max << pf.blue_shift)
        )

        # 32 bpp with 8-bit channels on distinct byte boundaries: whole bytes move, no arithmetic.
        # Positions are byte indices of blue, green, red: in the pixel value (value_positions) and in a
        # little-endian word of the wire bytes (wire_positions).
        self._value_positions: tuple[int, int, int] | None = None
        self._wire_positions: tuple[int, int, int] | None = None
        self._value_plan: _WordPlan | None = None
        self._wire_plan: _WordPlan | None = None
        shifts = (pf.blue_shift, pf.green_shift, pf.red_shift)
        if (
            bpp == 32
            and pf.red_max == pf.green_max == pf.blue_max == 255
            and all(s % 8 == 0 for s in shifts)
            and len(set(shifts)) == 3
        ):
            b, g, r = (s // 8 for s in shifts)
            self._value_positions = (b, g, r)
            self._wire_positions = (3 - b, 3 - g, 3 - r) if pf.big_endian else (b, g, r)
            self._value_plan = _word_plan(self._value_positions)
            self._wire_plan = _word_plan(self._wire_positions)
            self.is_native = self._wire_positions == (0, 1, 2)
            return

        # otherwise lookup tables: value = gb[(green << 8) | blue] | r[red], built from per-channel tables
        tb, tg, tr = (
            _channel_table(mx, shift, self.value_dtype)
            for mx, shift in (
                (pf.blue_max, pf.blue_shift),
                (pf.green_max, pf.green_shift),
                (pf.red_max, pf.red_shift),
            )
        )
        pair = np.arange(65536, dtype=np.uint32)
        self._gb_table = tb[pair & 0xFF] | tg[pair >> 8]
        self._r_table = tr
        # the same tables with each entry already in wire byte order (OR commutes with a byteswap), so convert()
        # needs no separate swapping pass
        if self.wire_dtype.isnative or bpp == 8:
            self._gb_wire, self._r_wire = self._gb_table, self._r_table
        else:
            self._gb_wire, self._r_wire = self._gb_table.byteswap(), self._r_table.byteswap()

    def convert(self, pixels: npt.NDArray[np.uint8]) -> bytes:
        """(h, w, 4) BGRX pixels (any view of a frame) → h × w pixels in the client's format, row-major.

        This is what Raw and every encoder that sends client PIXELs put on the wire (rfbproto "Raw Encoding").
        """
        return self.convert_buffer(pixels).tobytes()

    def convert_buffer(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
        """:meth:`convert`'s bytes as a C-contiguous array, without the copy into a ``bytes`` object: for
        callers that copy it on anyway (Raw joins it to its header). It may be a view of ``pixels``."""
        _check_pixels(pixels)
        if self.is_native:
            return np.ascontiguousarray(pixels)
        if self._wire_positions is not None:
            if self._wire_plan is not None:
                moved = _apply_word_plan(_words(pixels), self._wire_plan, None)
                return np.ascontiguousarray(moved, dtype=_WORD)
            return self._move_bytes(pixels, self._wire_positions)
        pairs = pixels.view(_PAIR)[:, :, 0] if pixels.strides[2] == 1 else self._pairs(pixels)
        out = np.take(self._gb_wire, pairs)
        out |= np.take(self._r_wire, pixels[:, :, 2])
        return out

    def convert_array(self, pixels: npt.NDArray[np.uint8]) -> PixelValues:
        """(h, w, 4) BGRX pixels → a new (h, w) array of pixel values: native-endian uint8, uint16 or uint32.

        For encoders that work on pixel values (compare, count, pick colours); serialise with :meth:`to_bytes`.
        Only channel bits are ever set.
        """
        _check_pixels(pixels)
        if self._value_positions is not None:
            if self._value_plan is not None:
                # when nothing shifts byte 3 of the frame out of the word, mask it off
                mask = self._channel_mask if self._value_plan[1] == 0 else None
                return _apply_word_plan(_words(pixels), self._value_plan, mask).astype(np.uint32, copy=False)
            moved = self._move_bytes(pixels, self._value_positions)
            return moved.view(_WORD)[:, :, 0].astype(np.uint32, copy=False)
        pairs = pixels.view(_PAIR)[:, :, 0] if pixels.strides[2] == 1 else self._pairs(pixels)
        out = np.take(self._gb_table, pairs)
        out |= np.take(self._r_table, pixels[:, :, 2])
        return out

    def to_bytes(self, values: PixelValues) -> bytes:
        """Pixel values (from :meth:`convert_array`, any shape) → wire bytes in the client's byte order."""
        return np.ascontiguousarray(values, dtype=self.wire_dtype).tobytes()

    def decode(self, data: bytes, w: int, h: int) -> npt.NDArray[np.uint8]:
        """The inverse of :meth:`convert` up to quantisation: see :func:`decode_pixels`."""
        return decode_pixels(self.pf, data, w, h)

    @staticmethod
    def _pairs(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint16]:
        pairs: npt.NDArray[np.uint16] = np.ascontiguousarray(pixels).view(_PAIR)[:, :, 0]
        return pairs

    @staticmethod
    def _move_bytes(pixels: npt.NDArray[np.uint8], positions: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
        """A new (h, w, 4) array with blue, green, red at byte ``positions`` and zeros elsewhere."""
        out = np.zeros(pixels.shape, np.uint8)
        for src, dst in enumerate(positions):
            out[:, :, dst] = pixels[:, :, src]
        return out


@functools.lru_cache(maxsize=64)
def converter_for(pf: PixelFormat) -> PixelConverter:
    """The (cached, shared) converter for a true-colour format; raises like :class:`PixelConverter`."""
    return PixelConverter(pf)


def decode_pixels(pf: PixelFormat, data: bytes, w: int, h: int) -> npt.NDArray[np.uint8]:
    """Client-format bytes → (h, w, 3) RGB uint8, each channel scaled back to 8 bits with round(v * 255 / max).

    The inverse of :meth:`PixelConverter.convert`, exact for 8-bit (and wider) channels, within quantisation
    for narrower ones. For tests and our own test client; a colour-map format decodes through the fixed palette
    (:data:`COLOUR_MAP_FORMAT`). Bytes after the first ``w * h`` pixels are ignored.
    """
    pf = effective_format(pf)
    need = w * h * pf.bytes_per_pixel
    if len(data) < need:
        raise ValueError(f"{w}x{h} pixels need {need} bytes, got {len(data)}")
    dtype = np.dtype(_VALUE_DTYPES[pf.bits_per_pixel]).newbyteorder(">" if pf.big_endian else "<")
    values = np.frombuffer(data, dtype=dtype, count=w * h).astype(np.uint64).reshape(h, w)
    out = np.empty((h, w, 3), np.uint8)
    for i, (mx, shift) in enumerate(
        ((pf.red_max, pf.red_shift), (pf.green_max, pf.green_shift), (pf.blue_max, pf.blue_shift))
    ):
        c = (values >> np.uint64(shift)) & np.uint64(mx)
        # round(c * 255 / mx) with integers; mx is odd, so there is never a tie to break
        out[:, :, i] = ((c * np.uint64(510) + np.uint64(mx)) // np.uint64(2 * mx)).astype(np.uint8)
    return out
