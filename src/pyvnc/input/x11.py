"""Client input (rfbproto 7.5.4 KeyEvent, 7.5.5 PointerEvent) injected into an X display through XTEST.

:class:`X11InputSink` turns what an RFB client sends into XTEST fake input on its own X connection, on one
dedicated thread, so the asyncio loop never waits for the X server. The calls :meth:`~X11InputSink.key_event`,
:meth:`~X11InputSink.pointer_event` and :meth:`~X11InputSink.release_all` only queue work, in order.

Keys. A client sends the *keysym* it wants (rfbproto 7.5.4): the character or function its own keyboard
layout produced. The X server needs a *keycode* plus the modifier state that selects the keysym's *level* on
that key. For each key press the sink:

1. normalises the keysym (a Unicode keysym becomes the legacy keysym for the same character when one exists,
   ASCII control characters become the TTY function keysyms);
2. looks the keysym up in the current core keyboard map (columns 0/1: group 1 levels 1/2, columns 4/5:
   levels 3/4 as XKB presents them to core clients) and picks the candidate needing the fewest modifier
   changes given the modifiers currently in effect (queried from the server, so Caps Lock and Num Lock count);
3. presses Shift or ISO_Level3_Shift (AltGr) around the key when its level needs them and they are not in
   effect, or briefly releases the Shift / AltGr keys the client holds when the level must not have them
   (a client whose layout puts "/" on Shift+7 sends "/" with Shift held: "/" must come out, not "?");
4. when the keysym is nowhere in the map (or only on a level it cannot reach), binds it to a *spare keycode*
   (one with no keysyms) on every level with ChangeKeyboardMapping, remembers the binding for reuse
   (least recently used bindings are recycled when spares run out) and restores those keycodes on
   :meth:`~X11InputSink.close` — the approach x11vnc takes.

The keycode pressed for a keysym is remembered, so its release releases that keycode even if the map or the
modifiers changed in between. Modifier keysyms (Shift, Control, Alt, Meta, Super, ISO_Level3_Shift,
Mode_switch…) are pressed as they are, never adjusted.

Pointer. Motion goes to the exact position; buttons 1–3 and 8–15 (bit 7 on: back, forward and more, from the
ExtendedMouseButtons pseudo-encoding's extra byte) are pressed and released as the button mask changes; the
wheel bits 3–6 (buttons 4–7: up, down, left, right) are clicks, a press and a release each time their bit
goes from 0 to 1 (rfbproto 7.5.5).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import keysyms as ks
from . import xt

logger = logging.getLogger(__name__)

# core protocol event types and modifier masks (X.h)
_KEY_PRESS = 2
_KEY_RELEASE = 3
_BUTTON_PRESS = 4
_BUTTON_RELEASE = 5
_MOTION_NOTIFY = 6
_MAPPING_NOTIFY = 34
_MAPPING_MODIFIER = 0
_MAPPING_KEYBOARD = 1
_SHIFT_MASK = 1 << 0
_LOCK_MASK = 1 << 1

#: button-mask bits: 7 of the PointerEvent byte and 8 more from ExtendedMouseButtons (X buttons 1-15)
_BUTTON_BITS = 15
#: RFB button-mask bits that are wheel clicks (bits 3–6 → X buttons 4–7)
_WHEEL_BITS = 0b0111_1000
#: seconds before retrying a display that could not be opened
_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class _Choice:
    """How to type a keysym: a keycode, and the level (shift, level 3) it needs, or ``None`` for "any"."""

    keycode: int
    shift: bool | None
    level3: bool | None


class X11InputSink:
    """Injects RFB client input into the X display ``display`` (":N", "host:N.S") with XTEST.

    Thread-safe and non-blocking: every public method queues work for the sink's own thread, which owns the
    X connection. Open the connection lazily on the first event; if the display cannot be opened the events
    are dropped (logged once) and the connection is retried a few seconds later.
    """

    def __init__(self, display: str) -> None:
        self.display_name = display
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pyvnc-x11-input")
        self._closed = False
        self._submit_lock = threading.Lock()
        # everything below is touched only on the executor thread
        self._d: Any = None
        self._X: Any = None
        self._xtest: Any = None
        self._retry_at = 0.0
        self._warned = False
        self._min_keycode = 8
        self._max_keycode = 255
        self._per_keycode = 2
        self._codes: dict[int, tuple[int, ...]] = {}  # keycode → its keysyms, by column
        self._keymap: dict[int, list[tuple[int, int]]] = {}  # keysym → [(keycode, column)]
        self._modmap: list[list[int]] = [[] for _ in range(8)]
        self._level3_mask = 0
        self._numlock_mask = 0
        self._shift_keycode = 0
        self._level3_keycode = 0
        self._spare: list[int] = []  # unbound spare keycodes (popped from the end)
        self._bound: OrderedDict[int, int] = OrderedDict()  # keysym → spare keycode, least recently used first
        self._own_changes: set[int] = set()  # spare keycodes whose MappingNotify we caused
        self._map_dirty = True
        self._pressed: dict[int, int] = {}  # keysym → keycode pressed for it
        self._held: dict[int, int] = {}  # keycode → how many pressed keysyms hold it
        self._buttons = 0
        self._position: tuple[int, int] | None = None
        self._evdev = False  # the keymap numbers keys as Linux input codes + 8
        self._scancodes: dict[int, int] = {}  # XT scancode → X keycode pressed for it

    # -- public API (any thread) ----------------------------------------------------------------------------

    def key_event(self, keysym: int, down: bool) -> None:
        """A client pressed (``down``) or released the key for ``keysym`` (rfbproto 7.5.4)."""
        self._submit(self._key, keysym & 0xFFFFFFFF, down)

    def scancode_event(self, scancode: int, keysym: int, down: bool) -> None:
        """A QEMU Extended Key Event (rfbproto 7.7.1): the physical key as an XT scancode, and its keysym.

        On an X server with evdev keycodes the scancode's key is pressed as it is (so the server's layout
        decides the character); unknown scancodes, or a keymap not numbered like evdev, fall back to
        :meth:`key_event` with the keysym.
        """
        self._submit(self._scancode, scancode, keysym & 0xFFFFFFFF, down)

    def pointer_event(self, x: int, y: int, buttons: int) -> None:
        """A client moved the pointer to (x, y) with ``buttons`` held (bit 0 = button 1; rfbproto 7.5.5)."""
        self._submit(self._pointer, x, y, buttons)

    def cut_text(self, text: str) -> None:
        """A client's clipboard text (rfbproto 7.5.6 ClientCutText).

        Owning the X selections needs a selection-owner window and its event loop; that is clipboard work
        (issue 6), not input injection. Until then the text is dropped and a debug line logged.
        """
        logger.debug("clipboard text from a client (%d characters) is not passed to %s", len(text), self.display_name)

    def release_all(self) -> None:
        """Release every key and button the clients still hold (call when a client disconnects)."""
        self._submit(self._release_all)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything queued so far reached the X server (for tests and orderly shutdown)."""
        with self._submit_lock:
            if self._closed:
                return
            future = self._executor.submit(self._sync)
        future.result(timeout)

    def close(self) -> None:
        """Release held keys and buttons, restore the spare keycodes bound, close the connection (blocking)."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._executor.submit(self._shutdown)
        self._executor.shutdown(wait=True)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        import asyncio

        await asyncio.to_thread(self.close)

    # -- the worker thread ----------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._submit_lock:
            if self._closed:
                return
            self._executor.submit(self._run, fn, *args)

    def _run(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            if self._connection() is None:
                return
            fn(*args)
            self._d.flush()
        except Exception as exc:  # the X server went away, or a bug: never kill the worker thread
            logger.warning("injecting input into %s failed: %s", self.display_name, exc)
            self._drop_connection()

    def _connection(self) -> Any:
        if self._d is not None:
            return self._d
        now = time.monotonic()
        if now < self._retry_at:
            return None
        try:
            xdisplay = importlib.import_module("Xlib.display")
            self._X = importlib.import_module("Xlib.X")
            self._xtest = importlib.import_module("Xlib.ext.xtest")
            d = xdisplay.Display(self.display_name)
            if not d.has_extension("XTEST"):
                d.close()
                raise RuntimeError("the X server has no XTEST extension")
        except Exception as exc:
            self._retry_at = now + _RETRY_AFTER
            if not self._warned:
                logger.warning("input injection into %s is unavailable: %s", self.display_name, exc)
                self._warned = True
            return None
        d.set_error_handler(self._on_x_error)
        self._d = d
        self._warned = False
        self._map_dirty = True
        self._bound.clear()
        self._pressed.clear()
        self._held.clear()
        self._scancodes.clear()
        self._buttons = 0
        self._position = None
        logger.debug("input injection into %s ready", self.display_name)
        return d

    def _on_x_error(self, error: Any, request: Any) -> None:
        logger.debug("X error while injecting input into %s: %s", self.display_name, error)

    def _drop_connection(self) -> None:
        d, self._d = self._d, None
        if d is not None:
            with contextlib.suppress(Exception):
                d.close()
        self._retry_at = time.monotonic() + _RETRY_AFTER

    def _sync(self) -> None:
        if self._d is not None:
            with contextlib.suppress(Exception):
                self._d.sync()

    def _shutdown(self) -> None:
        if self._d is None:
            return
        try:
            self._release_all()
            self._restore_spares()
            self._d.sync()
        except Exception as exc:
            logger.debug("cleaning up input on %s failed: %s", self.display_name, exc)
        self._drop_connection()

    # -- keyboard map ---------------------------------------------------------------------------------------

    def _drain_events(self) -> None:
        """Read queued events; a MappingNotify someone else caused makes the cached maps stale."""
        d = self._d
        while d.pending_events():
            ev = d.next_event()
            if ev.type != _MAPPING_NOTIFY:
                continue
            if ev.request == _MAPPING_KEYBOARD and ev.count == 1 and ev.first_keycode in self._own_changes:
                self._own_changes.discard(ev.first_keycode)
                continue
            self._map_dirty = True

    def _load_maps(self) -> None:
        d = self._d
        self._min_keycode = d.display.info.min_keycode
        self._max_keycode = d.display.info.max_keycode
        count = self._max_keycode - self._min_keycode + 1
        rows = d.get_keyboard_mapping(self._min_keycode, count)
        self._per_keycode = len(rows[0]) if rows else 2
        self._codes = {self._min_keycode + i: tuple(row) for i, row in enumerate(rows)}
        self._keymap = {}
        for keycode, row in self._codes.items():
            for column, keysym in enumerate(row):
                if keysym != ks.NO_SYMBOL:
                    self._keymap.setdefault(keysym, []).append((keycode, column))
        self._modmap = [list(codes) for codes in d.get_modifier_mapping()]
        modifier_keycodes = {kc for codes in self._modmap for kc in codes if kc}
        # the modifier bits that Level3 and NumLock keys set
        self._level3_mask = self._mask_of(ks.ISO_LEVEL3_SHIFT)
        self._numlock_mask = self._mask_of(ks.NUM_LOCK)
        self._shift_keycode = self._modifier_keycode(ks.SHIFT_L, 0) or self._modifier_keycode(ks.SHIFT_R, 0)
        self._level3_keycode = self._modifier_keycode(ks.ISO_LEVEL3_SHIFT, self._level3_mask.bit_length() - 1)
        # bindings survive only where the map still holds them
        for keysym, keycode in list(self._bound.items()):
            if keysym not in self._codes.get(keycode, ()):
                del self._bound[keysym]
        bound = set(self._bound.values())
        self._spare = [
            kc
            for kc, row in self._codes.items()
            if all(k == ks.NO_SYMBOL for k in row) and kc not in modifier_keycodes and kc not in bound
        ]
        # evdev numbering (keycode = Linux code + 8)? Check layout-independent keys: Escape (KEY_ESC 1),
        # BackSpace (14), Tab (15), Return (28) and Up (103; 98 in the old xfree86 numbering)
        probes = {1: ks.ESCAPE, 14: 0xFF08, 15: 0xFF09, 28: 0xFF0D, 103: 0xFF52}
        self._evdev = all(
            self._codes.get(code + xt.EVDEV_OFFSET, (ks.NO_SYMBOL,))[0] == keysym for code, keysym in probes.items()
        )
        self._spare.reverse()  # hand out the lowest keycode last; high keycodes have no evdev meaning
        self._map_dirty = False
        logger.debug(
            "keyboard map of %s: %d keycodes, %d spare, level3 mask %#x",
            self.display_name,
            count,
            len(self._spare),
            self._level3_mask,
        )

    def _mask_of(self, keysym: int) -> int:
        """The modifier mask set by the key that produces ``keysym`` (0 when no modifier has it)."""
        keycodes = {kc for kc, col in self._keymap.get(keysym, []) if col == 0}
        for index, codes in enumerate(self._modmap):
            if keycodes.intersection(codes):
                return 1 << index
        return 0

    def _modifier_keycode(self, keysym: int, index: int) -> int:
        """A keycode that produces ``keysym`` and is bound to modifier ``index`` (0 when none)."""
        if index < 0:
            return 0
        for kc, col in self._keymap.get(keysym, []):
            if col == 0 and kc in self._modmap[index]:
                return kc
        return 0

    def _refresh(self) -> None:
        self._drain_events()
        if self._map_dirty:
            self._load_maps()

    # -- keys -----------------------------------------------------------------------------------------------

    def _fake_key(self, keycode: int, down: bool) -> None:
        self._xtest.fake_input(self._d, _KEY_PRESS if down else _KEY_RELEASE, keycode)

    def _key(self, keysym: int, down: bool) -> None:
        self._refresh()
        if not down:
            self._key_up(keysym)
            return
        if ks.is_unicode_keysym(keysym) or keysym < 0x20 or keysym == 0x7F:
            keysym = ks.legacy_keysym(keysym) if keysym >= 0x20 else ks.unicode_to_keysym(keysym)
        if keysym in (ks.NO_SYMBOL, ks.VOID_SYMBOL):
            return
        if ks.is_modifier(keysym):
            keycode = self._modifier_press_keycode(keysym)
            self._fake_key(keycode, True)
            self._note_pressed(keysym, keycode)
            return
        state = self._d.screen().root.query_pointer().mask
        choice = self._choose(keysym, state)
        if choice is None:
            keycode = self._bind_spare(keysym)
            if keycode == 0:
                logger.debug("no keycode can be bound to keysym %#x on %s; dropped", keysym, self.display_name)
                return
            self._fake_key(keycode, True)
        else:
            keycode = choice.keycode
            self._press_with_level(choice, state)
        self._note_pressed(keysym, keycode)

    def _modifier_press_keycode(self, keysym: int) -> int:
        """The keycode for a modifier keysym: from the map, else a spare one bound to it."""
        entries = sorted(self._keymap.get(keysym, []), key=lambda e: e[1])
        if entries:
            return entries[0][0]
        return self._bind_spare(keysym)

    def _note_pressed(self, keysym: int, keycode: int) -> None:
        if keycode == 0:
            return
        previous = self._pressed.get(keysym)
        if previous == keycode:
            return  # a repeated press of a held key (client auto-repeat)
        if previous is not None:
            self._unhold(previous)
        self._pressed[keysym] = keycode
        self._held[keycode] = self._held.get(keycode, 0) + 1

    def _unhold(self, keycode: int) -> bool:
        """Forget one holder of ``keycode``; True when nothing holds it any more."""
        left = self._held.get(keycode, 0) - 1
        if left > 0:
            self._held[keycode] = left
            return False
        self._held.pop(keycode, None)
        return True

    def _key_up(self, keysym: int) -> None:
        keycode = self._pressed.pop(keysym, None)
        if keycode is None:
            # released under another keysym than it was pressed with (e.g. "A" pressed, "a" released):
            # release the key that keysym lives on, if we hold it
            keysym = ks.legacy_keysym(keysym)
            candidates = [kc for kc, _ in self._keymap.get(keysym, [])]
            if keysym in self._bound:
                candidates.append(self._bound[keysym])
            held = [kc for kc in candidates if kc in self._held]
            if not held:
                return
            keycode = held[0]
            for other, kc in list(self._pressed.items()):
                if kc == keycode:
                    del self._pressed[other]
            self._held.pop(keycode, None)
            self._fake_key(keycode, False)
            return
        if self._unhold(keycode):
            self._fake_key(keycode, False)

    def _choose(self, keysym: int, state: int) -> _Choice | None:
        """The keycode and level to type ``keysym`` with the fewest modifier changes, or None."""
        entries = list(self._keymap.get(keysym, []))
        for alternative in ks.alternative_keysyms(keysym):
            entries.extend(self._keymap.get(alternative, []))
        best: tuple[int, int, _Choice] | None = None
        bound = set(self._bound.values())
        for keycode, column in entries:
            if keycode in bound:
                return _Choice(keycode, None, None)  # our own binding: the same keysym on every level
            if column not in (0, 1, 4, 5):
                continue  # group 2: reachable only by switching groups, a spare keycode is simpler
            if self._is_keypad_key(keycode):
                # Num Lock, not Shift, picks the level (Shift+KP_End stays KP_End with XKB's default types):
                # usable without Shift when Num Lock is in the state the column needs
                numlock_on = bool(self._numlock_mask and state & self._numlock_mask)
                if column not in (0, 1) or (column == 1) != numlock_on:
                    continue
                choice = _Choice(keycode, False, None)
                key = (self._changes_needed(choice, state), column)
                if best is None or key < best[:2]:
                    best = (key[0], key[1], choice)
                continue
            want_level3 = column in (4, 5)
            if want_level3 and not (self._level3_mask and self._level3_keycode):
                continue
            want_shift = column in (1, 5) if not self._same_on_shift(keycode, column) else None
            if want_shift is not None and self._shift_keycode == 0 and want_shift:
                continue
            choice = _Choice(keycode, want_shift, want_level3)
            cost = self._changes_needed(choice, state)
            key = (cost, column)
            if best is None or key < best[:2]:
                best = (cost, column, choice)
        return best[2] if best is not None else None

    def _same_on_shift(self, keycode: int, column: int) -> bool:
        """True when Shift does not change what the key's level gives (e.g. a key with one keysym)."""
        row = self._codes.get(keycode, ())
        base = column - (column % 2)
        lower = row[base] if base < len(row) else ks.NO_SYMBOL
        upper = row[base + 1] if base + 1 < len(row) else ks.NO_SYMBOL
        if upper == ks.NO_SYMBOL:
            # core protocol: a lone keysym means "the same on both levels" unless it is a cased letter
            return not ks.is_cased_letter(lower)
        return lower == upper

    def _shift_inverted(self, keycode: int, state: int) -> bool:
        """True when Caps Lock in ``state`` inverts Shift for this key (a letter key)."""
        row = self._codes.get(keycode, ())
        return bool(state & _LOCK_MASK and row and ks.is_cased_letter(row[0]))

    def _is_keypad_key(self, keycode: int) -> bool:
        """True for keypad keys whose second level is a Num Lock number (KP_End / KP_1 and the like)."""
        row = self._codes.get(keycode, ())
        return len(row) > 1 and ks.is_keypad_number(row[1])

    def _changes_needed(self, choice: _Choice, state: int) -> int:
        cost = 0
        if choice.shift is not None:
            shift_now = bool(state & _SHIFT_MASK) != self._shift_inverted(choice.keycode, state)
            cost += shift_now != choice.shift
        if choice.level3 is not None and self._level3_mask:
            cost += bool(state & self._level3_mask) != choice.level3
        return cost

    def _held_keycodes(self, modifier_mask: int) -> list[int]:
        """Keycodes of the modifier ``modifier_mask`` that are down now (on the server)."""
        index = modifier_mask.bit_length() - 1
        if index < 0:
            return []
        keymap = self._d.query_keymap()
        return [kc for kc in self._modmap[index] if kc and keymap[kc // 8] & (1 << (kc % 8))]

    def _press_with_level(self, choice: _Choice, state: int) -> None:
        """Press ``choice.keycode`` with Shift/Level3 put in the state its level needs, then restore them."""
        pressed: list[int] = []  # modifier keys pressed for this key, released afterwards
        released: list[int] = []  # modifier keys held by the client, lifted for this key, pressed again
        if choice.shift is not None:
            want_raw_shift = choice.shift != self._shift_inverted(choice.keycode, state)
            if want_raw_shift and not state & _SHIFT_MASK:
                pressed.append(self._shift_keycode)
            elif not want_raw_shift and state & _SHIFT_MASK:
                released.extend(self._held_keycodes(_SHIFT_MASK))
        if choice.level3 is not None and self._level3_mask:
            active = bool(state & self._level3_mask)
            if choice.level3 and not active:
                pressed.append(self._level3_keycode)
            elif not choice.level3 and active:
                released.extend(self._held_keycodes(self._level3_mask))
        for kc in released:
            self._fake_key(kc, False)
        for kc in pressed:
            self._fake_key(kc, True)
        self._fake_key(choice.keycode, True)
        for kc in reversed(pressed):
            self._fake_key(kc, False)
        for kc in released:
            self._fake_key(kc, True)

    # -- spare keycodes -------------------------------------------------------------------------------------

    def _bind_spare(self, keysym: int) -> int:
        """A keycode that types ``keysym`` on every level, binding a spare keycode if needed (0: none left)."""
        keycode = self._bound.get(keysym)
        if keycode is not None:
            self._bound.move_to_end(keysym)
            return keycode
        if self._spare:
            keycode = self._spare.pop()
        else:
            # recycle the least recently used binding that is not held down
            victim = next((k for k, kc in self._bound.items() if kc not in self._held), None)
            if victim is None:
                return 0
            keycode = self._bound.pop(victim)
        self._set_keycode(keycode, (keysym,) * self._per_keycode)
        self._bound[keysym] = keycode
        logger.debug("bound keysym %#x to spare keycode %d on %s", keysym, keycode, self.display_name)
        return keycode

    def _set_keycode(self, keycode: int, row: tuple[int, ...]) -> None:
        old = self._codes.get(keycode, ())
        for keysym in old:
            entries = self._keymap.get(keysym)
            if entries is not None:
                entries[:] = [e for e in entries if e[0] != keycode]
        self._d.change_keyboard_mapping(keycode, [row])
        self._own_changes.add(keycode)
        self._codes[keycode] = row

    def _restore_spares(self) -> None:
        """Give the spare keycodes bound back their original (empty) keysyms."""
        for keysym, keycode in list(self._bound.items()):
            if keysym in self._codes.get(keycode, ()):
                self._set_keycode(keycode, (ks.NO_SYMBOL,) * self._per_keycode)
            del self._bound[keysym]

    # -- scancodes (QEMU Extended Key Events) ----------------------------------------------------------------

    def _scancode(self, scancode: int, keysym: int, down: bool) -> None:
        self._refresh()
        if not down:
            keycode = self._scancodes.pop(scancode, None)
            if keycode is None:
                self._key(keysym, False)  # pressed through the keysym fallback (or never pressed)
            elif self._unhold(keycode):
                self._fake_key(keycode, False)
            return
        keycode = xt.evdev_keycode(scancode)
        if not self._evdev or keycode is None or not self._min_keycode <= keycode <= self._max_keycode:
            self._key(keysym, True)
            return
        if scancode not in self._scancodes:
            self._scancodes[scancode] = keycode
            self._held[keycode] = self._held.get(keycode, 0) + 1
        self._fake_key(keycode, True)  # a repeated press is the client's auto-repeat: pass it on

    # -- pointer --------------------------------------------------------------------------------------------

    def _pointer(self, x: int, y: int, buttons: int) -> None:
        d, xtest = self._d, self._xtest
        if self._position != (x, y):
            xtest.fake_input(d, _MOTION_NOTIFY, x=max(0, x), y=max(0, y))
            self._position = (x, y)
        changed = self._buttons ^ buttons
        for bit in range(_BUTTON_BITS):
            mask = 1 << bit
            if not changed & mask:
                continue
            button = bit + 1
            if mask & _WHEEL_BITS:
                if buttons & mask:  # a wheel click: press and release as the bit goes down
                    xtest.fake_input(d, _BUTTON_PRESS, button)
                    xtest.fake_input(d, _BUTTON_RELEASE, button)
            else:
                xtest.fake_input(d, _BUTTON_PRESS if buttons & mask else _BUTTON_RELEASE, button)
        self._buttons = buttons

    def _release_all(self) -> None:
        for keycode in list(self._held):
            self._fake_key(keycode, False)
        self._held.clear()
        self._pressed.clear()
        self._scancodes.clear()
        for bit in range(_BUTTON_BITS):
            mask = 1 << bit
            if self._buttons & mask and not mask & _WHEEL_BITS:
                self._xtest.fake_input(self._d, _BUTTON_RELEASE, bit + 1)
        self._buttons = 0
