"""A client on LibVNCServer's client library (``libvncclient``, Debian ``libvncclient1``), the decoders Remmina,
KRDC and many other programs use, driven through ctypes.

Only the first fields of its ``rfbClient`` struct are declared here (the framebuffer, its size and ``AppData``,
unchanged since LibVNCServer 0.9): the rest of the struct is the library's business. A layout that did not
match would show as a wrong desktop size or a wrong picture, never as a pass.
"""

from __future__ import annotations

import ctypes
import time

import numpy as np
import numpy.typing as npt

from pyvnc.protocol.pixelformat import PixelFormat

LIBRARY = "libvncclient.so.1"


class _AppData(ctypes.Structure):
    _fields_ = [
        ("shareDesktop", ctypes.c_int8),
        ("viewOnly", ctypes.c_int8),
        ("encodingsString", ctypes.c_char_p),
        ("useBGR233", ctypes.c_int8),
        ("nColours", ctypes.c_int),
        ("forceOwnCmap", ctypes.c_int8),
        ("forceTrueColour", ctypes.c_int8),
        ("requestedDepth", ctypes.c_int),
        ("compressLevel", ctypes.c_int),
        ("qualityLevel", ctypes.c_int),
        ("enableJPEG", ctypes.c_int8),
        ("useRemoteCursor", ctypes.c_int8),
        ("palmVNC", ctypes.c_int8),
        ("scaleSetting", ctypes.c_int),
    ]


class _PixelFormat(ctypes.Structure):
    """rfbPixelFormat (rfb/rfbproto.h), in host byte order."""

    _fields_ = [
        ("bitsPerPixel", ctypes.c_uint8),
        ("depth", ctypes.c_uint8),
        ("bigEndian", ctypes.c_uint8),
        ("trueColour", ctypes.c_uint8),
        ("redMax", ctypes.c_uint16),
        ("greenMax", ctypes.c_uint16),
        ("blueMax", ctypes.c_uint16),
        ("redShift", ctypes.c_uint8),
        ("greenShift", ctypes.c_uint8),
        ("blueShift", ctypes.c_uint8),
        ("pad1", ctypes.c_uint8),
        ("pad2", ctypes.c_uint16),
    ]


class _ClientHead(ctypes.Structure):
    """The leading fields of ``rfbClient`` (rfb/rfbclient.h), up to the pixel format it asks for."""

    _fields_ = [
        ("frameBuffer", ctypes.POINTER(ctypes.c_uint8)),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("endianTest", ctypes.c_int),
        ("appData", _AppData),
        ("programName", ctypes.c_char_p),
        ("serverHost", ctypes.c_void_p),  # malloc'ed: the library frees it
        ("serverPort", ctypes.c_int),
        ("listenSpecified", ctypes.c_int8),
        ("listenPort", ctypes.c_int),
        ("flashPort", ctypes.c_int),
        ("updateRect", ctypes.c_int * 4),
        ("buffer", ctypes.c_char * (640 * 480)),  # RFB_BUFFER_SIZE
        ("sock", ctypes.c_int),
        ("canUseCoRRE", ctypes.c_int8),
        ("canUseHextile", ctypes.c_int8),
        ("desktopName", ctypes.c_char_p),
        ("format", _PixelFormat),
    ]


#: what rfbGetClient(8, 3, 4) puts in ``format`` on a little-endian host: the check that the layout above holds
_DEFAULT_FORMAT = (32, 24, 0, 1, 255, 255, 255, 0, 8, 16)
_FORMAT_FIELDS = tuple(name for name, _ in _PixelFormat._fields_ if not name.startswith("pad"))


def _set_format(fmt: _PixelFormat, pf: PixelFormat) -> None:
    """Write ``pf`` into the library's pixel format struct."""
    values = (pf.bits_per_pixel, pf.depth, int(pf.big_endian), int(pf.true_colour), pf.red_max)
    values += (pf.green_max, pf.blue_max, pf.red_shift, pf.green_shift, pf.blue_shift)
    for name, value in zip(_FORMAT_FIELDS, values, strict=True):
        setattr(fmt, name, value)


_Client = ctypes.POINTER(_ClientHead)


def load() -> ctypes.CDLL | None:
    """The library with the prototypes used here, or None where it is not installed."""
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError:
        return None
    lib.rfbGetClient.restype = _Client
    lib.rfbGetClient.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.rfbInitClient.restype = ctypes.c_int8
    lib.rfbInitClient.argtypes = [_Client, ctypes.POINTER(ctypes.c_int), ctypes.c_void_p]
    lib.WaitForMessage.restype = ctypes.c_int
    lib.WaitForMessage.argtypes = [_Client, ctypes.c_uint]
    lib.HandleRFBServerMessage.restype = ctypes.c_int8
    lib.HandleRFBServerMessage.argtypes = [_Client]
    lib.rfbClientCleanup.restype = None
    lib.rfbClientCleanup.argtypes = [_Client]
    for name, args in (
        ("SendKeyEvent", [ctypes.c_uint32, ctypes.c_int8]),
        ("SendPointerEvent", [ctypes.c_int, ctypes.c_int, ctypes.c_int]),
        ("SendClientCutText", [ctypes.c_char_p, ctypes.c_int]),
    ):
        getattr(lib, name).restype = ctypes.c_int8
        getattr(lib, name).argtypes = [_Client, *args]
    return lib


class LibVNCClient:
    """One connection; its blocking calls belong in a worker thread (asyncio.to_thread)."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        port: int,
        encodings: str,
        pixel_format: PixelFormat | None = None,
        compress: int = -1,
        quality: int = -1,
        remote_cursor: bool = False,
    ) -> None:
        """Connect to 127.0.0.1:``port``. Without ``pixel_format`` the client asks for rfbGetClient(8, 3, 4):
        32 bits, red in the low byte."""
        self.lib = lib
        self.pixel_format = pixel_format
        #: :meth:`picture` keeps only the bits of the colour fields
        self.colour_bits_only = False
        client = lib.rfbGetClient(8, 3, 4)
        fmt = client.contents.format
        found = tuple(getattr(fmt, name) for name in _FORMAT_FIELDS)
        if found != _DEFAULT_FORMAT:
            lib.rfbClientCleanup(client)
            raise RuntimeError(f"libvncclient's rfbClient layout is not the one declared here: format {found}")
        if pixel_format is not None:
            _set_format(fmt, pixel_format)
        app = client.contents.appData
        app.encodingsString = encodings.encode()
        app.compressLevel = compress
        app.qualityLevel = quality
        app.enableJPEG = -1 if quality >= 0 else 0  # rfbBool TRUE is -1
        app.useRemoteCursor = -1 if remote_cursor else 0  # ask for cursor shapes instead of a painted cursor
        libc = ctypes.CDLL(None)
        libc.strdup.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        client.contents.serverHost = libc.strdup(b"127.0.0.1")
        client.contents.serverPort = port
        argc = ctypes.c_int(0)
        if not lib.rfbInitClient(client, ctypes.byref(argc), None):  # it freed the client
            raise ConnectionError(f"libvncclient could not connect to port {port}")
        self._client: ctypes._Pointer[_ClientHead] | None = client
        self._wipe()

    @property
    def size(self) -> tuple[int, int]:
        assert self._client is not None
        return self._client.contents.width, self._client.contents.height

    def picture(self) -> npt.NDArray[np.generic]:
        """The framebuffer as it is now: (h, w, 3) RGB in the default format, else (h, w) pixel values (their
        colour bits only with :attr:`colour_bits_only`: the library may set the others, ZRLE's 3-byte CPIXELs
        leave the fourth byte as it finds it)."""
        assert self._client is not None
        w, h = self.size
        pf = self.pixel_format
        bpp = 4 if pf is None else pf.bits_per_pixel // 8
        raw = np.ctypeslib.as_array(self._client.contents.frameBuffer, shape=(h * w * bpp,))
        if pf is None:
            return raw.reshape(h, w, 4)[..., :3].copy()
        order = ">" if pf.big_endian and bpp > 1 else "<"
        values: npt.NDArray[np.generic] = raw.view(f"{order}u{bpp}").reshape(h, w).astype(f"u{bpp}")
        if not self.colour_bits_only:
            return values
        colour = (pf.red_max << pf.red_shift) | (pf.green_max << pf.green_shift) | (pf.blue_max << pf.blue_shift)
        return values & np.array(colour, dtype=f"u{bpp}")

    def wait_for(self, want: npt.NDArray[np.generic], timeout: float = 10.0) -> npt.NDArray[np.generic]:
        """Handle server messages until, after at least one, the framebuffer equals ``want`` or ``timeout``
        passes; the last picture."""
        assert self._client is not None
        deadline = time.monotonic() + timeout
        handled = False
        got = self.picture()
        while not (handled and got.shape == want.shape and np.array_equal(got, want)):
            if time.monotonic() > deadline:
                break
            handled |= self.step()
            got = self.picture()
        return got

    def wait_settled(self, quiet: float = 0.5, timeout: float = 10.0) -> npt.NDArray[np.generic]:
        """Handle server messages until none has come for ``quiet`` seconds; the picture then."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            if self.step():
                last = time.monotonic()
        return self.picture()

    def step(self) -> bool:
        """Wait up to 0.1 s for a server message and handle it; whether one came. A new framebuffer (after a
        size change, which comes in an update without pixels) is wiped like the first."""
        assert self._client is not None
        size = self.size
        ready = self.lib.WaitForMessage(self._client, 100_000)
        if ready < 0 or (ready > 0 and not self.lib.HandleRFBServerMessage(self._client)):
            raise ConnectionError("libvncclient lost the connection (or could not decode a message)")
        if self.size != size:
            self._wipe()
        return ready > 0

    def _wipe(self) -> None:
        """Fill the framebuffer with a pattern no test picture has: the library allocates it with malloc, and
        memory that held an earlier picture must not pass for this one."""
        assert self._client is not None
        w, h = self.size
        bpp = 4 if self.pixel_format is None else self.pixel_format.bits_per_pixel // 8
        ctypes.memset(self._client.contents.frameBuffer, 0xA5, w * h * bpp)

    def set_encodings(self, encodings: str, compress: int | None = None, quality: int | None = None) -> None:
        """SetPixelFormat and SetEncodings again, with ``encodings`` as the list and, when given, new compression
        and quality levels (what a viewer sends when its user picks another encoding or level mid-session);
        the library keeps the pointer, so the string is kept too."""
        client = self._open()
        self._encodings = encodings.encode()
        app = client.contents.appData
        app.encodingsString = self._encodings
        if compress is not None:
            app.compressLevel = compress
        if quality is not None:
            app.qualityLevel = quality
            app.enableJPEG = -1 if quality >= 0 else 0
        self._sent(self.lib.SetFormatAndEncodings(client))

    def set_pixel_format(self, pixel_format: PixelFormat, encodings: str) -> None:
        """SetPixelFormat (and SetEncodings) with a new format, then a non-incremental update request, as an
        application of the library switches colour depth mid-session. The framebuffer, allocated for the
        first format, must be at least as big: switch only to formats of at most that many bits a pixel."""
        client = self._open()
        _set_format(client.contents.format, pixel_format)
        self.pixel_format = pixel_format
        self.set_encodings(encodings)
        w, h = self.size
        self._sent(self.lib.SendFramebufferUpdateRequest(client, 0, 0, w, h, 0))

    def key(self, keysym: int, down: bool) -> None:
        self._sent(self.lib.SendKeyEvent(self._open(), keysym, -1 if down else 0))

    def pointer(self, x: int, y: int, buttons: int) -> None:
        self._sent(self.lib.SendPointerEvent(self._open(), x, y, buttons))

    def clipboard(self, text: bytes) -> None:
        """ClientCutText: ``text`` as it goes on the wire (Latin-1)."""
        self._sent(self.lib.SendClientCutText(self._open(), text, len(text)))

    def _open(self) -> ctypes._Pointer[_ClientHead]:
        if self._client is None:
            raise ConnectionError("the connection is closed")
        return self._client

    @staticmethod
    def _sent(ok: int) -> None:
        if not ok:
            raise ConnectionError("libvncclient could not send a message")

    def close(self) -> None:
        if self._client is not None:
            self.lib.rfbClientCleanup(self._client)
            self._client = None
