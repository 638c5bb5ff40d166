"""A tiny X client for the input tests: prints every key, button and motion event it sees as a JSON line.

Usage: ``python xrecorder.py DISPLAY``. It maps an override-redirect window covering the whole screen, takes
the input focus, and prints ``{"type": "ready"}`` once it has the focus. Then, one line per event, flushed:

- ``{"type": "key", "down": bool, "keycode": n, "keysym": n, "text": str, "state": n}``
- ``{"type": "button", "down": bool, "button": n, "x": n, "y": n, "state": n}``
- ``{"type": "motion", "x": n, "y": n, "state": n}``

Keys are translated by libX11's own XLookupString (through ctypes, on a second connection that is reopened
whenever the keyboard mapping changes), so the keysym printed is what a real X application would see,
XKB levels included — independent of the code under test. ``text`` is XLookupString's output (in the locale's encoding).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
from typing import Any

from Xlib import X, display


class XKeyEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("root", ctypes.c_ulong),
        ("subwindow", ctypes.c_ulong),
        ("time", ctypes.c_ulong),
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("x_root", ctypes.c_int),
        ("y_root", ctypes.c_int),
        ("state", ctypes.c_uint),
        ("keycode", ctypes.c_uint),
        ("same_screen", ctypes.c_int),
    ]


class Translator:
    """XLookupString on a libX11 connection of its own."""

    def __init__(self, name: str) -> None:
        self.lib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        self.lib.XOpenDisplay.restype = ctypes.c_void_p
        self.lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.lib.XLookupString.argtypes = [
            ctypes.POINTER(XKeyEvent),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_ulong),
            ctypes.c_void_p,
        ]
        self.name = name.encode()
        self.dpy: int | None = None
        self.reopen()

    def reopen(self) -> None:
        if self.dpy:
            self.lib.XCloseDisplay(self.dpy)
        self.dpy = self.lib.XOpenDisplay(self.name)
        if not self.dpy:
            raise SystemExit(f"cannot open {self.name!r} with libX11")

    def lookup(self, ev: Any) -> tuple[int, str]:
        xev = XKeyEvent(
            type=ev.type,
            display=self.dpy,
            window=ev.window.id,
            root=ev.root.id,
            time=ev.time,
            x=ev.event_x,
            y=ev.event_y,
            x_root=ev.root_x,
            y_root=ev.root_y,
            state=ev.state,
            keycode=ev.detail,
            same_screen=1,
        )
        buf = ctypes.create_string_buffer(64)
        keysym = ctypes.c_ulong(0)
        n = self.lib.XLookupString(ctypes.byref(xev), buf, 64, ctypes.byref(keysym), None)
        raw = buf.raw[:n]
        try:
            return keysym.value, raw.decode()  # the locale's encoding: UTF-8 here
        except UnicodeDecodeError:
            return keysym.value, raw.decode("latin-1")


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> None:
    name = sys.argv[1]
    d = display.Display(name)
    translator = Translator(name)
    screen = d.screen()
    win = screen.root.create_window(
        0,
        0,
        screen.width_in_pixels,
        screen.height_in_pixels,
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=screen.white_pixel,
        override_redirect=True,
        event_mask=(
            X.KeyPressMask
            | X.KeyReleaseMask
            | X.ButtonPressMask
            | X.ButtonReleaseMask
            | X.PointerMotionMask
            | X.StructureNotifyMask
            | X.FocusChangeMask
        ),
    )
    win.map()
    d.sync()
    ready = False
    while True:
        ev = d.next_event()
        if ev.type == X.MapNotify and not ready:
            win.set_input_focus(X.RevertToParent, X.CurrentTime)
            d.sync()
        elif ev.type == X.FocusIn and not ready:
            ready = True
            emit(type="ready", window=win.id)
        elif ev.type == X.MappingNotify:
            translator.reopen()
            emit(type="mapping", request=ev.request, first=ev.first_keycode, count=ev.count)
        elif ev.type in (X.KeyPress, X.KeyRelease):
            keysym, text = translator.lookup(ev)
            emit(
                type="key",
                down=ev.type == X.KeyPress,
                keycode=ev.detail,
                keysym=keysym,
                text=text,
                state=ev.state,
            )
        elif ev.type in (X.ButtonPress, X.ButtonRelease):
            emit(
                type="button",
                down=ev.type == X.ButtonPress,
                button=ev.detail,
                x=ev.event_x,
                y=ev.event_y,
                state=ev.state,
            )
        elif ev.type == X.MotionNotify:
            emit(type="motion", x=ev.event_x, y=ev.event_y, state=ev.state)


if __name__ == "__main__":
    main()
