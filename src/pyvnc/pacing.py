"""Pacing updates by what the link can carry, measured with fences (no clock inside: time is passed in).

After each update the session sends a fence; the client answers it only once it has received (and, with
BlockBefore, processed) everything before it. So the time from sending an update to its fence coming back is
one round trip plus the update's transmission time, and the bytes not yet acknowledged are the data in
flight. The pacer lets a new update start only while the data in flight is below a window of about two
bandwidth-delay products, as TigerVNC's congestion control and neatvnc do: the link stays busy, while the queue
in front of a slow client stays short, so it always gets a recent picture instead of a backlog of old ones.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class _InFlight:
    seq: int
    nbytes: int
    sent: float


class Pacer:
    """Tracks updates in flight; decides whether another may start."""

    #: the window never shrinks below this (bytes), so small updates always flow
    MIN_WINDOW = 64 * 1024
    #: nor grows above this
    MAX_WINDOW = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._in_flight: deque[_InFlight] = deque()
        self._seq = 0
        #: smallest round trip seen, in seconds (the link's latency without queueing)
        self.min_rtt: float | None = None
        #: the latest round-trip sample, in seconds
        self.last_rtt: float | None = None
        #: estimated throughput in bytes per second (None until measured)
        self.bandwidth: float | None = None

    @property
    def bytes_in_flight(self) -> int:
        return sum(u.nbytes for u in self._in_flight)

    @property
    def updates_in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def window(self) -> int:
        """Bytes allowed in flight: two bandwidth-delay products, within the bounds."""
        if self.bandwidth is None or self.min_rtt is None:
            return self.MIN_WINDOW * 4
        bdp = self.bandwidth * self.min_rtt
        return int(min(self.MAX_WINDOW, max(self.MIN_WINDOW, 2 * bdp)))

    def can_send(self) -> bool:
        """True when another update may start now: nothing in flight, or the data in flight fits the window."""
        return not self._in_flight or self.bytes_in_flight < self.window

    def sent(self, nbytes: int, now: float) -> int:
        """An update of ``nbytes`` went out at ``now``; returns the sequence number to put in its fence."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self._in_flight.append(_InFlight(self._seq, nbytes, now))
        return self._seq

    def acknowledged(self, seq: int, now: float) -> bool:
        """The fence with ``seq`` came back at ``now``; returns False for a sequence number we are not waiting for."""
        if not any(u.seq == seq for u in self._in_flight):
            return False
        while self._in_flight:
            u = self._in_flight.popleft()
            if u.seq == seq:
                break
        rtt = max(now - u.sent, 1e-6)
        self.last_rtt = rtt
        self.min_rtt = rtt if self.min_rtt is None else min(self.min_rtt, rtt)
        # the time beyond the bare round trip is what the bytes took to cross the link
        transfer = rtt - self.min_rtt
        if u.nbytes >= 16 * 1024 and transfer > 0.002:
            sample = u.nbytes / transfer
            self.bandwidth = sample if self.bandwidth is None else 0.8 * self.bandwidth + 0.2 * sample
        return True

    def reset(self) -> None:
        """Forget what is in flight (the fences will never come back, e.g. fences were turned off)."""
        self._in_flight.clear()
