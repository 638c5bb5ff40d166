"""X11InputSink against a real Xvfb, checked by an X client that records what it receives (xrecorder.py).

Skipped when Xvfb is not installed. One private Xvfb and one recorder serve the whole module.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from xhelpers import Recorder

from pyvnc.input import keysyms as ks
from pyvnc.input.x11 import X11InputSink

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")


@pytest.fixture
def sink(injector: X11InputSink) -> X11InputSink:
    """The module's name for the shared ``injector`` fixture (tests/input/conftest.py)."""
    return injector


def type_keysyms(sink: X11InputSink, keysyms: list[int]) -> None:
    for keysym in keysyms:
        sink.key_event(keysym, True)
        sink.key_event(keysym, False)
    sink.flush()


def type_text(sink: X11InputSink, text: str) -> None:
    type_keysyms(sink, [ks.unicode_to_keysym(c) for c in text])


def keymap(display: str) -> dict[int, tuple[int, ...]]:
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        lo, hi = d.display.info.min_keycode, d.display.info.max_keycode
        return {lo + i: tuple(row) for i, row in enumerate(d.get_keyboard_mapping(lo, hi - lo + 1))}
    finally:
        d.close()


# -- keys ----------------------------------------------------------------------------------------------------


def test_ascii_and_shifted_characters(sink: X11InputSink, recorder: Recorder) -> None:
    text = "aA!@ zZ9?~"
    type_text(sink, text)
    got = recorder.typed(len(text))
    assert [e["keysym"] for e in got] == [ord(c) for c in text]
    assert "".join(e["text"] for e in got) == text
    # shifted characters arrive with Shift in the state, the others without
    assert [bool(e["state"] & 1) for e in got] == [c in "A!@Z?~" for c in text]


def test_lowercase_with_shift_held_comes_out_lowercase(sink: X11InputSink, recorder: Recorder) -> None:
    # a client whose layout types "1" with Shift held (e.g. French AZERTY) sends Shift_L, then "1"
    sink.key_event(ks.SHIFT_L, True)
    type_keysyms(sink, [ord("1"), ord("b"), ord("B")])
    sink.key_event(ks.SHIFT_L, False)
    sink.flush()
    got = recorder.typed(3)
    assert [e["text"] for e in got] == ["1", "b", "B"]


def test_latin1_characters_missing_from_the_keymap(sink: X11InputSink, recorder: Recorder, display: str) -> None:
    before = keymap(display)
    assert not any(0xE9 in row for row in before.values()), "the US keymap has no é"
    type_text(sink, "éßüÉ")
    got = recorder.typed(4)
    assert [e["keysym"] for e in got] == [0xE9, 0xDF, 0xFC, 0xC9]
    assert "".join(e["text"] for e in got) == "éßüÉ"
    # each went through a keycode that had no keysyms before
    assert all(not any(before[e["keycode"]]) for e in got)
    # typed again, the bindings are reused
    type_text(sink, "é")
    assert recorder.typed(1)[0]["keycode"] == got[0]["keycode"]


def test_unicode_keysyms(sink: X11InputSink, recorder: Recorder) -> None:
    smiley, euro, e_acute = 0x0100263A, 0x010020AC, 0x010000E9
    type_keysyms(sink, [smiley, euro, e_acute, 0x01000041])
    got = recorder.typed(4)
    assert got[0]["keysym"] == smiley and got[0]["text"] == "☺"  # no legacy keysym: bound as it is
    # € has a legacy keysym (EuroSign, 0x20ac): used when libxkbcommon can tell, else the Unicode keysym
    assert got[1]["keysym"] in (0x20AC, euro) and got[1]["text"] == "€"
    assert got[2]["keysym"] == 0xE9  # Unicode keysyms of Latin-1 characters become the Latin-1 keysyms
    assert got[3]["keysym"] == ord("A") and got[3]["text"] == "A"


def test_function_keypad_and_editing_keys(sink: X11InputSink, recorder: Recorder) -> None:
    keys = [
        0xFFC2,  # F5
        0xFFBE,  # F1
        0xFF08,  # BackSpace
        0xFF0D,  # Return
        0xFF09,  # Tab
        0xFF1B,  # Escape
        0xFF51,  # Left
        0xFFFF,  # Delete
        0xFFB1,  # KP_1 (the keypad's Num Lock level)
        0xFF9C,  # KP_End (the same key's base level)
        0xFF8D,  # KP_Enter
        0xFFAB,  # KP_Add
        0xFE51,  # dead_acute (no keycode in the US map)
    ]
    type_keysyms(sink, keys)
    assert [e["keysym"] for e in recorder.typed(len(keys))] == keys


def test_control_characters_become_function_keys(sink: X11InputSink, recorder: Recorder) -> None:
    type_keysyms(sink, [0x08, 0x0D, 0x0100001B])  # BS, CR, ESC (as a Unicode keysym)
    assert [e["keysym"] for e in recorder.typed(3)] == [0xFF08, 0xFF0D, 0xFF1B]


def test_caps_lock_is_taken_into_account(sink: X11InputSink, recorder: Recorder) -> None:
    type_keysyms(sink, [ks.CAPS_LOCK])  # locks
    try:
        type_text(sink, "aB1")
        assert [e["text"] for e in recorder.typed(3)] == ["a", "B", "1"]
    finally:
        type_keysyms(sink, [ks.CAPS_LOCK])  # unlocks
    type_text(sink, "c")
    assert recorder.typed(1)[0]["text"] == "c"


def test_many_unmapped_keysyms_recycle_spare_keycodes(sink: X11InputSink, recorder: Recorder) -> None:
    # more distinct unmapped characters than the keymap has spare keycodes (19 on Xvfb's US map)
    chars = [chr(0x0410 + i) for i in range(30)]  # Cyrillic А… (legacy keysyms, none in the US map)
    for ch in chars:
        type_text(sink, ch)
        ev = recorder.typed(1)[0]  # wait for each one: a recycled keycode must not change under a pending key
        assert ev["text"] == ch, (ch, ev)


def test_release_uses_the_keycode_pressed(sink: X11InputSink, recorder: Recorder) -> None:
    # "A" pressed (Shift added by the sink), released as "a" after the client let go of Shift
    sink.key_event(ord("A"), True)
    sink.key_event(ord("a"), False)
    sink.flush()
    down = recorder.typed(1)[0]
    up = recorder.collect(lambda e: e["type"] == "key" and not e["down"] and e["keycode"] == down["keycode"], 1)
    assert up


def test_release_all_releases_keys_and_buttons(sink: X11InputSink, recorder: Recorder) -> None:
    sink.key_event(ord("q"), True)
    sink.key_event(0xE8, True)  # è, on a spare keycode
    sink.key_event(ks.CONTROL_L, True)
    sink.pointer_event(10, 10, 0b011)
    sink.flush()
    downs = recorder.collect(lambda e: e["type"] == "key" and e["down"], 3)
    recorder.collect(lambda e: e["type"] == "button" and e["down"], 2)
    sink.release_all()
    sink.flush()
    held = {e["keycode"] for e in downs}
    ups = recorder.collect(lambda e: e["type"] == "key" and not e["down"] and e["keycode"] in held, 3)
    assert {e["keycode"] for e in ups} == held
    buttons = recorder.collect(lambda e: e["type"] == "button" and not e["down"], 2)
    assert sorted(e["button"] for e in buttons) == [1, 2]


def test_cut_text_is_accepted(sink: X11InputSink) -> None:
    sink.cut_text("hello")  # clipboard is not this sink's job yet: a no-op
    sink.flush()


def test_spare_keycodes_are_restored_on_close(display: str, recorder: Recorder) -> None:
    s = X11InputSink(display)
    recorder.clear()
    type_text(s, "ñ")
    ev = recorder.typed(1)[0]
    assert ev["text"] == "ñ"
    assert 0xF1 in keymap(display)[ev["keycode"]]
    s.close()
    assert not any(keymap(display)[ev["keycode"]])
    s.key_event(ord("a"), True)  # after close: ignored, no error


def test_keymap_changes_and_altgr(sink: X11InputSink, recorder: Recorder, display: str) -> None:
    if shutil.which("setxkbmap") is None:
        pytest.skip("setxkbmap is not installed")
    env = dict(os.environ, DISPLAY=display)
    type_text(sink, "z")  # the sink has read the US map
    assert recorder.typed(1)[0]["text"] == "z"
    subprocess.run(["setxkbmap", "-layout", "de"], env=env, check=True, timeout=10)
    try:
        # the German map: z and y swap keys, @ and € are on AltGr (level 3), ß and ü have keys of their own
        type_text(sink, "zy@€ßü/")
        got = recorder.typed(7)
        assert "".join(e["text"] for e in got) == "zy@€ßü/"
        level3 = 0x80  # Mod5, where ISO_Level3_Shift sits
        assert [bool(e["state"] & level3) for e in got] == [False, False, True, True, False, False, False]
        german = keymap(display)
        assert german[got[4]["keycode"]][:2] == (0xDF, ord("?")), "ß comes from the layout's own key"
        # the client holds AltGr itself and sends the keysym its layout produced
        sink.key_event(ks.ISO_LEVEL3_SHIFT, True)
        type_text(sink, "@q")  # "q" with AltGr held: the sink lifts AltGr for it
        sink.key_event(ks.ISO_LEVEL3_SHIFT, False)
        sink.flush()
        got = recorder.typed(2)
        assert [e["text"] for e in got] == ["@", "q"]
        # Shift+7 is "/" on this layout: a client sending "7" with Shift held gets "7"
        sink.key_event(ks.SHIFT_L, True)
        type_text(sink, "7/")
        sink.key_event(ks.SHIFT_L, False)
        sink.flush()
        assert [e["text"] for e in recorder.typed(2)] == ["7", "/"]
    finally:
        subprocess.run(["setxkbmap", "-layout", "us"], env=env, check=True, timeout=10)
    type_text(sink, "z@")
    got = recorder.typed(2)
    assert [e["text"] for e in got] == ["z", "@"] and got[1]["state"] & 1  # back to Shift+2


# -- pointer -------------------------------------------------------------------------------------------------


def test_clicks_at_exact_positions(sink: X11InputSink, recorder: Recorder) -> None:
    for button, (x, y) in zip((1, 2, 3), ((5, 7), (320, 240), (639, 479)), strict=True):
        sink.pointer_event(x, y, 1 << (button - 1))
        sink.pointer_event(x, y, 0)
    sink.flush()
    got = recorder.collect(lambda e: e["type"] == "button", 6)
    assert [(e["button"], e["down"], e["x"], e["y"]) for e in got] == [
        (1, True, 5, 7),
        (1, False, 5, 7),
        (2, True, 320, 240),
        (2, False, 320, 240),
        (3, True, 639, 479),
        (3, False, 639, 479),
    ]


def test_drag(sink: X11InputSink, recorder: Recorder) -> None:
    sink.pointer_event(100, 100, 0)
    sink.pointer_event(100, 100, 1)  # press at A
    sink.pointer_event(150, 120, 1)
    sink.pointer_event(200, 140, 1)
    sink.pointer_event(200, 140, 0)  # release at B
    sink.flush()
    got = recorder.collect(lambda e: e["type"] in ("button", "motion"), 5)
    assert got[0] == {"type": "motion", "x": 100, "y": 100, "state": 0}
    assert (got[1]["type"], got[1]["down"], got[1]["x"], got[1]["y"]) == ("button", True, 100, 100)
    assert [(e["x"], e["y"]) for e in got[2:4]] == [(150, 120), (200, 140)]
    assert all(e["type"] == "motion" and e["state"] & 0x100 for e in got[2:4]), "Button1 held while moving"
    assert (got[4]["type"], got[4]["down"], got[4]["x"], got[4]["y"]) == ("button", False, 200, 140)


def test_wheel(sink: X11InputSink, recorder: Recorder) -> None:
    for bit in (3, 4, 5, 6):  # up, down, left, right
        sink.pointer_event(50, 60, 1 << bit)
        sink.pointer_event(50, 60, 0)
    sink.pointer_event(50, 60, 1 << 3)  # a held wheel bit is one click, not one per event
    sink.pointer_event(51, 60, 1 << 3)
    sink.pointer_event(51, 60, 0)
    sink.flush()
    got = recorder.collect(lambda e: e["type"] == "button", 10)
    assert [(e["button"], e["down"]) for e in got] == [(b, down) for b in (4, 5, 6, 7, 4) for down in (True, False)]
    assert all((e["x"], e["y"]) == (50, 60) for e in got)
