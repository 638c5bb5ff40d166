"""A synthetic desktop that needs no X server: for trying pyvnc out, for demos, and for tests.

The scene: a gradient desktop with a window whose title bar shows the name and a clock, a bouncing square
and a progress bar that keep the picture moving, a text box echoing what clients type, a line showing the
clipboard clients set, a pointer marker, and a paint trail left while button 1 is held.

Rendering is cheap: a pre-rendered background (into which paint strokes are drawn) is copied and the small
changing parts are composited onto the copy, so a 1280x720 frame costs about a millisecond. With
``animate=False`` nothing changes except in response to input, and frames are pixel-exact and repeatable.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from ..region import Rect
from .base import FrameArray
from .polling import PollingSource

#: how many typed characters the text box keeps
TEXT_LIMIT = 60

_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)
_MONO_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
)

_FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=8)
def _font(size: int, mono: bool = False) -> _FontT:
    for path in _MONO_PATHS if mono else _FONT_PATHS:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType
        return ImageFont.load_default()


@lru_cache(maxsize=256)
def _text_mask(text: str, size: int, mono: bool = False) -> npt.NDArray[np.uint16]:
    """Anti-aliased coverage (0..256) of ``text`` rendered at ``size`` pixels, as an (h, w) array."""
    font = _font(size, mono)
    _left, _top, right, bottom = font.getbbox(text or " ")
    width = max(1, int(right) + 1)
    height = max(1, int(max(bottom, size * 1.25)) + 1)
    img = Image.new("L", (width, height), 0)
    ImageDraw.Draw(img).text((0, 0), text, fill=255, font=font)
    mask = np.asarray(img, dtype=np.uint16)
    # 0..255 → 0..256 so that full coverage replaces the pixel exactly
    return mask + (mask >> 7)


def _clip(frame: FrameArray, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int, int, int] | None:
    """Clip a wxh box at (x, y) to the frame: (x0, y0, x1, y1, offset_x, offset_y) or None if outside."""
    fh, fw = frame.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, fw), min(y + h, fh)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1, x0 - x, y0 - y


def _fill(frame: FrameArray, x: int, y: int, w: int, h: int, bgr: tuple[int, int, int]) -> None:
    c = _clip(frame, x, y, w, h)
    if c is not None:
        x0, y0, x1, y1, _, _ = c
        frame[y0:y1, x0:x1, :3] = bgr


def _blend(frame: FrameArray, x: int, y: int, mask: npt.NDArray[np.uint16], bgr: tuple[int, int, int]) -> None:
    """Paint ``bgr`` over ``frame`` at (x, y) with coverage ``mask`` (0..256), clipped to the frame."""
    c = _clip(frame, x, y, mask.shape[1], mask.shape[0])
    if c is None:
        return
    x0, y0, x1, y1, ox, oy = c
    a = mask[oy : oy + (y1 - y0), ox : ox + (x1 - x0), None]
    region = frame[y0:y1, x0:x1, :3]
    color = np.array(bgr, dtype=np.uint16)
    region[...] = ((region * (256 - a) + color * a) >> 8).astype(np.uint8)


def _cursor_masks() -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """Coverage masks (outline, fill) of an arrow pointer whose tip is at (1, 1)."""
    shape = [(1, 1), (1, 17), (5, 13), (8, 19), (11, 18), (8, 12), (13, 12)]
    outline = Image.new("L", (16, 22), 0)
    ImageDraw.Draw(outline).polygon(shape, fill=255, outline=255, width=2)
    inner = Image.new("L", (16, 22), 0)
    ImageDraw.Draw(inner).polygon(shape, fill=255)
    # shrink the fill by one pixel so the outline stays visible
    fill = np.asarray(inner, dtype=np.uint16)
    fill = fill.copy()
    fill[:, :1] = 0
    eroded = np.minimum.reduce(
        [fill, np.roll(fill, 1, 0), np.roll(fill, -1, 0), np.roll(fill, 1, 1), np.roll(fill, -1, 1)]
    )
    out = np.asarray(outline, dtype=np.uint16)
    return out + (out >> 7), eroded + (eroded >> 7)


@dataclass(frozen=True)
class _Layout:
    """Where the parts of the scene go (computed once from the frame size)."""

    window: Rect
    title_h: int
    font: int
    text_box: Rect
    clipboard_y: int
    anim: Rect
    progress: Rect


def _layout(width: int, height: int) -> _Layout:
    wx, wy = width // 12, height // 10
    ww, wh = max(1, width - 2 * wx), max(1, height - 2 * wy - height // 20)
    title_h = max(8, min(30, height // 24))
    font = max(6, title_h * 5 // 8)
    pad = max(2, font // 2)
    line_h = font * 3 // 2
    text_box = Rect(wx + pad, wy + title_h + pad + line_h, max(1, ww - 2 * pad), 3 * line_h + pad)
    clipboard_y = text_box.bottom + pad
    anim = Rect(wx + pad, clipboard_y + line_h + pad, max(1, ww - 2 * pad), max(4, font * 2))
    progress = Rect(wx + pad, anim.bottom + pad, max(1, ww - 2 * pad), max(2, font // 2))
    return _Layout(Rect(wx, wy, ww, wh), title_h, font, text_box, clipboard_y, anim, progress)


# colours, as (blue, green, red)
_WINDOW = (236, 236, 236)
_BORDER = (70, 60, 50)
_TITLE = (140, 90, 40)
_TITLE_TEXT = (255, 255, 255)
_TEXT = (30, 30, 30)
_BOX = (255, 255, 255)
_ACCENT = (40, 140, 250)
_SQUARE = (60, 180, 80)
_PAINT = (30, 90, 220)
_POINTER_UP = (255, 255, 255)
_POINTER_DOWN = (40, 40, 230)


class DemoSource(PollingSource):
    """An animated synthetic desktop of ``width``x``height`` that echoes client input.

    ``animate=False`` drops the clock and the animations, so the picture changes only in response to input
    (for tests). Input methods may be called from the event loop while :meth:`grab` renders in a worker
    thread; the shared state is guarded by a lock.
    """

    def __init__(self, width: int = 1280, height: int = 720, *, animate: bool = True, name: str = "pyvnc demo"):
        super().__init__()
        if not (1 <= width <= 16384 and 1 <= height <= 16384):
            raise ValueError(f"demo desktop size must be between 1x1 and 16384x16384, not {width}x{height}")
        self.name = name
        self.animate = animate
        self._width = width
        self._height = height
        self._layout = _layout(width, height)
        self._cursor_outline, self._cursor_fill = _cursor_masks()
        self._lock = threading.Lock()
        # state below is guarded by _lock
        self._text = ""
        self._clipboard = ""
        self._pointer: tuple[int, int] | None = None
        self._buttons = 0
        self._base = self._render_background()
        self._t0 = time.monotonic()

    def _initial_size(self) -> tuple[int, int]:
        return (self._width, self._height)

    # -- the static background ------------------------------------------------------------------------------

    def _render_background(self) -> FrameArray:
        w, h, lay = self._width, self._height, self._layout
        frame = np.zeros((h, w, 4), dtype=np.uint8)
        ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        xs = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
        frame[..., 0] = (120 + 90 * ys - 30 * xs).astype(np.uint8)  # blue
        frame[..., 1] = (60 + 70 * ys + 40 * xs).astype(np.uint8)  # green
        frame[..., 2] = (30 + 30 * xs).astype(np.uint8)  # red
        win = lay.window
        shadow = max(2, lay.title_h // 4)
        c = _clip(frame, win.x + shadow, win.y + shadow, win.w, win.h)
        if c is not None:
            x0, y0, x1, y1, _, _ = c
            frame[y0:y1, x0:x1, :3] //= 2
        _fill(frame, win.x - 1, win.y - 1, win.w + 2, win.h + 2, _BORDER)
        _fill(frame, win.x, win.y, win.w, win.h, _WINDOW)
        _fill(frame, win.x, win.y, win.w, lay.title_h, _TITLE)
        pad = max(2, lay.font // 2)
        title_y = win.y + (lay.title_h - lay.font * 5 // 4) // 2
        _blend(frame, win.x + pad, title_y, _text_mask(self.name, lay.font), _TITLE_TEXT)
        label_y = lay.text_box.y - lay.font * 3 // 2
        _blend(frame, lay.text_box.x, label_y, _text_mask("Type something:", lay.font), _TEXT)
        hint = f"pyvnc demo desktop {w}x{h} — type, and draw with mouse button 1"
        _blend(frame, pad, h - lay.font * 2, _text_mask(hint, lay.font), (230, 230, 230))
        return frame

    # -- input (event loop thread) --------------------------------------------------------------------------

    def key_event(self, keysym: int, down: bool) -> None:
        if not down:
            return
        with self._lock:
            if keysym == 0xFF08:  # BackSpace
                self._text = self._text[:-1]
                return
            if keysym in (0xFF0D, 0xFF8D):  # Return, KP_Enter
                char = "\n"
            elif 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:  # Latin-1 keysyms are the code point
                char = chr(keysym)
            elif 0x01000000 <= keysym <= 0x0110FFFF:  # Unicode keysyms
                char = chr(keysym - 0x01000000)
                if not char.isprintable():
                    return
            else:
                return
            self._text = (self._text + char)[-TEXT_LIMIT:]

    def pointer_event(self, x: int, y: int, buttons: int) -> None:
        with self._lock:
            prev, prev_buttons = self._pointer, self._buttons
            self._pointer = (x, y)
            self._buttons = buttons
            if buttons & 1:
                start = prev if prev is not None and prev_buttons & 1 else (x, y)
                self._paint_line(start, (x, y))

    def cut_text(self, text: str) -> None:
        with self._lock:
            self._clipboard = text

    def _paint_line(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        """Draw a 4-pixel-wide stroke from a to b into the background (caller holds the lock)."""
        n = max(abs(b[0] - a[0]), abs(b[1] - a[1])) + 1
        n = min(n, 8192)
        xs = np.rint(np.linspace(a[0], b[0], n)).astype(np.intp)
        ys = np.rint(np.linspace(a[1], b[1], n)).astype(np.intp)
        h, w = self._base.shape[:2]
        for oy in range(-2, 2):
            for ox in range(-2, 2):
                px, py = xs + ox, ys + oy
                keep = (px >= 0) & (px < w) & (py >= 0) & (py < h)
                self._base[py[keep], px[keep], :3] = _PAINT

    # -- rendering (worker thread) --------------------------------------------------------------------------

    def grab(self) -> FrameArray:
        with self._lock:
            frame = self._base.copy()
            text, clipboard = self._text, self._clipboard
            pointer, buttons = self._pointer, self._buttons
        lay = self._layout
        pad = max(2, lay.font // 2)
        line_h = lay.font * 3 // 2
        box = lay.text_box
        _fill(frame, box.x - 1, box.y - 1, box.w + 2, box.h + 2, (150, 150, 150))
        _fill(frame, box.x, box.y, box.w, box.h, _BOX)
        lines = text.split("\n")[-3:]
        for i, line in enumerate(lines):
            if line:
                _blend(
                    frame,
                    box.x + pad // 2,
                    box.y + pad // 2 + i * line_h,
                    _text_mask(line, lay.font, True),
                    _TEXT,
                )
        # the caret after the last character
        caret_x = box.x + pad // 2 + (_text_mask(lines[-1], lay.font, True).shape[1] if lines[-1] else 0)
        _fill(frame, caret_x, box.y + pad // 2 + (len(lines) - 1) * line_h, 2, lay.font * 5 // 4, _TEXT)
        if clipboard:
            shown = clipboard.replace("\r", " ").replace("\n", " ").replace("\t", " ")[:TEXT_LIMIT]
            _blend(frame, box.x, lay.clipboard_y, _text_mask("Clipboard: " + shown, lay.font), _TEXT)
        if self.animate:
            self._draw_animation(frame)
        if pointer is not None:
            px, py = pointer[0] - 1, pointer[1] - 1
            _blend(frame, px, py, self._cursor_outline, (0, 0, 0))
            _blend(frame, px, py, self._cursor_fill, _POINTER_DOWN if buttons else _POINTER_UP)
        return frame

    def _draw_animation(self, frame: FrameArray) -> None:
        lay = self._layout
        pad = max(2, lay.font // 2)
        # the clock at the right of the title bar
        clock = _text_mask(time.strftime("%H:%M:%S"), lay.font, True)
        win = lay.window
        title_y = win.y + (lay.title_h - lay.font * 5 // 4) // 2
        _blend(frame, win.right - pad - clock.shape[1], title_y, clock, _TITLE_TEXT)
        t = time.monotonic() - self._t0
        # a square bouncing along the animation strip
        strip = lay.anim
        side = strip.h
        travel = max(0, strip.w - side)
        phase = (t * 0.5) % 2.0
        sx = strip.x + int(travel * (phase if phase < 1.0 else 2.0 - phase))
        sy = strip.y + int((strip.h - side) * abs(math.sin(t * 3)))
        _fill(frame, sx, sy, side, side, _SQUARE)
        # a progress bar filling up every five seconds
        bar = lay.progress
        _fill(frame, bar.x, bar.y, bar.w, bar.h, (200, 200, 200))
        _fill(frame, bar.x, bar.y, int(bar.w * ((t / 5.0) % 1.0)), bar.h, _ACCENT)
