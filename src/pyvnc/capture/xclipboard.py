"""The X desktop's clipboard both ways: X selections (ICCCM §2) ↔ RFB cut text (rfbproto 7.5.6, 7.6.4).

:class:`XClipboard` keeps its own X connection and a small unmapped window on a thread of its own (an
:class:`XEventThread`), so the asyncio loop never waits for the X server or for another client's answer.

X → clients. The XFixes extension reports every change of owner of CLIPBOARD and PRIMARY
(XFixesSelectSelectionInput with SetSelectionOwnerNotifyMask, XFixes protocol §6). When someone other
than us takes a selection, the thread asks the owner to convert it to UTF8_STRING (STRING when the owner
refuses) into a property on our window (ICCCM §2.4 ConvertSelection), reads the property, following the INCR
protocol for large data (ICCCM §2.7.2), and hands the text to ``on_text``. Texts larger than ``max_bytes``
are skipped with a log line; the same text twice in a row is passed on once.

Clients → X. :meth:`XClipboard.set_text` makes our window the owner of CLIPBOARD and PRIMARY (with a real
server timestamp, ICCCM §2.1) and the thread answers SelectionRequest events (ICCCM §2.2) for TARGETS,
TIMESTAMP, UTF8_STRING, TEXT and STRING, with INCR for data larger than one request; other targets are
refused (property None). The text is served until another client takes both selections (SelectionClear).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import queue
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import CaptureError

logger = logging.getLogger(__name__)

#: the default size limit of clipboard texts, both ways (bytes of UTF-8)
DEFAULT_MAX_BYTES = 1 << 20

# core protocol numbers (X.h)
_NONE = 0
_CURRENT_TIME = 0
_ANY_PROPERTY_TYPE = 0
_PROPERTY_NEW_VALUE = 0
_PROPERTY_DELETE = 1
_PROPERTY_CHANGE_MASK = 1 << 22
_PROP_MODE_APPEND = 2
_SELECTION_CLEAR = 29
_SELECTION_REQUEST = 30
_SELECTION_NOTIFY = 31
_PROPERTY_NOTIFY = 28
# XFixes (xfixesproto): SelectSelectionInput mask bit for owner changes
_SET_SELECTION_OWNER_NOTIFY_MASK = 1 << 0


def _window_id(window: Any) -> int:
    """The id of a python-xlib window object (or of a plain number, as X.NONE comes)."""
    return int(getattr(window, "id", window))


class XEventThread:
    """A worker thread owning one X connection: it handles X events and runs calls queued from other threads.

    Construct it on a worker thread (opening the connection blocks), then :meth:`start` it. Subclasses
    override :meth:`_handle`. Everything touching the connection runs on the thread after :meth:`start`.
    """

    #: what the thread is for, in log lines and the thread's name
    purpose = "X events"

    def __init__(self, display: str) -> None:
        self.display_name = display
        try:
            self._X: Any = importlib.import_module("Xlib.X")
            xdisplay = importlib.import_module("Xlib.display")
            self._d: Any = xdisplay.Display(display)
        except Exception as exc:
            raise CaptureError(f"cannot open X display {display} for {self.purpose}: {exc}") from exc
        self._d.set_error_handler(self._on_x_error)
        xerror = importlib.import_module("Xlib.error")
        self._connection_errors: tuple[type[BaseException], ...] = (xerror.ConnectionClosedError, OSError)
        self._calls: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name=f"pyvnc-{self.purpose}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the thread (from any thread; never blocks)."""
        self._calls.put((fn, args))
        with contextlib.suppress(OSError):  # the pipe is full: the thread is awake anyway
            os.write(self._wake_w, b"\0")

    def close(self) -> None:
        """Stop the thread and close the connection (blocks until the thread ended)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")
        if self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self._d.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _on_x_error(self, error: Any, request: Any) -> None:
        logger.debug("X error in %s on %s: %s", self.purpose, self.display_name, error)

    def _handle(self, event: Any) -> None:
        """Handle one X event (on the thread)."""

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn``; an error other than a lost connection is logged and the thread goes on."""
        try:
            fn(*args)
        except self._connection_errors:
            raise
        except Exception as exc:
            logger.warning("%s on %s: %s failed: %s", self.purpose, self.display_name, fn.__name__, exc)

    def _main(self) -> None:
        d = self._d
        fd = d.fileno()
        try:
            while not self._stopping:
                while d.pending_events():
                    self._guarded(self._handle, d.next_event())
                while True:
                    try:
                        fn, args = self._calls.get_nowait()
                    except queue.Empty:
                        break
                    self._guarded(fn, *args)
                d.flush()
                if d.pending_events():
                    continue
                readable, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in readable:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
        except Exception as exc:  # the X server went away (or a bug): the grab loop reports a lost display
            if not self._stopping:
                logger.warning("%s on %s stopped: %s", self.purpose, self.display_name, exc)


@dataclass
class _Incoming:
    """A conversion we asked for: ``selection`` into our property ``prop`` as ``target``."""

    selection: int
    prop: int
    target: int
    incr: bool = False
    discard: bool = False  # an INCR transfer past the size limit: delete chunks until the end
    type: int = 0
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass
class _Outgoing:
    """An INCR transfer to ``requestor``'s property ``prop``: the next chunk goes out when it is deleted."""

    requestor: Any
    prop: int
    type: int
    data: bytes
    offset: int = 0


class XClipboard(XEventThread):
    """Bridges the CLIPBOARD and PRIMARY selections of ``display`` and RFB cut text.

    ``on_text(text)`` is called on the clipboard thread when another X client copied ``text``; with
    ``send_primary=False`` only CLIPBOARD changes are reported (clients' text still sets both). Raises
    :class:`CaptureError` when the display cannot be opened or has no XFixes extension.
    """

    purpose = "clipboard"

    def __init__(
        self,
        display: str,
        on_text: Callable[[str], None],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        send_primary: bool = True,
    ) -> None:
        super().__init__(display)
        d = self._d
        try:
            importlib.import_module("Xlib.ext.xfixes")
            if not d.has_extension("XFIXES"):
                raise CaptureError(f"X display {display} has no XFIXES extension")
            d.xfixes_query_version()
            self._event_module: Any = importlib.import_module("Xlib.protocol.event")
            atom = d.intern_atom
            self._clipboard = atom("CLIPBOARD")
            self._primary = 1  # XA_PRIMARY
            self._utf8 = atom("UTF8_STRING")
            self._string = 31  # XA_STRING
            self._text = atom("TEXT")
            self._targets = atom("TARGETS")
            self._timestamp = atom("TIMESTAMP")
            self._incr = atom("INCR")
            self._atom_type = 4  # XA_ATOM
            self._integer = 19  # XA_INTEGER
            self._time_prop = atom("_PYVNC_TIMESTAMP")
            self._props = {self._clipboard: atom("_PYVNC_CLIPBOARD"), self._primary: atom("_PYVNC_PRIMARY")}
            screen = d.screen()
            self._window = screen.root.create_window(
                -10, -10, 1, 1, 0, screen.root_depth, event_mask=_PROPERTY_CHANGE_MASK
            )
            watched = (self._clipboard, self._primary) if send_primary else (self._clipboard,)
            for selection in watched:
                d.xfixes_select_selection_input(self._window, selection, _SET_SELECTION_OWNER_NOTIFY_MASK)
            # python-xlib registers a per-display copy of the event class: match the (code, subcode) instead
            self._owner_notify: tuple[int, int] = tuple(d.extension_event.SetSelectionOwnerNotify)
            d.sync()
        except CaptureError:
            d.close()
            raise
        except Exception as exc:
            d.close()
            raise CaptureError(f"cannot watch the selections of {display}: {exc}") from exc
        self.on_text = on_text
        self.max_bytes = max_bytes
        # one request must hold a chunk: python-xlib does not use BIG-REQUESTS
        self._chunk = max(4096, min(1 << 18, d.display.info.max_request_length * 4 - 1024))
        # everything below is touched only on the thread
        self._incoming: dict[int, _Incoming] = {}  # selection → conversion in progress
        self._outgoing: dict[tuple[int, int], _Outgoing] = {}  # (requestor id, property) → transfer
        self._owned: str | None = None  # the text we serve
        self._owned_selections: set[int] = set()
        self._pending: str | None = None  # text waiting for a timestamp to take ownership with
        self._own_time = _CURRENT_TIME
        self._last_text: str | None = None
        self._watched = watched

    def start(self) -> None:
        """Start the thread, and report what the selections hold already."""
        super().start()
        self.call(self._fetch_current)

    def set_text(self, text: str) -> None:
        """A client's cut text: own CLIPBOARD and PRIMARY with it (any thread; never blocks)."""
        if len(text.encode("utf-8", "replace")) > self.max_bytes:
            logger.info("clipboard text from a client (%d characters) is above the limit; not passed to X", len(text))
            return
        self.call(self._request_ownership, text)

    # -- X → clients (the thread) ---------------------------------------------------------------------------

    def _fetch_current(self) -> None:
        for selection in self._watched:
            if _window_id(self._d.get_selection_owner(selection)) not in (_NONE, self._window.id):
                self._convert(selection, self._utf8, _CURRENT_TIME)

    def _convert(self, selection: int, target: int, time: int) -> None:
        prop = self._props[selection]
        self._window.delete_property(prop)
        self._incoming[selection] = _Incoming(selection, prop, target)
        self._window.convert_selection(selection, target, prop, time)

    def _on_owner_change(self, ev: Any) -> None:
        if _window_id(ev.owner) in (_NONE, self._window.id) or ev.selection not in self._props:
            return  # nobody owns it, or we do: nothing to tell clients
        self._convert(ev.selection, self._utf8, ev.selection_timestamp)

    def _on_selection_notify(self, ev: Any) -> None:
        transfer = self._incoming.get(ev.selection)
        if transfer is None or ev.target != transfer.target:
            return
        if ev.property == _NONE:
            if transfer.target == self._utf8:
                self._convert(ev.selection, self._string, ev.time)  # an owner that knows only STRING
            else:
                del self._incoming[ev.selection]
            return
        r = self._window.get_property(transfer.prop, _ANY_PROPERTY_TYPE, 0, (self.max_bytes + 3) // 4 + 1)
        if r is None:
            del self._incoming[ev.selection]
            return
        if r.property_type == self._incr:
            size = int(r.value[0]) if len(r.value) else 0
            transfer.incr = True
            if size > self.max_bytes:
                logger.info("the X clipboard holds %d bytes, above the limit of %d; not sent", size, self.max_bytes)
                transfer.discard = True
            self._window.delete_property(transfer.prop)  # start the transfer (ICCCM §2.7.2)
            return
        del self._incoming[ev.selection]
        self._window.delete_property(transfer.prop)
        if r.bytes_after or r.format != 8:
            if r.bytes_after:
                logger.info("the X clipboard holds more than %d bytes; not sent", self.max_bytes)
            return
        self._deliver(r.property_type, bytes(r.value))

    def _on_incr_chunk(self, transfer: _Incoming) -> None:
        r = self._window.get_property(transfer.prop, _ANY_PROPERTY_TYPE, 0, (self.max_bytes + 3) // 4 + 1)
        self._window.delete_property(transfer.prop)  # asks the owner for the next chunk
        if r is None:
            return
        value = bytes(r.value) if r.format == 8 else b""
        if not value:  # the zero-length chunk ends the transfer
            del self._incoming[transfer.selection]
            if not transfer.discard:
                self._deliver(transfer.type, b"".join(transfer.chunks))
            return
        if transfer.discard:
            return
        transfer.type = r.property_type
        transfer.size += len(value)
        if transfer.size > self.max_bytes:
            logger.info("the X clipboard holds more than %d bytes; not sent", self.max_bytes)
            transfer.discard = True
            transfer.chunks.clear()
            return
        transfer.chunks.append(value)

    def _deliver(self, prop_type: int, data: bytes) -> None:
        text = data.decode("latin-1") if prop_type == self._string else data.decode("utf-8", "replace")
        if text == self._last_text:
            return
        self._last_text = text
        try:
            self.on_text(text)
        except Exception as exc:
            logger.warning("passing the X clipboard on failed: %s", exc)

    # -- clients → X (the thread) ---------------------------------------------------------------------------

    def _request_ownership(self, text: str) -> None:
        # a real timestamp for SetSelectionOwner (ICCCM §2.1): append nothing to a property, read the time
        # from the PropertyNotify event that follows
        self._pending = text
        self._window.change_property(self._time_prop, self._string, 8, b"", mode=_PROP_MODE_APPEND)

    def _take_ownership(self, time: int) -> None:
        text, self._pending = self._pending, None
        if text is None:
            return
        self._owned = text
        self._last_text = text  # X clients pasting it back is no news for the clients
        self._own_time = time
        self._owned_selections = set()
        for selection in (self._clipboard, self._primary):
            self._window.set_selection_owner(selection, time)
            if _window_id(self._d.get_selection_owner(selection)) == self._window.id:
                self._owned_selections.add(selection)
        if not self._owned_selections:
            logger.info("could not own the selections of %s", self.display_name)
            self._owned = None

    def _on_selection_clear(self, ev: Any) -> None:
        self._owned_selections.discard(ev.atom)
        if not self._owned_selections:
            self._owned = None

    def _on_selection_request(self, ev: Any) -> None:
        prop = ev.property or ev.target  # ICCCM §2.2: None means an obsolete client, use the target
        requestor = ev.requestor
        ok = self._owned is not None and ev.selection in self._owned_selections and self._answer(ev, requestor, prop)
        reply = self._event_module.SelectionNotify(
            time=ev.time,
            requestor=requestor,
            selection=ev.selection,
            target=ev.target,
            property=prop if ok else _NONE,
        )
        requestor.send_event(reply, event_mask=0)

    def _answer(self, ev: Any, requestor: Any, prop: int) -> bool:
        """Write the conversion ``ev`` asks for into ``requestor``'s ``prop``; False: refuse the target."""
        text = self._owned
        assert text is not None
        target = ev.target
        if target == self._targets:
            targets = [self._targets, self._timestamp, self._utf8, self._text, self._string]
            requestor.change_property(prop, self._atom_type, 32, targets)
            return True
        if target == self._timestamp:
            requestor.change_property(prop, self._integer, 32, [self._own_time])
            return True
        if target in (self._utf8, self._text):
            prop_type, data = self._utf8, text.encode("utf-8", "replace")
        elif target == self._string:
            prop_type, data = self._string, text.encode("latin-1", "replace")
        else:
            return False
        if len(data) <= self._chunk:
            requestor.change_property(prop, prop_type, 8, data)
            return True
        # INCR (ICCCM §2.7.2): announce the size, then one chunk each time the requestor deletes the property
        requestor.change_attributes(event_mask=_PROPERTY_CHANGE_MASK)
        requestor.change_property(prop, self._incr, 32, [len(data)])
        self._outgoing[(requestor.id, prop)] = _Outgoing(requestor, prop, prop_type, data)
        return True

    def _on_incr_deleted(self, transfer: _Outgoing) -> None:
        chunk = transfer.data[transfer.offset : transfer.offset + self._chunk]
        transfer.requestor.change_property(transfer.prop, transfer.type, 8, chunk)
        transfer.offset += len(chunk)
        if not chunk:  # the zero-length chunk just written ends the transfer
            del self._outgoing[(transfer.requestor.id, transfer.prop)]
            if not any(key[0] == transfer.requestor.id for key in self._outgoing):
                transfer.requestor.change_attributes(event_mask=0)

    # -- dispatch -------------------------------------------------------------------------------------------

    def _handle(self, event: Any) -> None:
        etype = event.type
        if etype == _PROPERTY_NOTIFY:
            window = event.window.id
            if window == self._window.id:
                if event.atom == self._time_prop:
                    self._take_ownership(event.time)
                elif event.state == _PROPERTY_NEW_VALUE:
                    for transfer in list(self._incoming.values()):
                        if transfer.incr and transfer.prop == event.atom:
                            self._on_incr_chunk(transfer)
            elif event.state == _PROPERTY_DELETE:
                outgoing = self._outgoing.get((window, event.atom))
                if outgoing is not None:
                    self._on_incr_deleted(outgoing)
        elif etype == _SELECTION_NOTIFY:
            self._on_selection_notify(event)
        elif etype == _SELECTION_REQUEST:
            self._on_selection_request(event)
        elif etype == _SELECTION_CLEAR:
            self._on_selection_clear(event)
        elif (etype, getattr(event, "sub_code", None)) == self._owner_notify:
            self._on_owner_change(event)
