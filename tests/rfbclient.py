"""A small RFB client for tests: handshake, pixel formats, Raw decoding, input.

It exists to check what vncdotool cannot set (8/16 bpp, big-endian, colour maps, several versions). It decodes
only Raw, CopyRect and the pseudo-encodings, with its own code written from the spec, and Open H.264 through
:mod:`h264view` (libavcodec's decoder).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from Crypto.Cipher import DES
from h264view import H264View

from pyvnc import PushSource
from pyvnc.protocol.pixelformat import PixelFormat, decode_pixels


def _vnc_des_key(password: str) -> bytes:
    key = password.encode("latin-1")[:8].ljust(8, b"\0")
    return bytes(int(f"{b:08b}"[::-1], 2) for b in key)


class AuthError(Exception):
    pass


@dataclass
class UpdateResult:
    rects: list[tuple[int, int, int, int, int]] = field(default_factory=list)


class RFBClient:
    """A minimal asyncio RFB client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.width = 0
        self.height = 0
        self.name = ""
        self.server_pf: PixelFormat | None = None
        self.pf: PixelFormat | None = None
        self.fb: npt.NDArray[np.uint8] = np.zeros((0, 0, 3), np.uint8)
        self.h264 = H264View(self.fb)
        self.palette: dict[int, tuple[int, int, int]] = {}
        self.bells = 0
        self.cut_texts: list[bytes] = []
        self.version = b""
        self.cursor: tuple[int, int, int, int, bytes, bytes] | None = None
        #: every QEMU LED State the server sent, in order
        self.leds: list[int] = []
        #: pseudo-encodings the server confirmed with an empty rectangle (QEMU key events, mouse buttons)
        self.confirmed: set[int] = set()
        #: every ExtendedDesktopSize rectangle: reason, status, width, height and the screens (id, x, y, w, h,
        #: flags)
        self.layouts: list[tuple[int, int, int, int, list[tuple[int, ...]]]] = []
        #: answers to our fence requests: flags, payload and when they came (loop time)
        self.fence_answers: list[tuple[int, bytes, float]] = []
        self.tls_host = ""
        self.security_types = b""
        self.vencrypt_subtypes: tuple[int, ...] = ()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        password: str | None = None,
        version: bytes = b"RFB 003.008\n",
        shared: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> RFBClient:
        """Connect and shake hands; with ``tls``, through VeNCrypt (the subtype the server offers first),
        verifying the server's certificate with ``tls`` for host ``host``."""
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client.tls_host = host
        await client._handshake(password, version, shared, tls)
        return client

    async def read(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), 10)

    async def _reason(self) -> str:
        (n,) = struct.unpack(">I", await self.read(4))
        return (await self.read(n)).decode("utf-8", "replace")

    async def _vencrypt(self, tls: ssl.SSLContext) -> int:
        """VeNCrypt 0.2 up to TLS (rfbproto "VeNCrypt"); returns the subtype, whose authentication follows."""
        assert await self.read(2) == b"\x00\x02"
        self.writer.write(b"\x00\x02")
        ok, n = await self.read(2)
        assert ok == 0
        subtypes = struct.unpack(f">{n}I", await self.read(4 * n))
        self.vencrypt_subtypes = subtypes
        self.writer.write(struct.pack(">I", subtypes[0]))
        assert await self.read(1) == b"\x01"
        await self.writer.start_tls(tls, server_hostname=self.tls_host)
        return subtypes[0]

    async def _handshake(self, password: str | None, version: bytes, shared: bool, tls: ssl.SSLContext | None) -> None:
        server_version = await self.read(12)
        assert server_version == b"RFB 003.008\n", server_version
        self.writer.write(version)
        minor = int(version[8:11])
        # rfbproto 7.1.1: the server treats unknown minor versions below 3.7 as 3.3
        version = b"RFB 003.003\n" if minor < 7 else b"RFB 003.007\n" if minor == 7 else b"RFB 003.008\n"
        self.version = version
        if version == b"RFB 003.003\n":
            (sectype,) = struct.unpack(">I", await self.read(4))
            if sectype == 0:
                raise AuthError(await self._reason())
        else:
            (n,) = await self.read(1)
            if n == 0:
                raise AuthError(await self._reason())
            types = await self.read(n)
            self.security_types = types
            sectype = 19 if tls is not None else 2 if 2 in types else types[0]
            self.writer.write(bytes([sectype]))
        # a SecurityResult follows VNC Authentication, anything in 3.8, and VeNCrypt (whatever is inside)
        result_due = sectype in (2, 19) or version == b"RFB 003.008\n"
        if sectype == 19:
            assert tls is not None, "the server offers only VeNCrypt"
            sectype = {261: 2, 260: 1}[await self._vencrypt(tls)]
        if sectype == 2:
            if password is None:
                raise AuthError("server wants a password")
            challenge = await self.read(16)
            self.writer.write(DES.new(_vnc_des_key(password), DES.MODE_ECB).encrypt(challenge))
        if result_due:
            (result,) = struct.unpack(">I", await self.read(4))
            if result != 0:
                reason = await self._reason() if version == b"RFB 003.008\n" else "failed"
                raise AuthError(reason)
        self.writer.write(bytes([1 if shared else 0]))
        w, h, pf, name_len = struct.unpack(">HH16sI", await self.read(24))
        self.name = (await self.read(name_len)).decode()
        self.width, self.height = w, h
        self.server_pf = self.pf = PixelFormat.parse(pf)
        self.fb = np.zeros((h, w, 3), np.uint8)

    def set_pixel_format(self, pf: PixelFormat) -> None:
        self.writer.write(b"\x00\x00\x00\x00" + pf.pack())
        self.pf = pf

    def set_desktop_size(self, w: int, h: int, screens: list[tuple[int, int, int, int, int, int]]) -> None:
        """SetDesktopSize (rfbproto 7.5.9): the framebuffer size and screens (id, x, y, w, h, flags)."""
        body = b"".join(struct.pack(">IHHHHI", *screen) for screen in screens)
        self.writer.write(bytes([251, 0]) + struct.pack(">HHBx", w, h, len(screens)) + body)

    def fence(self, flags: int, payload: bytes) -> None:
        """A ClientFence request (rfbproto 7.5.8) with ``flags`` (BlockBefore 1, BlockAfter 2, SyncNext 4)."""
        self.writer.write(struct.pack(">B3xIB", 248, (1 << 31) | flags, len(payload)) + payload)

    def set_encodings(self, encodings: list[int]) -> None:
        self.writer.write(struct.pack(">BxH", 2, len(encodings)) + struct.pack(f">{len(encodings)}i", *encodings))

    def request(
        self, incremental: bool = False, x: int = 0, y: int = 0, w: int | None = None, h: int | None = None
    ) -> None:
        w = self.width if w is None else w
        h = self.height if h is None else h
        self.writer.write(struct.pack(">BBHHHH", 3, int(incremental), x, y, w, h))

    def key(self, keysym: int, down: bool) -> None:
        self.writer.write(struct.pack(">BBxxI", 4, int(down), keysym))

    def pointer(self, x: int, y: int, buttons: int) -> None:
        self.writer.write(struct.pack(">BBHH", 5, buttons, x, y))

    def extended_pointer(self, x: int, y: int, buttons: int) -> None:
        """An extended PointerEvent (ExtendedMouseButtons): buttons 1-7 in bits 0-6, 8-15 in bits 7-14."""
        self.writer.write(struct.pack(">BBHHB", 5, 0x80 | (buttons & 0x7F), x, y, buttons >> 7))

    def cut_text(self, text: bytes) -> None:
        self.writer.write(struct.pack(">B3xI", 6, len(text)) + text)

    async def read_message(self) -> int:
        """Read one server message; return its type. Framebuffer updates are applied to ``self.fb``."""
        (mtype,) = await self.read(1)
        if mtype == 0:
            await self._update()
        elif mtype == 1:
            _, first, n = struct.unpack(">BHH", await self.read(5))
            for i in range(n):
                r, g, b = struct.unpack(">HHH", await self.read(6))
                self.palette[first + i] = (r, g, b)
        elif mtype == 2:
            self.bells += 1
        elif mtype == 3:
            (n,) = struct.unpack(">3xI", await self.read(7))
            self.cut_texts.append(await self.read(n))
        elif mtype == 248:  # ServerFence: the server's own requests (pacing) are answered at once
            flags, length = struct.unpack(">3xIB", await self.read(8))
            payload = await self.read(length)
            if flags & (1 << 31):
                self.writer.write(struct.pack(">B3xIB", 248, flags & ~(1 << 31), length) + payload)
            else:
                self.fence_answers.append((flags, payload, asyncio.get_running_loop().time()))
        else:
            raise AssertionError(f"unexpected server message {mtype}")
        return mtype

    async def read_update(self) -> UpdateResult:
        """Read messages until a FramebufferUpdate has been applied."""
        self.last = UpdateResult()
        while await self.read_message() != 0:
            pass
        return self.last

    async def update_until(self, want: npt.NDArray[np.uint8], tries: int = 40, timeout: float = 5) -> None:
        """Ask for incremental updates until the framebuffer is ``want`` (at most ``tries`` updates)."""
        for _ in range(tries):
            self.request(incremental=True)
            await asyncio.wait_for(self.read_update(), timeout)
            if np.array_equal(self.fb, want):
                return
        assert np.array_equal(self.fb, want), "the framebuffer never showed the expected picture"

    async def _update(self) -> None:
        (n,) = struct.unpack(">xH", await self.read(3))
        i = 0
        while n == 0xFFFF or i < n:
            x, y, w, h, enc = struct.unpack(">HHHHi", await self.read(12))
            self.last.rects.append((x, y, w, h, enc))
            i += 1
            if enc == 0:
                assert self.pf is not None
                data = await self.read(w * h * self.pf.bits_per_pixel // 8)
                if self.pf.true_colour:
                    self.fb[y : y + h, x : x + w] = decode_pixels(self.pf, data, w, h)
                else:
                    idx = np.frombuffer(data, np.uint8).reshape(h, w)
                    lut = np.zeros((256, 3), np.uint8)
                    for k, (r, g, b) in self.palette.items():
                        lut[k] = (r >> 8, g >> 8, b >> 8)
                    self.fb[y : y + h, x : x + w] = lut[idx]
            elif enc == -223:  # DesktopSize
                self._resize(w, h)
            elif enc == -308:  # ExtendedDesktopSize
                (ns,) = struct.unpack(">B3x", await self.read(4))
                screens = [struct.unpack(">IHHHHI", await self.read(16)) for _ in range(ns)]
                self.layouts.append((x, y, w, h, screens))
                if x == 0 or (x == 1 and y == 0) or x == 2:
                    self._resize(w, h)
            elif enc == 1:  # CopyRect: copy within our own framebuffer
                sx, sy = struct.unpack(">HH", await self.read(4))
                self.fb[y : y + h, x : x + w] = self.fb[sy : sy + h, sx : sx + w].copy()
            elif enc == 50:  # Open H.264: decoded by libavcodec, contexts kept as the spec says
                length, flags = struct.unpack(">II", await self.read(8))
                data = await self.read(length)
                self.h264.fb = self.fb
                self.h264.apply(x, y, w, h, flags, data)
            elif enc == -224:  # LastRect
                break
            elif enc == -239:  # Cursor: pixels in our format, then a 1-bit mask
                assert self.pf is not None
                pixels = await self.read(w * h * self.pf.bits_per_pixel // 8)
                mask = await self.read(((w + 7) // 8) * h)
                self.cursor = (x, y, w, h, pixels, mask)
            elif enc == -314:  # Cursor With Alpha, raw RGBA
                (sub,) = struct.unpack(">i", await self.read(4))
                assert sub == 0
                self.cursor = (x, y, w, h, await self.read(w * h * 4), b"")
            elif enc in (-258, -316):  # confirmations of QEMU key events / extended mouse buttons
                self.confirmed.add(enc)
            elif enc == -261:  # QEMU LED State: one byte
                self.leds.append((await self.read(1))[0])
            elif enc == -307:  # DesktopName
                (ln,) = struct.unpack(">I", await self.read(4))
                self.name = (await self.read(ln)).decode()
            else:
                raise AssertionError(f"unexpected encoding {enc}")

    def _resize(self, w: int, h: int) -> None:
        if (w, h) != (self.width, self.height):
            new = np.zeros((h, w, 3), np.uint8)
            ch, cw = min(h, self.height), min(w, self.width)
            new[:ch, :cw] = self.fb[:ch, :cw]
            self.fb = new
            self.width, self.height = w, h

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@dataclass
class RecordingSource:
    """A PushSource whose input callbacks record what arrives: keys (keysym, down), pointer (x, y, buttons)
    and clipboard texts, in order."""

    source: PushSource
    keys: list[tuple[int, bool]] = field(default_factory=list)
    pointer: list[tuple[int, int, int]] = field(default_factory=list)
    clipboard: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, width: int, height: int) -> RecordingSource:
        rec = cls(PushSource(width=width, height=height))
        rec.source.on_key = lambda k, d: rec.keys.append((k, d))
        rec.source.on_pointer = lambda x, y, b: rec.pointer.append((x, y, b))
        rec.source.on_clipboard = rec.clipboard.append
        return rec
