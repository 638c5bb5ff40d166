"""A small, independent Tight / TightPNG / JPEG decoder for the encoder tests, written from rfbproto's text
("Tight Encoding", "Tight PNG Encoding", "JPEG Encoding") and nothing else, plus tests of the decoder itself.

Other test modules import it (``from test_tight_reference import ...``). It keeps a framebuffer of RGB
pixels and four zlib inflaters for the life of one "connection", like a real client.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from pyvnc.protocol.pixelformat import PixelFormat, decode_pixels

CORPUS = Path("/work/shared/corpus")
if not CORPUS.is_dir():  # CI: shared/ sits beside the clone
    CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CORPUS_NAMES = ("terminal", "webpage", "desktop", "photo", "noise")

_corpus_cache: dict[str, NDArray[np.uint8]] = {}


def corpus_frame(name: str) -> NDArray[np.uint8]:
    """A corpus image as a read-only (1080, 1920, 4) BGRX frame (skips the test when the corpus is absent)."""
    if name not in _corpus_cache:
        path = CORPUS / f"{name}.png"
        if not path.is_file():
            pytest.skip(f"corpus image {path} missing")
        rgb = np.asarray(Image.open(path).convert("RGB"))
        frame = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
        frame[..., :3] = rgb[..., ::-1]
        frame.flags.writeable = False
        _corpus_cache[name] = frame
    return _corpus_cache[name]


def frame_rgb(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The RGB pixels of a BGRX frame."""
    return np.ascontiguousarray(frame[..., 2::-1])


def is_tpixel(pf: PixelFormat) -> bool:
    """rfbproto's TPIXEL condition, restated independently of the encoder's helper."""
    return (
        pf.true_colour
        and pf.bits_per_pixel == 32
        and pf.depth == 24
        and (pf.red_max, pf.green_max, pf.blue_max) == (255, 255, 255)
    )


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Peak signal-to-noise ratio of two RGB images, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class DecodeError(AssertionError):
    """The byte stream broke the protocol."""


def _ungradient(d: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Invert the GradientFilter: V = D + clamp(left + up - upleft) (mod 256), outside pixels 0.

    Each pixel depends only on pixels of earlier anti-diagonals, so whole anti-diagonals are done at once.
    """
    h, w, _ = d.shape
    v = np.zeros((h + 1, w + 1, 3), dtype=np.int32)  # one row and column of zeros in front
    dd = d.astype(np.int32)
    for s in range(h + w - 1):
        ys = np.arange(max(0, s - w + 1), min(h, s + 1))
        xs = s - ys
        pred = v[ys, xs + 1] + v[ys + 1, xs] - v[ys, xs]
        np.clip(pred, 0, 255, out=pred)
        v[ys + 1, xs + 1] = (dd[ys, xs] + pred) & 0xFF
    return v[1:, 1:].astype(np.uint8)


class TightReference:
    """Decodes Tight (7), TightPNG (-260) and JPEG (21) rectangles into an RGB framebuffer."""

    def __init__(self, pixel_format: PixelFormat, width: int, height: int) -> None:
        self.pf = pixel_format
        self.fb = np.zeros((height, width, 3), dtype=np.uint8)
        self.inflaters = [zlib.decompressobj() for _ in range(4)]
        self.lossy = np.zeros((height, width), dtype=bool)  # pixels that came from JPEG
        self.stats: dict[str, int] = {}
        self._data = b""
        self._pos = 0

    # --- reading ----------------------------------------------------------------------------------------

    def _read(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise DecodeError(f"rectangle ends early: wanted {n} bytes at {self._pos} of {len(self._data)}")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def _u8(self) -> int:
        return self._read(1)[0]

    def _compact(self) -> int:
        b = self._u8()
        n = b & 0x7F
        if b & 0x80:
            b = self._u8()
            n |= (b & 0x7F) << 7
            if b & 0x80:
                n |= self._u8() << 14
        return n

    def _tpixel_size(self) -> int:
        return 3 if is_tpixel(self.pf) else self.pf.bits_per_pixel // 8

    def _tpixels_to_rgb(self, data: bytes, w: int, h: int) -> NDArray[np.uint8]:
        if is_tpixel(self.pf):
            return np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3)
        return decode_pixels(self.pf, data, w, h)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    # --- decoding ---------------------------------------------------------------------------------------

    def feed(self, rects: Iterable[bytes]) -> None:
        """Decode encoded rectangles (each starting with its 12-byte header), in order."""
        for rect in rects:
            self._data, self._pos = rect, 0
            x, y, w, h = (int.from_bytes(self._read(2), "big") for _ in range(4))
            encoding = int.from_bytes(self._read(4), "big", signed=True)
            if x + w > self.fb.shape[1] or y + h > self.fb.shape[0]:
                raise DecodeError(f"rectangle {x},{y} {w}x{h} outside the framebuffer")
            if encoding == 21:
                self._put(x, y, self._image(self._read(len(rect) - 12), w, h, "JPEG"), lossy=True)
                self._count("jpeg21")
            elif encoding in (7, -260):
                if w > 2048:
                    raise DecodeError(f"Tight rectangle {w} pixels wide")
                self._tight(x, y, w, h, png=encoding == -260)
            else:
                raise DecodeError(f"unexpected encoding {encoding}")
            if self._pos != len(rect):
                raise DecodeError(f"{len(rect) - self._pos} bytes left over in a rectangle")

    def _put(self, x: int, y: int, rgb: NDArray[np.uint8], lossy: bool = False) -> None:
        h, w = rgb.shape[:2]
        self.fb[y : y + h, x : x + w] = rgb
        self.lossy[y : y + h, x : x + w] = lossy

    @staticmethod
    def _image(data: bytes, w: int, h: int, fmt: str) -> NDArray[np.uint8]:
        img = Image.open(io.BytesIO(data))
        if img.format != fmt:
            raise DecodeError(f"expected a {fmt} image, got {img.format}")
        if img.size != (w, h):
            raise DecodeError(f"{fmt} image is {img.size}, rectangle {w}x{h}")
        return np.asarray(img.convert("RGB"))

    def _tight(self, x: int, y: int, w: int, h: int, png: bool) -> None:
        ctl = self._u8()
        for i in range(4):  # reset bits apply whatever the compression type (rfbproto [NOTE1])
            if ctl & (1 << i):
                self.inflaters[i] = zlib.decompressobj()
                self._count(f"reset{i}")
        kind = ctl >> 4
        if kind == 0x8:  # FillCompression
            rgb = self._tpixels_to_rgb(self._read(self._tpixel_size()), 1, 1)
            self._put(x, y, np.broadcast_to(rgb, (h, w, 3)))
            self._count("fill")
        elif kind == 0x9:  # JpegCompression
            if not is_tpixel(self.pf):
                raise DecodeError("JPEG for a non-TPIXEL format")
            self._put(x, y, self._image(self._read(self._compact()), w, h, "JPEG"), lossy=True)
            self._count("jpeg")
        elif kind == 0xA and png:  # PngCompression
            self._put(x, y, self._image(self._read(self._compact()), w, h, "PNG"))
            self._count("png")
        elif kind & 0x8 == 0 and not png:  # BasicCompression
            self._basic(x, y, w, h, kind)
        else:
            raise DecodeError(f"invalid compression-control {ctl:#04x}")

    def _data_block(self, stream: int, size: int) -> bytes:
        if size < 12:
            return self._read(size)
        z = self._read(self._compact())
        out = self.inflaters[stream].decompress(z)
        if len(out) != size or self.inflaters[stream].unconsumed_tail:
            raise DecodeError(f"stream {stream} inflated {len(out)} bytes, expected {size}")
        return out

    def _basic(self, x: int, y: int, w: int, h: int, kind: int) -> None:
        stream = kind & 0x3
        filter_id = self._u8() if kind & 0x4 else 0
        tsize = self._tpixel_size()
        if filter_id == 0:
            rgb = self._tpixels_to_rgb(self._data_block(stream, w * h * tsize), w, h)
            self._count("copy")
        elif filter_id == 1:
            n = self._u8() + 1
            if n < 2:
                raise DecodeError("palette of one colour")
            palette = self._tpixels_to_rgb(self._read(n * tsize), n, 1).reshape(n, 3)
            if n == 2:
                row = (w + 7) // 8
                bits = np.frombuffer(self._data_block(stream, row * h), dtype=np.uint8).reshape(h, row)
                idx = np.unpackbits(bits, axis=1)[:, :w]
                self._count("mono")
            else:
                idx = np.frombuffer(self._data_block(stream, w * h), dtype=np.uint8).reshape(h, w)
                if int(idx.max()) >= n:
                    raise DecodeError("palette index out of range")
                self._count("indexed")
            rgb = palette[idx]
        elif filter_id == 2:
            if not is_tpixel(self.pf):
                raise DecodeError("gradient filter for a non-TPIXEL format")
            d = np.frombuffer(self._data_block(stream, w * h * 3), dtype=np.uint8).reshape(h, w, 3)
            rgb = _ungradient(d)
            self._count("gradient")
        else:
            raise DecodeError(f"invalid filter id {filter_id}")
        self._put(x, y, rgb)


# --- tests of the reference decoder itself ---------------------------------------------------------------


def test_ungradient_inverts_the_spec_formula() -> None:
    rng = np.random.default_rng(3)
    v = rng.integers(0, 256, (7, 9, 3)).astype(np.int32)
    padded = np.zeros((8, 10, 3), dtype=np.int32)
    padded[1:, 1:] = v
    pred = np.clip(padded[1:, :-1] + padded[:-1, 1:] - padded[:-1, :-1], 0, 255)
    d = ((v - pred) & 0xFF).astype(np.uint8)
    assert np.array_equal(_ungradient(d), v.astype(np.uint8))


def test_reference_reads_a_hand_made_fill_and_copy() -> None:
    pf = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)
    ref = TightReference(pf, 4, 4)
    fill = bytes.fromhex("0000 0000 0004 0004 00000007") + b"\x80\x01\x02\x03"
    copy = bytes.fromhex("0001 0001 0003 0001 00000007") + b"\x00" + bytes(range(9))
    ref.feed([fill, copy])
    assert ref.fb[0, 0].tolist() == [1, 2, 3]
    assert ref.fb[1, 1:4].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(DecodeError):
        ref.feed([bytes.fromhex("0000 0000 0001 0001 00000007") + b"\xb0"])
