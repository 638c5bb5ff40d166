"""Wire numbers of the RFB protocol (rfbproto.rst), as IntEnums."""

from __future__ import annotations

from enum import IntEnum


class SecurityType(IntEnum):
    """Security types (rfbproto 7.1.2 / 7.2)."""

    INVALID = 0
    NONE = 1
    VNC_AUTH = 2
    VENCRYPT = 19


class VeNCryptSubtype(IntEnum):
    """VeNCrypt subtypes pyvnc offers (rfbproto "VeNCrypt"): TLS with the server's X.509 certificate, then
    no authentication or VNC Authentication inside the encrypted channel."""

    X509_NONE = 260
    X509_VNC = 261


class SecurityResult(IntEnum):
    """SecurityResult values (rfbproto 7.1.3)."""

    OK = 0
    FAILED = 1


class ClientMessageType(IntEnum):
    """Client-to-server message types (rfbproto 7.5)."""

    SET_PIXEL_FORMAT = 0
    SET_ENCODINGS = 2
    FRAMEBUFFER_UPDATE_REQUEST = 3
    KEY_EVENT = 4
    POINTER_EVENT = 5
    CLIENT_CUT_TEXT = 6


class ServerMessageType(IntEnum):
    """Server-to-client message types (rfbproto 7.6)."""

    FRAMEBUFFER_UPDATE = 0
    SET_COLOUR_MAP_ENTRIES = 1
    BELL = 2
    SERVER_CUT_TEXT = 3


class Encoding(IntEnum):
    """Encodings and pseudo-encodings (rfbproto 7.7 and 7.8)."""

    RAW = 0
    COPY_RECT = 1
    RRE = 2
    CORRE = 4
    HEXTILE = 5
    ZLIB = 6
    TIGHT = 7
    ZLIBHEX = 8
    ZRLE = 16
    JPEG = 21
    OPEN_H264 = 50
    TIGHT_PNG = -260

    # pseudo-encodings
    DESKTOP_SIZE = -223
    LAST_RECT = -224
    CURSOR = -239
    X_CURSOR = -240
    QEMU_POINTER_MOTION_CHANGE = -257
    QEMU_EXTENDED_KEY_EVENT = -258
    QEMU_AUDIO = -259
    QEMU_LED_STATE = -261
    GII = -305
    DESKTOP_NAME = -307
    EXTENDED_DESKTOP_SIZE = -308
    XVP = -309
    FENCE = -312
    CONTINUOUS_UPDATES = -313
    CURSOR_WITH_ALPHA = -314
    EXTENDED_MOUSE_BUTTONS = -316
    VMWARE_CURSOR = 0x574D5664
    EXTENDED_CLIPBOARD = -1063131698  # 0xC0A1E5CE as a signed 32-bit number

    # ranges (first value of each)
    COMPRESS_LEVEL_0 = -256  # -256 .. -247
    QUALITY_LEVEL_0 = -32  # -32 .. -23


COMPRESS_LEVEL_MIN = -256
COMPRESS_LEVEL_MAX = -247
QUALITY_LEVEL_MIN = -32
QUALITY_LEVEL_MAX = -23


class ExtendedDesktopSizeStatus(IntEnum):
    """Status codes of ExtendedDesktopSize replies (rfbproto 7.8.10)."""

    NO_ERROR = 0
    PROHIBITED = 1
    OUT_OF_RESOURCES = 2
    INVALID_LAYOUT = 3


class ExtendedDesktopSizeReason(IntEnum):
    """Reason codes (x position) of ExtendedDesktopSize rectangles (rfbproto 7.8.10)."""

    SERVER = 0
    THIS_CLIENT = 1
    OTHER_CLIENT = 2
