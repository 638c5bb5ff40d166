"""The X DAMAGE extension: know when the screen changed, without grabbing it to find out.

With a still screen, polling means grabbing and comparing a full frame up to ``max_fps`` times a second. A
DAMAGE object on the root window (report level NonEmpty) sends one event when anything is drawn; the capture
thread asks :meth:`DamageWatcher.take` before each grab and skips grabs while nothing was drawn. The grab itself
and the pixel comparison still decide what changed, so damage reports only save work, they never decide
what clients see.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from typing import Any

from ..errors import CaptureError

logger = logging.getLogger(__name__)

_REPORT_NON_EMPTY = 3


class DamageWatcher:
    """Tracks whether the root window of ``display`` was drawn on since the last :meth:`take`."""

    def __init__(self, display: str) -> None:
        try:
            xdisplay = importlib.import_module("Xlib.display")
            importlib.import_module("Xlib.ext.damage")
            d = xdisplay.Display(display)
        except Exception as exc:
            raise CaptureError(f"cannot open X display {display} for damage reports: {exc}") from exc
        if not d.has_extension("DAMAGE"):
            d.close()
            raise CaptureError(f"X display {display} has no DAMAGE extension")
        try:
            d.damage_query_version()  # announces version 1.1, which DamageNotify events need
            self._damage = d.screen().root.damage_create(_REPORT_NON_EMPTY)
            d.sync()
        except Exception as exc:
            d.close()
            raise CaptureError(f"cannot create a damage object on {display}: {exc}") from exc
        self._d: Any = d
        self._event_type = d.extension_event.DamageNotify
        self._lock = threading.Lock()
        self._dirty = True  # the first take() says "grab"
        #: the root window's size as the latest damage report gave it
        self.root_size: tuple[int, int] | None = None

    def take(self) -> bool:
        """True if something was drawn since the last call (and re-arm the report). Never blocks."""
        with self._lock:
            d = self._d
            if d is None:
                return True
            dirty = self._dirty
            while d.pending_events():
                ev = d.next_event()
                etype = self._event_type
                code = etype[0] if isinstance(etype, tuple) else etype
                if ev.type == code:
                    dirty = True
                    geometry = ev.drawable_geometry
                    self.root_size = (int(geometry.width), int(geometry.height))
            if dirty:
                # subtract before the caller grabs: anything drawn from now on raises a new event
                d.damage_subtract(self._damage)
                d.flush()
            self._dirty = False
            return dirty

    def close(self) -> None:
        with self._lock:
            d, self._d = self._d, None
        if d is not None:
            with contextlib.suppress(Exception):
                d.damage_destroy(self._damage)
                d.close()
