"""Classification of Tight strips (rfbproto "Tight Encoding"): one colour, a palette of few colours, or full
colour with the statistics that decide between JPEG, the gradient filter and the copy filter.

Shared by :mod:`.tight` and :mod:`.tightpng`. Everything is vectorised: a strip costs a few numpy calls on
a sample of its pixels, and an exact colour count over runs of equal pixels only when the sample has few
colours; the sample tests of all strips of one size are made at once (:func:`many_colour_strips`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..region import Rect
from .classify import distinct, palette_indices
from .jpegutil import rough_counts, rough_share

#: most palette colours without JPEG, and with JPEG (beyond it a strip goes to JPEG, as in TigerVNC)
MAX_PALETTE = 256
MAX_PALETTE_WITH_JPEG = 96
#: the colour-count pre-check looks at about this many pixels of a strip
SAMPLE = 1024
#: a strip's solid left or right margin at least this wide (and the strip this big) is sent as a fill
MIN_SOLID_MARGIN = 64
MIN_SOLID_AREA = 4096
#: under JPEG, a many-colour strip goes to JPEG when at least this fraction of its pixels differ from their
#: right-hand neighbour (photo-like); text and UI strips with longer runs stay lossless
JPEG_MIN_CHANGE = 0.3


@dataclass
class Solid:
    colour: NDArray[Any]  # (1,) the pixel value, in the values' dtype


@dataclass
class Palette:
    colours: NDArray[Any]  # (n,) pixel values, sorted
    indices: NDArray[np.uint8]  # (h, w) indices into colours


@dataclass
class Full:
    change: float  # estimated fraction of pixels that differ from their right-hand neighbour
    rough: float  # estimated fraction of neighbouring pixel pairs that differ much (jpegutil.rough_share)


Kind = Solid | Palette | Full


def classify(values: NDArray[Any], max_colours: int, run_palette: bool, sampled: bool = False) -> Kind:
    """Solid, few colours (with the palette) or many colours, for one strip of pixel values.

    Cost is kept low for photo-like strips by counting the colours of a sample first; only strips whose
    sample has few colours get an exact count, done over runs of equal pixels (few on screen content).
    ``run_palette``: also accept up to 256 colours when runs are too long for the strip ever to go to JPEG.
    ``sampled``: the sample tests were passed already (:func:`many_colour_strips`) and are not made again.
    """
    h, w = values.shape
    flat = values.reshape(-1)
    n = flat.size
    limit = MAX_PALETTE if run_palette else max_colours
    if not sampled:
        # a small sample first: it already tells photo-like strips apart
        step = max(1, n // (SAMPLE // 4))
        if distinct(flat[::step]).size > limit:
            return full_colour(flat, step)
        step = max(1, n // SAMPLE)
        sample_colours = distinct(flat[::step]).size
        if sample_colours > limit:
            return full_colour(flat, step)
        if sample_colours == 1 and bool((flat == flat[0]).all()):
            return Solid(flat[:1].copy())
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if starts.size == 0:
        return Solid(flat[:1].copy())
    n_runs = starts.size + 1
    if n_runs * 2 > n and n > SAMPLE:  # mostly single pixels: a palette would not pay
        return full_colour(flat, max(1, n // SAMPLE), n_runs / n)
    run_starts = np.empty(n_runs, dtype=np.intp)
    run_starts[0] = 0
    run_starts[1:] = starts
    run_values = flat[run_starts]
    colours = distinct(run_values)
    n_colours = colours.size
    allowed = max_colours
    if run_palette and n_runs < JPEG_MIN_CHANGE * n:
        # too few pixels differ from their neighbour for JPEG ever to take the strip (text, user interface):
        # up to 256 colours as without JPEG, rather than the copy filter (1080p terminal and web page at q6:
        # 8 % smaller, no slower)
        allowed = MAX_PALETTE
    if n_colours > min(allowed, max(2, n // 4)):
        return full_colour(flat, max(1, n // SAMPLE), n_runs / n)
    lengths = np.diff(run_starts, append=n)
    inverse = palette_indices(colours, run_values)
    indices = np.repeat(inverse, lengths).reshape(h, w)
    return Palette(colours, indices)


def many_colour_strips(rect: Rect, values: NDArray[Any], strips: list[Rect], limit: int) -> dict[int, Full | None]:
    """:func:`classify`'s two sample tests for many strips at once, by strip index: the :class:`Full` that
    :func:`classify` would give a strip whose sample has more than ``limit`` colours, None for a strip that
    passed both tests (``classify(..., sampled=True)`` then skips them).

    Photographs and noise are dozens of such strips a frame; sampling all strips of one size with one
    gather, one sort and one roughness count, instead of a dozen numpy calls a strip, saves about a
    millisecond a 1080p frame. Strips of another size than the most common are left to :func:`classify`.
    """
    if len(strips) < 2:
        return {}
    shapes = [(s.w, s.h) for s in strips]
    sw, sh = max(set(shapes), key=shapes.count)
    n = sw * sh
    if n < 2:
        return {}
    group = np.array([i for i, shape in enumerate(shapes) if shape == (sw, sh)])
    w = values.shape[1]
    flat = values.reshape(-1)
    origin = np.array([(strips[i].y - rect.y) * w + strips[i].x - rect.x for i in group.tolist()])

    def at(local: NDArray[np.intp], which: NDArray[np.intp]) -> NDArray[np.intp]:
        """Indices into ``flat`` of strip-local flat positions, for strips ``which`` of the group: (k, m)."""
        rows, cols = np.divmod(local, sw)
        index: NDArray[np.intp] = origin[which, None] + (rows * w + cols)[None, :]
        return index

    result: dict[int, Full | None] = {}
    left = np.arange(group.size)
    for sample_size in (SAMPLE // 4, SAMPLE):  # as classify: a small sample, then a bigger one
        step = max(1, n // sample_size)
        sample = np.sort(flat[at(np.arange(0, n, step), left)], axis=1)
        many = 1 + np.count_nonzero(sample[:, 1:] != sample[:, :-1], axis=1) > limit
        chosen = left[many]
        left = left[~many]
        if chosen.size:
            # full_colour: the pixel pairs at every step-th pixel
            idx = np.arange(0, n - 1, step)
            a, b = flat[at(idx, chosen)], flat[at(idx + 1, chosen)]
            changes = np.count_nonzero(a != b, axis=1)
            photo_like = changes / idx.size >= JPEG_MIN_CHANGE
            rough = np.zeros(chosen.size, dtype=np.intp)
            if flat.dtype == np.uint32 and photo_like.any():
                rough[photo_like] = rough_counts(a[photo_like], b[photo_like])
            for j, g in enumerate(group[chosen].tolist()):
                share = int(rough[j]) / idx.size if photo_like[j] else 0.0
                result[g] = Full(int(changes[j]) / idx.size, share)
        if left.size == 0:
            break
    for g in group[left].tolist():
        result[g] = None
    return result


def solid_margins(values: NDArray[Any]) -> tuple[int, int]:
    """Widths of the single-colour column runs at the left and right edges of a strip."""
    first = values[0]
    col0, col1 = values[:, 0], values[:, -1]
    if not (bool((col0 == col0[0]).all()) or bool((col1 == col1[0]).all())):
        return 0, 0  # neither edge column is one colour: no margin (cheap test first)
    constant = (values == first).all(axis=0)  # columns of one colour
    left_colour, right_colour = first[0], first[-1]
    left_ok = constant & (first == left_colour)
    right_ok = constant & (first == right_colour)
    w = values.shape[1]
    left = w if left_ok.all() else int(np.argmin(left_ok))
    right = w if right_ok.all() else int(np.argmin(right_ok[::-1]))
    return left, right


def full_colour(flat: NDArray[Any], step: int, change: float | None = None) -> Full:
    """A many-colour strip's :class:`Full`, from the pixel pairs (each pixel and its right-hand neighbour) at
    every ``step``-th pixel: the fraction that differ (``change``, when not known already; near 1 for
    photographs and noise, small for text and UI) and the fraction that differ much (``rough``: see
    :func:`.jpegutil.rough_share`; 0 for pixel values other than 0x00RRGGBB).
    """
    n = flat.size
    if n < 2 or (change is not None and change < JPEG_MIN_CHANGE):
        return Full(0.0 if change is None else change, 0.0)  # never JPEG: its roughness does not matter
    idx = np.arange(0, n - 1, step)
    a, b = flat[idx], flat[idx + 1]
    if change is None:
        change = float(np.count_nonzero(a != b)) / idx.size
    rough = rough_share(a, b) if flat.dtype == np.uint32 and change >= JPEG_MIN_CHANGE else 0.0
    return Full(change, rough)
