"""Rectangles and damage regions.

A :class:`Region` is a set of pixels kept as a short list of non-overlapping rectangles. It stays small: when
it would hold more than ``max_rects`` rectangles, the closest pairs are merged into their bounding boxes (which
only ever grows the region, so no change is lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple


class Rect(NamedTuple):
    """A rectangle: left, top, width, height (in pixels)."""

    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def area(self) -> int:
        return self.w * self.h

    def is_empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    def intersect(self, other: Rect) -> Rect | None:
        """The overlap of two rectangles, or None when they do not overlap."""
        x0 = max(self.x, other.x)
        y0 = max(self.y, other.y)
        x1 = min(self.right, other.right)
        y1 = min(self.bottom, other.bottom)
        if x1 <= x0 or y1 <= y0:
            return None
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def union_bounds(self, other: Rect) -> Rect:
        """The bounding box of two rectangles."""
        x0 = min(self.x, other.x)
        y0 = min(self.y, other.y)
        x1 = max(self.right, other.right)
        y1 = max(self.bottom, other.bottom)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def contains(self, other: Rect) -> bool:
        return self.x <= other.x and self.y <= other.y and self.right >= other.right and self.bottom >= other.bottom

    def subtract(self, other: Rect) -> list[Rect]:
        """This rectangle minus ``other``, as up to four non-overlapping rectangles."""
        inter = self.intersect(other)
        if inter is None:
            return [self]
        out: list[Rect] = []
        if inter.y > self.y:
            out.append(Rect(self.x, self.y, self.w, inter.y - self.y))
        if inter.bottom < self.bottom:
            out.append(Rect(self.x, inter.bottom, self.w, self.bottom - inter.bottom))
        if inter.x > self.x:
            out.append(Rect(self.x, inter.y, inter.x - self.x, inter.h))
        if inter.right < self.right:
            out.append(Rect(inter.right, inter.y, self.right - inter.right, inter.h))
        return out


class Region:
    """A set of pixels as non-overlapping rectangles, bounded in count."""

    __slots__ = ("_rects", "max_rects")

    def __init__(self, rects: Iterable[Rect] = (), max_rects: int = 64) -> None:
        self._rects: list[Rect] = []
        self.max_rects = max_rects
        for r in rects:
            self.add(r)

    def __iter__(self) -> Iterator[Rect]:
        return iter(self._rects)

    def __len__(self) -> int:
        return len(self._rects)

    def __bool__(self) -> bool:
        return bool(self._rects)

    def __repr__(self) -> str:
        return f"Region({self._rects!r})"

    @property
    def rects(self) -> list[Rect]:
        return list(self._rects)

    @property
    def area(self) -> int:
        return sum(r.area for r in self._rects)

    def bounds(self) -> Rect | None:
        if not self._rects:
            return None
        b = self._rects[0]
        for r in self._rects[1:]:
            b = b.union_bounds(r)
        return b

    def copy(self) -> Region:
        new = Region(max_rects=self.max_rects)
        new._rects = list(self._rects)
        return new

    def clear(self) -> None:
        self._rects.clear()

    def add(self, rect: Rect) -> None:
        """Add ``rect`` to the region."""
        if rect.is_empty():
            return
        pieces = [rect]
        for existing in self._rects:
            if existing.contains(rect):
                return
            nxt: list[Rect] = []
            for p in pieces:
                nxt.extend(p.subtract(existing))
            pieces = nxt
            if not pieces:
                return
        self._rects.extend(pieces)
        if len(self._rects) > self.max_rects:
            self._simplify()

    def update(self, other: Iterable[Rect]) -> None:
        for r in other:
            self.add(r)

    def subtract(self, rect: Rect) -> None:
        """Remove the pixels of ``rect`` from the region."""
        out: list[Rect] = []
        for r in self._rects:
            out.extend(r.subtract(rect))
        self._rects = out
        if len(self._rects) > self.max_rects:
            self._simplify()

    def intersect(self, rect: Rect) -> Region:
        """A new region: the part of this one inside ``rect``."""
        new = Region(max_rects=self.max_rects)
        for r in self._rects:
            inter = r.intersect(rect)
            if inter is not None:
                new._rects.append(inter)
        return new

    def intersects(self, rect: Rect) -> bool:
        return any(r.intersect(rect) is not None for r in self._rects)

    def _simplify(self) -> None:
        """Merge rectangles until at most ``max_rects // 2`` remain, cheapest merges first."""
        target = max(1, self.max_rects // 2)
        rects = sorted(self._rects, key=lambda r: (r.y, r.x))
        while len(rects) > target:
            best = None
            best_cost = None
            # neighbours in (y, x) order are the usual good candidates; O(n) per merge
            for i in range(len(rects) - 1):
                a, b = rects[i], rects[i + 1]
                u = a.union_bounds(b)
                cost = u.area - a.area - b.area
                if best_cost is None or cost < best_cost:
                    best_cost = cost
                    best = i
            assert best is not None
            merged = rects[best].union_bounds(rects[best + 1])
            rects[best : best + 2] = [merged]
        # merging may create overlaps: rebuild as non-overlapping
        self._rects = []
        saved_max = self.max_rects
        self.max_rects = 1 << 30
        for r in sorted(rects, key=lambda r: -r.area):
            self.add(r)
        self.max_rects = saved_max
