"""The second core: a thread pool that encoders hand independent pieces of a big update to.

numpy, zlib, ISA-L and libjpeg-turbo release the GIL while they work on large buffers, so pieces that do not
depend on one another (bands of a stateless encoding, the ZRLE tile data of two bands, the deflate segments
of one stream, the JPEG images of a Tight update) run side by side on threads. Pieces are only handed over
when the update is big (:data:`SPLIT_PIXELS`, :data:`SPLIT_BYTES`): for small ones the hand-over costs more
than it saves.

The pool is shared by every session; an encoder submits to it from the session's own encode thread, does a
share of the work itself and collects the results there, so no pool thread ever waits on another. (The
thread that holds the GIL for numpy's many small steps keeps a freshly woken pool thread from starting for
up to the interpreter's switch interval; the caller taking up pieces no pool thread has started keeps both
cores busy regardless.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: updates of at least this many pixels are worth spreading over the cores
SPLIT_PIXELS = 512 * 1024
#: deflate input of at least this many bytes is cut into segments deflated side by side
SPLIT_BYTES = 512 * 1024

_cores = os.cpu_count() or 1
_pool: ThreadPoolExecutor | None = None


def cores() -> int:
    """How many threads a big update is spread over (1: no spreading)."""
    return _cores


def worth_spreading(pixels: int) -> bool:
    """Whether an update of ``pixels`` pixels is big enough to spread over the cores (and there are two)."""
    return _cores > 1 and pixels >= SPLIT_PIXELS


def set_cores(n: int) -> None:
    """Spread big updates over ``n`` threads from now on (tests, benchmarks; 1 turns spreading off)."""
    global _cores, _pool
    if n < 1:
        raise ValueError(f"cores must be at least 1, not {n}")
    if n != _cores and _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None
    _cores = n


def pool() -> ThreadPoolExecutor:
    """The shared pool (created on first use): ``cores() - 1`` threads, since the thread that hands work
    over always does a share itself (:func:`map_pieces`, :meth:`Deferred.result`)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, _cores - 1), thread_name_prefix="pyvnc-split")
    return _pool


class Deferred(Generic[R]):
    """``fn(*args)`` handed to the pool. If no pool thread has started it by the time the caller has nothing
    else to do, the caller runs it itself (:meth:`steal`, :func:`settle`) rather than wait."""

    def __init__(self, fn: Callable[..., R], *args: object) -> None:
        self._fn = fn
        self._args = args
        self._future: Future[R] = pool().submit(fn, *args)
        self._stolen = False
        self._value: R | None = None
        self._error: BaseException | None = None

    def steal(self) -> None:
        """Run ``fn`` on the calling thread now, unless a pool thread has already started it (an exception is
        kept for :meth:`result`)."""
        if not self._stolen and self._future.cancel():
            self._stolen = True
            try:
                self._value = self._fn(*self._args)
            except BaseException as exc:  # re-raised by result()
                self._error = exc

    def done(self) -> bool:
        """Whether the result is ready: ``fn`` was run here or has finished on the pool."""
        return self._stolen or self._future.done()

    def result(self) -> R:
        """The result (an exception of ``fn`` is raised here)."""
        self.steal()
        if not self._stolen:
            return self._future.result()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def settle(deferred: Iterable[Deferred[Any]]) -> None:
    """Finish every one of ``deferred``: the caller runs the pieces no pool thread has started, from the last
    one back, while the pool works from the first one on (waiting in order instead would let the pool thread
    take each next piece first and leave the caller idle), then waits for the ones the pool has."""
    pending = list(deferred)
    for d in reversed(pending):
        d.steal()
    wait([d._future for d in pending if not d.done()])


def gather(deferred: Sequence[Deferred[R]]) -> list[R]:
    """The results of ``deferred``, in order, once all are finished (:func:`settle`); the first exception of
    any of them is raised."""
    settle(deferred)
    return [d.result() for d in deferred]


def map_pieces(fn: Callable[[T], R], pieces: Sequence[T]) -> list[R]:
    """``[fn(p) for p in pieces]`` on the calling thread and the pool at the same time (on the calling thread
    alone when :func:`cores` is 1), the results in the order of ``pieces``. An exception of any piece is raised
    here, once every piece is done."""
    if len(pieces) < 2 or _cores < 2:
        return [fn(p) for p in pieces]
    deferred = [Deferred(fn, p) for p in pieces[1:]]
    try:
        first = fn(pieces[0])
    finally:
        rest = gather(deferred)
    return [first, *rest]
