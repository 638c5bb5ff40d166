"""A small, independent reference decoder for Raw, RRE, Hextile, Zlib and ZRLE, written from rfbproto.

Slow and simple on purpose (plain Python loops): it decodes the pixel formats noVNC cannot (8 and 16 bpp,
big-endian, 3-byte CPIXELs in the high bytes) in tests. It keeps one zlib stream per encoding, as a client
does, so a :class:`RefDecoder` decodes a whole sequence of rectangles of one connection.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import NDArray

from pyvnc.protocol.pixelformat import PixelFormat, decode_pixels


class Reader:
    """Sequential reads from a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"truncated: need {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def at_end(self) -> bool:
        return self.pos == len(self.data)


class RefDecoder:
    """Decodes encoded rectangles (with headers) into an RGB framebuffer for one pixel format."""

    def __init__(self, pf: PixelFormat, width: int, height: int) -> None:
        self.pf = pf
        self.bpp = pf.bits_per_pixel // 8
        self.fb = np.zeros((height, width, 3), np.uint8)
        self.zlib = zlib.decompressobj()
        self.zrle = zlib.decompressobj()
        self.cpixel = self._cpixel_layout()
        #: every Hextile subencoding mask and ZRLE subencoding seen, in order (for coverage assertions)
        self.hextile_masks: list[int] = []
        self.zrle_subencodings: list[int] = []

    def _cpixel_layout(self) -> tuple[int, int]:
        """(size, offset) of a ZRLE CPIXEL inside a PIXEL's wire bytes (rfbproto 7.7.6)."""
        pf = self.pf
        mask = (pf.red_max << pf.red_shift) | (pf.green_max << pf.green_shift) | (pf.blue_max << pf.blue_shift)
        if pf.true_colour and pf.bits_per_pixel == 32 and pf.depth <= 24:
            if mask < 1 << 24:
                return 3, (1 if pf.big_endian else 0)
            if mask & 0xFF == 0:
                return 3, (0 if pf.big_endian else 1)
        return self.bpp, 0

    def colour(self, pixel: bytes) -> NDArray[np.uint8]:
        return decode_pixels(self.pf, pixel, 1, 1)[0, 0]

    def cpixel_to_pixel(self, cp: bytes) -> bytes:
        size, off = self.cpixel
        if size == self.bpp:
            return cp
        return b"\0" * off + cp + b"\0" * (self.bpp - size - off)

    def decode(self, data: bytes) -> None:
        """Decode a concatenation of encoded rectangles (each starting with its 12-byte header)."""
        r = Reader(data)
        while not r.at_end():
            x, y, w, h, enc = struct.unpack(">HHHHi", r.take(12))
            if enc == 0:
                self.fb[y : y + h, x : x + w] = decode_pixels(self.pf, r.take(w * h * self.bpp), w, h)
            elif enc == 2:
                self._rre(r, x, y, w, h)
            elif enc == 5:
                self._hextile(r, x, y, w, h)
            elif enc == 6:
                raw = self.zlib.decompress(r.take(r.u32()))
                assert len(raw) == w * h * self.bpp
                self.fb[y : y + h, x : x + w] = decode_pixels(self.pf, raw, w, h)
            elif enc == 16:
                self._zrle(r, x, y, w, h)
            else:
                raise ValueError(f"encoding {enc} not supported")

    def _rre(self, r: Reader, x: int, y: int, w: int, h: int) -> None:
        n = r.u32()
        self.fb[y : y + h, x : x + w] = self.colour(r.take(self.bpp))
        for _ in range(n):
            c = self.colour(r.take(self.bpp))
            sx, sy, sw, sh = r.u16(), r.u16(), r.u16(), r.u16()
            assert sx + sw <= w and sy + sh <= h, "RRE subrectangle outside its rectangle"
            self.fb[y + sy : y + sy + sh, x + sx : x + sx + sw] = c

    def _hextile(self, r: Reader, x: int, y: int, w: int, h: int) -> None:
        bg: bytes | None = None
        fg: bytes | None = None
        for ty in range(y, y + h, 16):
            for tx in range(x, x + w, 16):
                tw, th = min(16, x + w - tx), min(16, y + h - ty)
                mask = r.u8()
                self.hextile_masks.append(mask)
                assert mask < 32, f"bad hextile subencoding {mask}"
                if mask & 1:
                    self.fb[ty : ty + th, tx : tx + tw] = decode_pixels(self.pf, r.take(tw * th * self.bpp), tw, th)
                    bg = fg = None  # undefined after a Raw tile (rfbproto 7.7.4)
                    continue
                if mask & 2:
                    bg = r.take(self.bpp)
                if mask & 4:
                    assert not mask & 16, "ForegroundSpecified with SubrectsColoured"
                    fg = r.take(self.bpp)
                assert bg is not None, "background not defined"
                self.fb[ty : ty + th, tx : tx + tw] = self.colour(bg)
                if mask & 8:
                    for _ in range(r.u8()):
                        if mask & 16:
                            c = r.take(self.bpp)
                        else:
                            assert fg is not None, "foreground not defined"
                            c = fg
                        xy, wh = r.u8(), r.u8()
                        sx, sy, sw, sh = xy >> 4, xy & 15, (wh >> 4) + 1, (wh & 15) + 1
                        assert sx + sw <= tw and sy + sh <= th, "hextile subrect outside its tile"
                        self.fb[ty + sy : ty + sy + sh, tx + sx : tx + sx + sw] = self.colour(c)
                if mask & 16:
                    fg = None  # not carried over after SubrectsColoured

    def _zrle(self, r: Reader, x: int, y: int, w: int, h: int) -> None:
        data = Reader(self.zrle.decompress(r.take(r.u32())))
        size = self.cpixel[0]
        for ty in range(y, y + h, 64):
            for tx in range(x, x + w, 64):
                tw, th = min(64, x + w - tx), min(64, y + h - ty)
                sub = data.u8()
                self.zrle_subencodings.append(sub)
                if sub == 0:
                    px = [self.cpixel_to_pixel(data.take(size)) for _ in range(tw * th)]
                elif sub == 1:
                    px = [self.cpixel_to_pixel(data.take(size))] * (tw * th)
                elif 2 <= sub <= 16:
                    pal = [self.cpixel_to_pixel(data.take(size)) for _ in range(sub)]
                    bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                    px = []
                    for _ in range(th):
                        row = data.take((tw * bits + 7) // 8)
                        for i in range(tw):
                            byte = row[(i * bits) // 8]
                            shift = 8 - bits - (i * bits) % 8
                            idx = (byte >> shift) & ((1 << bits) - 1)
                            assert idx < sub, "packed palette index out of range"
                            px.append(pal[idx])
                elif sub == 128 or sub >= 130:
                    pal = [self.cpixel_to_pixel(data.take(size)) for _ in range(sub - 128)]
                    px = []
                    while len(px) < tw * th:
                        if sub == 128:
                            p = self.cpixel_to_pixel(data.take(size))
                            long = True
                        else:
                            i = data.u8()
                            long = bool(i & 128)
                            assert (i & 127) < len(pal), "palette RLE index out of range"
                            p = pal[i & 127]
                        n = 1
                        if long:
                            while True:
                                b = data.u8()
                                n += b
                                if b != 255:
                                    break
                        px.extend([p] * n)
                    assert len(px) == tw * th, "ZRLE run past the end of its tile"
                else:
                    raise ValueError(f"bad ZRLE subencoding {sub}")
                self.fb[ty : ty + th, tx : tx + tw] = decode_pixels(self.pf, b"".join(px), tw, th)
        assert data.at_end(), "ZRLE data left over"
