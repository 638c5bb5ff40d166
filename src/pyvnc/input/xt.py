"""XT scancodes (as the QEMU Extended Key Event carries them) → Linux input event codes.

The QEMU Extended Key Event message (rfbproto 7.7.1, QEMU client message subtype 0) sends the physical key as
an XT "set 1" scancode: one-byte codes as they are, 0xE0-prefixed codes with the high bit set (0xE0 0x4D,
Right arrow, is sent as 0xCD). Pause (0xE1 0x1D 0x45 on the wire of a real keyboard) is 0xC6, PrintScreen
0x54 or 0xB7. Linux input event codes (linux/input-event-codes.h) equal the set-1 scancode for the whole
original 83-key block (1..83); the others are listed. X servers using evdev keycodes (Xvfb, Xorg with
``rules=evdev``, Xwayland) number keys as Linux code + 8.
"""

from __future__ import annotations

#: scancode → Linux input event code, beyond the identical range 0x01..0x53
_EXTRA: dict[int, int] = {
    0x54: 99,  # Alt+PrintScreen (SysRq) → KEY_SYSRQ
    0x56: 86,  # the ISO 102nd key (< > | left of Z) → KEY_102ND
    0x57: 87,  # F11
    0x58: 88,  # F12
    0x59: 117,  # keypad = → KEY_KPEQUAL
    0x70: 93,  # Katakana/Hiragana → KEY_KATAKANAHIRAGANA
    0x73: 89,  # Japanese \ _ (Ro) → KEY_RO
    0x79: 92,  # Henkan → KEY_HENKAN
    0x7B: 94,  # Muhenkan → KEY_MUHENKAN
    0x7D: 124,  # Yen → KEY_YEN
    0x7E: 121,  # keypad comma (Brazilian) → KEY_KPCOMMA
    # 0xE0-prefixed keys (high bit set)
    0x9C: 96,  # keypad Enter → KEY_KPENTER
    0x9D: 97,  # Right Ctrl → KEY_RIGHTCTRL
    0xB5: 98,  # keypad / → KEY_KPSLASH
    0xB7: 99,  # PrintScreen → KEY_SYSRQ (X's Print key)
    0xB8: 100,  # Right Alt / AltGr → KEY_RIGHTALT
    0xC6: 119,  # Pause (Ctrl+Break) → KEY_PAUSE
    0xC7: 102,  # Home
    0xC8: 103,  # Up
    0xC9: 104,  # Page Up
    0xCB: 105,  # Left
    0xCD: 106,  # Right
    0xCF: 107,  # End
    0xD0: 108,  # Down
    0xD1: 109,  # Page Down
    0xD2: 110,  # Insert
    0xD3: 111,  # Delete
    0xDB: 125,  # Left Windows / Super → KEY_LEFTMETA
    0xDC: 126,  # Right Windows / Super → KEY_RIGHTMETA
    0xDD: 127,  # Menu → KEY_COMPOSE
    0xDE: 116,  # Power → KEY_POWER
    0xDF: 142,  # Sleep → KEY_SLEEP
    0xE3: 143,  # Wake → KEY_WAKEUP
    0xA0: 113,  # Mute → KEY_MUTE
    0xAE: 114,  # Volume Down → KEY_VOLUMEDOWN
    0xB0: 115,  # Volume Up → KEY_VOLUMEUP
    0xA2: 164,  # Play/Pause → KEY_PLAYPAUSE
    0xA4: 166,  # Stop → KEY_STOPCD
    0x90: 165,  # Previous track → KEY_PREVIOUSSONG
    0x99: 163,  # Next track → KEY_NEXTSONG
    0xA1: 140,  # Calculator → KEY_CALC
    0xEC: 155,  # Mail → KEY_MAIL
    0xEB: 157,  # My Computer → KEY_COMPUTER
    0xE5: 217,  # WWW Search → KEY_SEARCH
    0xB2: 172,  # WWW Home → KEY_HOMEPAGE
    0xEA: 158,  # WWW Back → KEY_BACK
    0xE9: 159,  # WWW Forward → KEY_FORWARD
    0xE8: 128,  # WWW Stop → KEY_STOP
    0xE7: 173,  # WWW Refresh → KEY_REFRESH
    0xE6: 156,  # WWW Favorites → KEY_BOOKMARKS
}

#: the whole table: XT scancode (0xE0 prefix as the high bit) → Linux input event code
XT_TO_LINUX: dict[int, int] = {code: code for code in range(0x01, 0x54)} | _EXTRA

#: X keycode = Linux input event code + this, on X servers with evdev keycodes
EVDEV_OFFSET = 8


def linux_code(scancode: int) -> int | None:
    """The Linux input event code of an XT scancode (QEMU encoding), or None when unknown."""
    return XT_TO_LINUX.get(scancode)


def evdev_keycode(scancode: int) -> int | None:
    """The X keycode (evdev numbering) of an XT scancode, or None when unknown."""
    code = XT_TO_LINUX.get(scancode)
    return None if code is None else code + EVDEV_OFFSET
