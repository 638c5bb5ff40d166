"""X keysyms: the few constants the input sinks need, and conversion between keysyms and Unicode.

RFB KeyEvent carries an X keysym (rfbproto 7.5.4 "KeyEvent"). A keysym is one of:

- a Latin-1 character (0x20–0x7e, 0xa0–0xff: the keysym is the code point);
- a *legacy* character keysym in one of the X11 character-set ranges (Latin-2…4, Kana, Arabic, Cyrillic,
  Greek, Technical, Publishing, Hebrew, Thai, Korean, currency: 0x01a1–0x20ff);
- a *Unicode keysym*, 0x01000000 + code point, which clients send for characters that have no legacy keysym
  (and some clients send for every non-ASCII character);
- a function keysym (0xfd00–0xffff: TTY functions, cursor motion, keypad, F-keys, modifiers, dead keys).

The legacy ↔ Unicode correspondence is the table of the X11 protocol's keysym encoding (Appendix A of the X
Window System Protocol). Rather than carrying a copy of that table, this module asks libxkbcommon (present
wherever X11 or Wayland desktops run) through :mod:`ctypes`. Without libxkbcommon only the identities hold
(Latin-1 keysyms and Unicode keysyms), which is still enough to *type* every character: a keysym missing
from the keyboard map is bound to a spare keycode as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

#: Unicode keysyms are this offset plus the code point
UNICODE_OFFSET = 0x01000000
#: the highest Unicode keysym
UNICODE_MAX = UNICODE_OFFSET + 0x10FFFF

NO_SYMBOL = 0
VOID_SYMBOL = 0xFFFFFF

# TTY function keys whose keysyms are the ASCII control code | 0xff00
BACKSPACE = 0xFF08
TAB = 0xFF09
LINEFEED = 0xFF0A
RETURN = 0xFF0D
ESCAPE = 0xFF1B
DELETE = 0xFFFF

# modifiers (keysymdef: 0xffe1–0xffee, plus the ISO 9995 group and level shifts at 0xfe01–0xfe0f)
SHIFT_L = 0xFFE1
SHIFT_R = 0xFFE2
CONTROL_L = 0xFFE3
CONTROL_R = 0xFFE4
CAPS_LOCK = 0xFFE5
SHIFT_LOCK = 0xFFE6
META_L = 0xFFE7
META_R = 0xFFE8
ALT_L = 0xFFE9
ALT_R = 0xFFEA
SUPER_L = 0xFFEB
SUPER_R = 0xFFEC
HYPER_L = 0xFFED
HYPER_R = 0xFFEE
MODE_SWITCH = 0xFF7E
NUM_LOCK = 0xFF7F
ISO_LEVEL3_SHIFT = 0xFE03
ISO_LEVEL5_SHIFT = 0xFE11

# the keypad range (KP_Space .. KP_Equal) and the digits inside it
KP_FIRST = 0xFF80
KP_LAST = 0xFFBD
KP_0 = 0xFFB0
KP_9 = 0xFFB9
KP_DECIMAL = 0xFFAE
KP_SEPARATOR = 0xFFAC

F1 = 0xFFBE

# dead keys (dead_grave .. ) live at 0xfe50–0xfe8f
DEAD_FIRST = 0xFE50
DEAD_LAST = 0xFE8F

_CONTROL_CODES = {0x08: BACKSPACE, 0x09: TAB, 0x0A: LINEFEED, 0x0D: RETURN, 0x1B: ESCAPE, 0x7F: DELETE}


def is_modifier(keysym: int) -> bool:
    """True for keysyms of modifier keys (Shift, Control, Alt, Meta, Super, Hyper, locks, level/group shifts)."""
    return 0xFFE1 <= keysym <= 0xFFEE or 0xFE01 <= keysym <= 0xFE0F or keysym in (MODE_SWITCH, NUM_LOCK)


def is_keypad(keysym: int) -> bool:
    """True for keypad keysyms (KP_Space … KP_Equal)."""
    return KP_FIRST <= keysym <= KP_LAST


def is_keypad_number(keysym: int) -> bool:
    """True for the keypad keysyms NumLock chooses between (KP_0…KP_9, KP_Decimal, KP_Separator)."""
    return KP_0 <= keysym <= KP_9 or keysym in (KP_DECIMAL, KP_SEPARATOR)


def is_unicode_keysym(keysym: int) -> bool:
    """True for Unicode keysyms (0x01000000 + code point)."""
    return UNICODE_OFFSET <= keysym <= UNICODE_MAX


def is_latin1(keysym: int) -> bool:
    """True for keysyms that are Latin-1 characters (their code point)."""
    return 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF


def is_legacy_character(keysym: int) -> bool:
    """True for keysyms in the legacy character-set ranges beyond Latin-1 (0x100–0x20ff)."""
    return 0x100 <= keysym <= 0x20FF


class _XkbCommon:
    """The two conversion functions of libxkbcommon, loaded on first use (``None`` when unavailable)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.to_utf32 = lib.xkb_keysym_to_utf32
        self.to_utf32.restype = ctypes.c_uint32
        self.to_utf32.argtypes = [ctypes.c_uint32]
        self.from_utf32 = lib.xkb_utf32_to_keysym
        self.from_utf32.restype = ctypes.c_uint32
        self.from_utf32.argtypes = [ctypes.c_uint32]


@functools.cache
def _xkbcommon() -> _XkbCommon | None:
    name = ctypes.util.find_library("xkbcommon") or "libxkbcommon.so.0"
    try:
        return _XkbCommon(ctypes.CDLL(name))
    except (OSError, AttributeError) as exc:
        logger.info("libxkbcommon is unavailable (%s): legacy keysyms beyond Latin-1 map to Unicode keysyms", exc)
        return None


def keysym_to_unicode(keysym: int) -> str | None:
    """The character a keysym types, or ``None`` for keysyms that type none (function keys, modifiers…).

    Keypad keysyms type their character (KP_1 → "1"), as X's XLookupString does.
    """
    if is_latin1(keysym):
        return chr(keysym)
    if is_unicode_keysym(keysym):
        cp = keysym - UNICODE_OFFSET
        return None if 0xD800 <= cp <= 0xDFFF else chr(cp)
    lib = _xkbcommon()
    if lib is None:
        return None
    cp = int(lib.to_utf32(keysym))
    return chr(cp) if cp and not 0xD800 <= cp <= 0xDFFF else None


def unicode_to_keysym(ch: str | int) -> int:
    """The keysym for a character: its legacy keysym when one exists, else its Unicode keysym.

    Latin-1 characters are their own keysyms; control characters map to the TTY function keys
    (backspace, tab, return…).
    """
    cp = ord(ch) if isinstance(ch, str) else ch
    if cp in _CONTROL_CODES:
        return _CONTROL_CODES[cp]
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    lib = _xkbcommon()
    if lib is not None and cp >= 0x100:
        ks = int(lib.from_utf32(cp))
        if ks:
            return ks
    return UNICODE_OFFSET + cp


def legacy_keysym(keysym: int) -> int:
    """Normalise a Unicode keysym to the legacy keysym for the same character, when there is one.

    Other keysyms are returned unchanged.
    """
    if not is_unicode_keysym(keysym):
        return keysym
    return unicode_to_keysym(keysym - UNICODE_OFFSET)


def alternative_keysyms(keysym: int) -> list[int]:
    """Other keysyms that type the same character as ``keysym`` (to find it in a keyboard map).

    For a Unicode keysym: its legacy keysym; for a legacy character keysym: its Unicode keysym. Function
    keysyms have no alternatives (KP_1 is not "1").
    """
    out: list[int] = []
    if is_unicode_keysym(keysym):
        legacy = legacy_keysym(keysym)
        if legacy != keysym:
            out.append(legacy)
    elif is_latin1(keysym) or is_legacy_character(keysym):
        ch = keysym_to_unicode(keysym)
        if ch is not None:
            out.append(UNICODE_OFFSET + ord(ch))
    return out


def is_cased_letter(keysym: int) -> bool:
    """True for keysyms of letters that have distinct lower and upper case forms (Caps Lock affects them)."""
    ch = keysym_to_unicode(keysym)
    return ch is not None and len(ch) == 1 and ch.lower() != ch.upper()
