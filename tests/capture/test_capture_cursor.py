"""Cursor shapes: XFixes reading on a real Xvfb, the RFB cursor pseudo-rectangles, and painting into frames."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from xhelpers import private_xvfb

from pyvnc.capture.cursor import (
    CursorImage,
    CursorWatcher,
    cursor_bounds,
    cursor_rect,
    cursor_with_alpha_rect,
    paint_cursor,
    painted_bounds,
    vmware_cursor_rect,
)
from pyvnc.errors import CaptureError
from pyvnc.protocol.pixelformat import PixelFormat, converter_for
from pyvnc.region import Rect

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")

NATIVE = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)
RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)


def synthetic(width: int = 10, height: int = 3) -> CursorImage:
    """A cursor whose alpha ramps along each row and whose colour encodes the position."""
    rgba = np.zeros((height, width, 4), np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    rgba[..., 0] = 10 * xs + 1
    rgba[..., 1] = 20 * ys + 2
    rgba[..., 2] = 200
    rgba[..., 3] = (np.arange(width) * 255 // max(width - 1, 1))[None, :]
    return CursorImage(width, height, 2, 1, 0, rgba)


# -- CursorImage -------------------------------------------------------------------------------------------


def test_from_argb_unpremultiplies() -> None:
    pixels = [0xFF_10_20_30, 0x80_40_20_00, 0x00_00_00_00, 0x40_40_40_40, 0x01_01_00_01, 0xFF_FF_FF_FF]
    img = CursorImage.from_argb(3, 2, 1, 0, 7, pixels)
    assert (img.width, img.height, img.hot_x, img.hot_y, img.serial) == (3, 2, 1, 0, 7)
    assert img.rgba.shape == (2, 3, 4) and img.rgba.dtype == np.uint8
    assert img.rgba[0, 0].tolist() == [0x10, 0x20, 0x30, 0xFF]  # opaque: unchanged
    assert img.rgba[0, 1].tolist() == [round(0x40 * 255 / 0x80), round(0x20 * 255 / 0x80), 0, 0x80]
    assert img.rgba[0, 2].tolist() == [0, 0, 0, 0]
    assert img.rgba[1, 0].tolist() == [255, 255, 255, 0x40]  # colour == alpha: white
    assert img.rgba[1, 1].tolist() == [255, 0, 255, 1]
    # pre-multiplying again gives XFixes' values back
    premultiplied = img.premultiplied().reshape(-1, 4).astype(np.uint32)
    argb = (premultiplied[:, 3] << 24) | (premultiplied[:, 0] << 16) | (premultiplied[:, 1] << 8) | premultiplied[:, 2]
    assert argb.tolist() == pixels


def test_cursor_image_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="cursor pixels"):
        CursorImage(4, 4, 0, 0, 0, np.zeros((4, 3, 4), np.uint8))


# -- pseudo-rectangles ---------------------------------------------------------------------------------------


def test_cursor_rect_native_format() -> None:
    img = synthetic(10, 3)
    data = cursor_rect(img, converter_for(NATIVE))
    x, y, w, h, enc = struct.unpack(">HHHHi", data[:12])
    assert (x, y, w, h, enc) == (2, 1, 10, 3, -239)
    assert len(data) == 12 + 10 * 3 * 4 + 2 * 3  # pixels, then a mask of 2 bytes per row
    pixels = np.frombuffer(data[12 : 12 + 120], "<u4").reshape(3, 10)
    mask = data[12 + 120 :]
    shown = img.rgba[..., 3] >= 128
    # columns 5..9 have alpha >= 128: bits 5, 6, 7 of the first byte, then bits 7, 6 of the second
    assert shown[0].tolist() == [False] * 5 + [True] * 5
    assert mask == bytes([0b0000_0111, 0b1100_0000]) * 3
    r, g, b = img.rgba[..., 0].astype(np.uint32), img.rgba[..., 1].astype(np.uint32), img.rgba[..., 2]
    expected = np.where(shown, (r << 16) | (g << 8) | b, 0)
    assert (pixels == expected).all()


def test_cursor_rect_16_bit_format_and_odd_widths() -> None:
    img = synthetic(17, 2)
    data = cursor_rect(img, converter_for(RGB565))
    assert len(data) == 12 + 17 * 2 * 2 + 3 * 2
    mask = data[-6:]
    # alpha reaches 128 at x = 9 (of 0..16); 17 pixels take 3 bytes, the last one padded with zero bits
    assert img.rgba[0, 8, 3] == 127 and img.rgba[0, 9, 3] == 143
    assert mask == bytes([0b0000_0000, 0b0111_1111, 0b1000_0000]) * 2


def test_cursor_with_alpha_rect() -> None:
    img = synthetic(4, 2)
    data = cursor_with_alpha_rect(img)
    assert struct.unpack(">HHHHi", data[:12]) == (2, 1, 4, 2, -314)
    assert struct.unpack(">i", data[12:16]) == (0,)  # Raw
    assert len(data) == 16 + 4 * 2 * 4
    pixels = np.frombuffer(data[16:], np.uint8).reshape(2, 4, 4)
    # red, green, blue, alpha, with alpha pre-multiplied
    a = img.rgba[..., 3].astype(np.uint32)
    assert (pixels[..., 3] == img.rgba[..., 3]).all()
    assert (pixels[..., 0] == (img.rgba[..., 0] * a + 127) // 255).all()
    assert (pixels[..., 2] == (200 * a + 127) // 255).all()
    assert pixels[0, -1].tolist() == img.rgba[0, -1].tolist()  # opaque pixels unchanged


def test_vmware_cursor_rect() -> None:
    img = synthetic(5, 3)
    data = vmware_cursor_rect(img)
    assert struct.unpack(">HHHHI", data[:12]) == (2, 1, 5, 3, 0x574D5664)
    assert data[12:14] == b"\x01\x00"  # alpha cursor, padding
    assert len(data) == 14 + 5 * 3 * 4
    assert data[14:] == img.rgba.tobytes()  # RGBA, straight alpha


def test_empty_cursor() -> None:
    img = CursorImage(0, 0, 0, 0, 0, np.zeros((0, 0, 4), np.uint8))
    assert len(cursor_rect(img, converter_for(NATIVE))) == 12
    assert len(cursor_with_alpha_rect(img)) == 16
    assert len(vmware_cursor_rect(img)) == 14


# -- painting ------------------------------------------------------------------------------------------------


def test_paint_cursor_blends() -> None:
    frame = np.zeros((20, 30, 4), np.uint8)
    frame[..., 0] = 100  # blue
    frame[..., 1] = 50  # green
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 255  # red cursor
    rgba[..., 3] = [[0, 128, 255], [255, 255, 255]]
    img = CursorImage(3, 2, 1, 1, 0, rgba)
    out = paint_cursor(frame, img, 10, 5)  # top-left at (9, 4)
    assert out is not frame and (frame[..., 2] == 0).all(), "the frame itself is untouched"
    assert out[4, 9].tolist() == [100, 50, 0, 0]  # transparent
    half = [round(100 * 127 / 255), round(50 * 127 / 255), round(255 * 128 / 255), 0]
    assert out[4, 10].tolist() == half
    assert out[4, 11].tolist() == [0, 0, 255, 0] and out[5, 9].tolist() == [0, 0, 255, 0]
    changed = np.argwhere((out != frame).any(axis=2))
    assert {(int(y), int(x)) for y, x in changed} == {(4, 10), (4, 11), (5, 9), (5, 10), (5, 11)}


def test_paint_cursor_clips_at_the_edges() -> None:
    frame = np.zeros((8, 8, 4), np.uint8)
    rgba = np.full((4, 4, 4), 255, np.uint8)
    img = CursorImage(4, 4, 0, 0, 0, rgba)
    out = paint_cursor(frame, img, 6, -2)
    assert cursor_bounds(img, 6, -2, 8, 8) == Rect(6, 0, 2, 2)
    assert (out[0:2, 6:8, :3] == 255).all() and int(out[..., :3].astype(bool).sum()) == 2 * 2 * 3
    # entirely off the frame: the frame itself comes back
    assert paint_cursor(frame, img, 50, 50) is frame
    assert cursor_bounds(img, -10, 0, 8, 8) is None


def test_painted_bounds_leave_out_transparent_margins() -> None:
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[2:5, 1:4, 3] = 200  # visible pixels: rows 2-4, columns 1-3
    img = CursorImage(8, 6, 2, 1, 0, rgba)
    assert cursor_bounds(img, 10, 10, 100, 100) == Rect(8, 9, 8, 6)
    assert painted_bounds(img, 10, 10, 100, 100) == Rect(9, 11, 3, 3)
    assert painted_bounds(img, 0, 0, 100, 100) == Rect(0, 1, 2, 3)  # clipped at the frame's left edge
    frame = np.zeros((100, 100, 4), np.uint8)
    changed = np.argwhere((paint_cursor(frame, img, 10, 10) != frame).any(axis=2))
    assert {(int(y), int(x)) for y, x in changed} == {(y, x) for y in range(11, 14) for x in range(9, 12)}
    assert painted_bounds(CursorImage(2, 2, 0, 0, 0, np.zeros((2, 2, 4), np.uint8)), 5, 5, 100, 100) is None


# -- XFixes on Xvfb --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    with private_xvfb("320x240x24") as name:
        yield name


@pytest.fixture
def xconn(display: str) -> Iterator[Any]:
    """A python-xlib connection that stays open, so the cursors it creates stay readable."""
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        yield d
    finally:
        d.screen().root.change_attributes(cursor=0)  # back to the default cursor
        d.close()


def set_root_cursor(d: Any, glyph: int) -> None:
    font = d.open_font("cursor")
    cursor = font.create_glyph_cursor(font, glyph, glyph + 1, (0, 0, 0), (65535, 65535, 65535))
    d.screen().root.change_attributes(cursor=cursor)
    d.sync()


@needs_xvfb
def test_watcher_reads_the_default_cursor(display: str) -> None:
    watcher = CursorWatcher(display)
    try:
        img = watcher.poll()
        assert img is not None, "the first poll reports the current shape"
        assert img.width > 0 and img.height > 0 and img.serial > 0
        assert 0 <= img.hot_x < img.width and 0 <= img.hot_y < img.height
        assert img.rgba[..., 3].max() == 255 and img.rgba[..., 3].min() == 0  # the 'X' has shape and holes
        assert watcher.poll() is None, "nothing changed"
        again = watcher.current()
        assert again is not None and again.serial == img.serial
        assert (again.rgba == img.rgba).all()
    finally:
        watcher.close()


@needs_xvfb
def test_watcher_sees_shape_changes(display: str, xconn: Any) -> None:
    watcher = CursorWatcher(display)
    try:
        first = watcher.poll()
        assert first is not None
        set_root_cursor(xconn, 68)  # XC_left_ptr
        changed = watcher.wait(5)
        assert changed is not None and changed.serial != first.serial
        assert (changed.width, changed.height) != (first.width, first.height) or not np.array_equal(
            changed.rgba, first.rgba
        )
        set_root_cursor(xconn, 150)  # XC_watch
        watch = watcher.wait(5)
        assert watch is not None and watch.serial not in (first.serial, changed.serial)
        assert watcher.wait(0.05) is None
    finally:
        watcher.close()


@needs_xvfb
def test_pointer_position(display: str, xconn: Any) -> None:
    watcher = CursorWatcher(display)
    try:
        xconn.screen().root.warp_pointer(123, 45)
        xconn.sync()
        assert watcher.pointer_position() == (123, 45)
    finally:
        watcher.close()


@needs_xvfb
async def test_changes_async_iterator(display: str, xconn: Any) -> None:
    watcher = CursorWatcher(display)
    seen: list[CursorImage] = []

    async def watch() -> None:
        async for img in watcher.changes(interval=0.1):
            seen.append(img)

    task = asyncio.create_task(watch())
    try:
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(seen) == 1
        await asyncio.to_thread(set_root_cursor, xconn, 34)  # XC_crosshair
        while len(seen) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(seen) == 2 and seen[1].serial != seen[0].serial
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        watcher.close()


@needs_xvfb
def test_cursor_of_a_departed_client_does_not_raise(display: str) -> None:
    if shutil.which("xsetroot") is None:
        pytest.skip("xsetroot is not installed")
    watcher = CursorWatcher(display)
    try:
        watcher.poll()
        env = dict(os.environ, DISPLAY=display)
        subprocess.run(["xsetroot", "-cursor_name", "left_ptr"], env=env, check=True, timeout=10)
        # the X server may refuse the image of a cursor whose client has gone (BadAccess): None, not an error
        img = watcher.wait(0.3)
        assert img is None or img.width > 0
    finally:
        subprocess.run(["xsetroot", "-cursor_name", "X_cursor"], env=dict(os.environ, DISPLAY=display), timeout=10)
        watcher.close()


def test_watcher_on_a_missing_display() -> None:
    with pytest.raises(CaptureError, match="cannot open X display :986"):
        CursorWatcher(":986")
