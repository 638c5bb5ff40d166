"""Big updates of the stateful encodings on both cores: the pool helpers, deflate segments side by side on one
stream, ZRLE tile data in bands, Tight's JPEG images on the pool. Every result must be what one thread makes
(or, for deflate, what any inflater reads as the same data)."""

from __future__ import annotations

import hashlib
import struct
import threading
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from enc_content import NOVNC_PF, corpus_available, corpus_frame
from novnc_decode import decode_each_with_novnc, requires_novnc

from pyvnc.encoders import parallel, tight, zrle
from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.classify import client_values, layout_for
from pyvnc.encoders.tight import TightEncoder
from pyvnc.encoders.zlibenc import ISAL, ZlibEncoder, ZlibStream
from pyvnc.protocol.pixelformat import converter_for
from pyvnc.region import Rect

FULL = Rect(0, 0, 1920, 1080)
needs_corpus = pytest.mark.skipif(not corpus_available(), reason="needs ../shared/corpus")


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two cores and a fresh pool (one thread, as on the 2-core machines here), shut down afterwards."""
    monkeypatch.setattr(parallel, "_cores", 2)
    monkeypatch.setattr(parallel, "_pool", None)
    yield
    if parallel._pool is not None:
        parallel._pool.shutdown(wait=True)


def set_cores(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(parallel, "_cores", n)


def threads_running(monkeypatch: pytest.MonkeyPatch, module: object, name: str, pause: float = 0.0) -> set[str]:
    """Replace ``module.name`` with a wrapper that notes the thread of every call (pausing ``pause`` s first,
    as a GIL-free C call would let another thread run); returns the set of thread names it fills."""
    threads: set[str] = set()
    original = getattr(module, name)

    def spy(*args: object) -> object:
        threads.add(threading.current_thread().name)
        time.sleep(pause)
        return original(*args)

    monkeypatch.setattr(module, name, spy)
    return threads


# --- the pool helpers ------------------------------------------------------------------------------------------


def test_map_pieces_keeps_order_and_uses_two_threads_only_with_two_cores(two_cores: None) -> None:
    threads: set[str] = set()

    def work(i: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.02)  # releases the GIL, as zlib and libjpeg do
        return i * i

    assert parallel.map_pieces(work, list(range(5))) == [0, 1, 4, 9, 16]
    assert len(threads) == 2 and threading.current_thread().name in threads
    threads.clear()
    parallel.set_cores(1)  # the fixture restores the count
    assert parallel.map_pieces(work, list(range(3))) == [0, 1, 4]
    assert threads == {threading.current_thread().name}


def test_map_pieces_raises_once_every_piece_is_done(two_cores: None) -> None:
    done: list[int] = []

    def work(i: int) -> int:
        time.sleep(0.01)
        if i == 2:
            raise ValueError("piece 2")
        done.append(i)
        return i

    with pytest.raises(ValueError, match="piece 2"):
        parallel.map_pieces(work, [0, 1, 2, 3])
    assert sorted(done) == [0, 1, 3]


def test_gather_finishes_every_piece_before_raising(two_cores: None) -> None:
    """A piece the caller runs itself raises: the pieces before it still run, and the pool's are waited for."""
    release = threading.Event()
    done: list[int] = []

    def work(i: int) -> int:
        if i == 0:
            release.wait(5.0)  # on the pool thread: still running when the caller raises below
        if i == 3:
            raise ValueError("piece 3")
        done.append(i)
        return i

    pieces = [parallel.Deferred(work, i) for i in range(5)]
    threading.Timer(0.05, release.set).start()
    with pytest.raises(ValueError, match="piece 3"):
        parallel.gather(pieces)
    assert sorted(done) == [0, 1, 2, 4]


def test_gather_runs_pieces_no_pool_thread_started_on_the_caller(two_cores: None) -> None:
    """With the pool thread busy, the caller runs the waiting pieces itself instead of waiting."""
    release = threading.Event()
    blocker = parallel.Deferred(release.wait, 5.0)
    ran: list[tuple[int, str]] = []

    def work(i: int) -> int:
        ran.append((i, threading.current_thread().name))
        return -i

    pieces = [parallel.Deferred(work, i) for i in range(4)]
    assert parallel.gather(pieces) == [0, -1, -2, -3]
    assert {name for _, name in ran} == {threading.current_thread().name}
    assert [i for i, _ in ran] == [3, 2, 1, 0]  # from the last one back
    release.set()
    assert blocker.result() is True


# --- deflate segments side by side on one stream -----------------------------------------------------------------


STREAMS = [
    pytest.param(True, 2, True, id="isal-zrle-buffers"),
    pytest.param(True, 1, False, id="isal-level1"),
    pytest.param(False, 6, False, id="zlib-level6"),
    pytest.param(True, 9, False, id="level9-zlib"),
]


@pytest.mark.parametrize(("use_isal", "level", "small_blocks"), STREAMS)
def test_big_calls_are_deflated_in_pieces_that_form_one_stream(
    two_cores: None, monkeypatch: pytest.MonkeyPatch, use_isal: bool, level: int, small_blocks: bool
) -> None:
    """Calls of SPLIT_BYTES or more are cut into one piece per core. With small calls before and after, one
    standard inflater decodes everything exactly; with stdlib zlib, matches reach across the cut (a 20 KiB block
    repeated over 1.2 MB costs as much as from one compressor); and the stream goes on correctly after the cut:
    bytes from just before the cut, sent again, must not be matched against what the first piece's compressor
    last saw."""
    if use_isal and ISAL is None:
        pytest.skip("needs the isal package")
    rng = np.random.default_rng(3)
    # (16 values a byte: compressible, so that the sampled incompressibility test lets it be deflated)
    block = rng.integers(0, 16, 20_000, dtype=np.uint8).tobytes()
    repeated = block * 60
    noise = rng.integers(0, 256, 1_200_000, dtype=np.uint8).tobytes()
    cut = len(noise) // 2
    s = ZlibStream(use_isal, small_blocks=small_blocks)
    inflater = zlib.decompressobj()
    sizes = []
    for data in (b"hello" * 50, repeated, noise, noise[cut - 1000 : cut], block[:3000], repeated[:600_000]):
        out = s.compress(data, level)
        assert out.endswith(b"\x00\x00\xff\xff")
        assert inflater.decompress(out) == data
        sizes.append(len(out))
    assert not inflater.unconsumed_tail
    if not (use_isal and level <= 2):
        # stdlib zlib finds the repeats: the cut data is about as small as from one compressor (a piece
        # without the 32 KiB before it would cost one more block, 11.8 KB)
        one = ZlibStream(use_isal)
        one.compress(b"hello" * 50, level)
        set_cores(monkeypatch, 1)
        assert sizes[1] <= 1.05 * len(one.compress(repeated, level))


@pytest.mark.skipif(ISAL is None, reason="needs the isal package")
def test_big_calls_deflate_on_two_threads(two_cores: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyvnc.encoders import zlibenc

    threads = threads_running(monkeypatch, zlibenc, "_isal_segment", 0.01)
    data = np.random.default_rng(1).integers(0, 8, parallel.SPLIT_BYTES * 2, dtype=np.uint8).tobytes()
    assert zlib.decompressobj().decompress(ZlibStream().compress(data, 2)) == data
    assert len(threads) == 2


def test_zlib_encoder_big_update_decodes_exactly(two_cores: None) -> None:
    rng = np.random.default_rng(5)
    frame = np.zeros((600, 800, 4), np.uint8)
    frame[..., :3] = rng.integers(0, 3, (600, 800, 3), dtype=np.uint8) * 100
    job = EncodeJob(frame, (Rect(0, 0, 800, 600),), NOVNC_PF)
    (out,) = ZlibEncoder().encode(job)
    (length,) = struct.unpack(">I", out[12:16])
    assert len(out) == 16 + length
    assert zlib.decompressobj().decompress(out[16:]) == converter_for(NOVNC_PF).convert(frame)


# --- ZRLE bands and Tight's JPEG images ------------------------------------------------------------------------


@needs_corpus
@pytest.mark.parametrize(("image", "spread"), [("desktop", True), ("photo", True), ("terminal", False)])
def test_zrle_tile_data_in_bands_is_the_whole_rectangles(
    two_cores: None, monkeypatch: pytest.MonkeyPatch, image: str, spread: bool
) -> None:
    """A full frame's tile data comes from bands of whole tile rows on two threads where the content is busy
    (on text a second thread only costs CPU), and is byte for byte the tile data of the frame in one piece."""
    frame = corpus_frame(image)
    job = EncodeJob(frame, (FULL,), NOVNC_PF, compress=2)
    whole = zrle.zrle_data(client_values(job, FULL), layout_for(NOVNC_PF))
    threads = threads_running(monkeypatch, zrle, "zrle_data", 0.002)
    (out,) = zrle.ZRLEEncoder().encode(job)
    assert (len(threads) == 2) == spread, threads
    assert zlib.decompressobj().decompress(out[16:]) == whole


@needs_corpus
@pytest.mark.parametrize(("image", "quality"), [("photo", 8), ("desktop", 6)])
def test_tight_jpeg_images_on_two_threads_same_bytes(
    two_cores: None, monkeypatch: pytest.MonkeyPatch, image: str, quality: int
) -> None:
    """A big update's JPEG images are compressed on the pool and the caller, and the update is byte for byte
    the one-thread update (control bytes, stream resets and order included)."""
    frame = corpus_frame(image)
    job = EncodeJob(frame, (FULL,), NOVNC_PF, quality=quality, compress=2)

    def digest() -> str:
        enc = TightEncoder()
        enc.reset()  # every stream reset: the first rectangle carries the reset bits
        return hashlib.sha256(b"".join(enc.encode(job))).hexdigest()

    threads = threads_running(monkeypatch, tight, "_jpeg_rect", 0.002)
    spread = digest()
    assert len(threads) == 2
    set_cores(monkeypatch, 1)
    threads.clear()
    assert digest() == spread
    assert len(threads) == 1


# --- Tight's streams and TightPNG's images on both cores -----------------------------------------------------


def test_run_starts_cut_big_streams_evenly_after_a_window() -> None:
    from pyvnc.encoders.tightzlib import WINDOW, _run_starts

    assert _run_starts([100_000] * 4, 2) == [0]  # under SPLIT_BYTES: one run
    assert _run_starts([200_000] * 6, 2) == [0, 3]
    assert _run_starts([200_000] * 6, 3) == [0, 2, 4]
    assert _run_starts([20_000, 20_000, 600_000, 600_000], 2) == [0, 3]  # at the first item past half
    # nothing is cut with less than a window's worth of data before the cut
    assert WINDOW > 3 * 10_000
    assert _run_starts([10_000] * 3 + [600_000], 2) == [0]
    assert _run_starts([1_000_000], 2) == [0]  # one rectangle cannot be cut


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_compress_many_streams_inflate_and_go_on(
    two_cores: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Items on four streams, two of them big enough to be cut: each stream inflates to its data in order on
    one inflater, and goes on correctly afterwards, both in step (sync flushes, references reaching back into
    the update) and after a reset (full flushes)."""
    from pyvnc.encoders.tightzlib import ZStreams

    if backend == "isal" and ISAL is None:
        pytest.skip("needs the isal package")
    rng = np.random.default_rng(9)
    fresh = threads_running(monkeypatch, ZStreams, "_fresh")
    streams = ZStreams(ISAL if backend == "isal" else zlib)
    inflaters = [zlib.decompressobj() for _ in range(4)]

    def chunk(n: int) -> bytes:
        return (rng.integers(0, 6, n, dtype=np.uint8) * 40).tobytes()

    for reset in (False, True):
        if reset:
            streams.reset()
            inflaters = [zlib.decompressobj() for _ in range(4)]
        kinds = rng.choice([0, 1, 3, 3, 0, 2], 60)
        items = [(int(k), chunk(int(n)), 2) for k, n in zip(kinds, rng.integers(1, 40_000, 60), strict=True)]
        items += [(3, chunk(300_000), 2), (0, chunk(400_000), 2), (3, chunk(300_000), 2), (0, chunk(200_000), 2)]
        fresh.clear()
        out = streams.compress_many(items)
        assert fresh  # streams 0 and 3 were cut
        for (stream, data, _), z in zip(items, out, strict=True):
            assert inflaters[stream].decompress(z) == data
        # later rectangles on the same streams, repeating data from before the cuts
        for stream, data, _ in items[-4:]:
            again = data[1000:3000] + chunk(5000)
            assert inflaters[stream].decompress(streams.compress(stream, again, 2)) == again


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_streams_change_level_without_a_reset(backend: str) -> None:
    """A new level carries each stream on (one rectangle at a time and in compress_many, after a reset too):
    its inflater reads on, no reset bit is due, data from before the change is still matched, and the new
    level shows (level 0: stored blocks)."""
    from pyvnc.encoders.tightzlib import ZStreams

    if backend == "isal" and ISAL is None:
        pytest.skip("needs the isal package")
    rng = np.random.default_rng(4)
    text = rng.choice(np.frombuffer(b"abcdefgh ijklmnop", np.uint8), 20_000).tobytes()
    streams = ZStreams(ISAL if backend == "isal" else zlib)
    for reset in (False, True):
        if reset:
            streams.reset()
            assert streams.take_reset_bits() == 0x0F
        inflaters = [zlib.decompressobj() for _ in range(4)]
        for stream in (0, 1, 3):
            sizes = []
            for level in (1, 0, 2, 0, 1):
                out = streams.compress(stream, text, level)
                assert inflaters[stream].decompress(out) == text
                sizes.append(len(out))
            assert sizes[1] > len(text) and sizes[3] > len(text)  # stored at level 0
            assert sizes[0] < 0.7 * len(text)
            if not reset:  # sync flushes: the repeat is matched from before the change of level
                assert sizes[2] < 0.05 * len(text) and sizes[4] < 0.05 * len(text)
        items = [(0, text, 0), (1, text, 2), (3, text[:5000], 1)]
        for (stream, data, _), z in zip(items, streams.compress_many(items), strict=True):
            assert inflaters[stream].decompress(z) == data
        assert streams.take_reset_bits() == 0
        # a chunk bigger than the window is kept as its last 32 KiB only, and still primes the next level
        big = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
        assert inflaters[0].decompress(streams.compress(0, big, 2)) == big
        tail = big[-20_000:]
        out = streams.compress(0, tail, 1)
        assert inflaters[0].decompress(out) == tail
        if not reset:
            assert len(out) < 0.05 * len(tail)


#: big updates between small ones on the same streams, with a reset before the fourth
SMALL = [Rect(10, 20, 300, 200), Rect(900, 500, 640, 300), Rect(0, 1000, 1920, 80)]
SEQUENCE = [("photo", [FULL]), ("desktop", SMALL), ("desktop", [FULL]), ("photo", SMALL), ("photo", [FULL])]


def spread_sequence(monkeypatch: pytest.MonkeyPatch, backend: str) -> tuple[list[list[bytes]], list[np.ndarray]]:
    """Lossless Tight updates of :data:`SEQUENCE` on two cores, and the framebuffer (RGB) after each. Checks
    that every big update really cut its streams into runs."""
    from test_tight_reference import frame_rgb

    from pyvnc.encoders import tightzlib

    if backend == "isal" and ISAL is None:
        pytest.skip("needs the isal package")
    fresh = threads_running(monkeypatch, tightzlib.ZStreams, "_fresh")
    enc = TightEncoder(zlib_backend=ISAL if backend == "isal" else zlib)
    fb = np.zeros((1080, 1920, 3), np.uint8)
    updates, expected = [], []
    for i, (image, rects) in enumerate(SEQUENCE):
        if i == 3:
            enc.reset()
        frame = corpus_frame(image)
        updates.append(enc.encode(EncodeJob(frame, tuple(rects), NOVNC_PF, compress=2)))
        want = frame_rgb(frame)
        for r in rects:
            fb[r.y : r.bottom, r.x : r.right] = want[r.y : r.bottom, r.x : r.right]
        expected.append(fb.copy())
        if rects == [FULL]:
            assert fresh, i
            fresh.clear()
    return updates, expected


@needs_corpus
@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_tight_lossless_spread_updates_decode_in_sequence(
    two_cores: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Lossless Tight on both cores (strips filtered on the pool, streams deflated in runs side by side),
    through the reference decoder: every update of the sequence exact."""
    from test_tight_reference import TightReference

    updates, expected = spread_sequence(monkeypatch, backend)
    ref = TightReference(NOVNC_PF, 1920, 1080)
    for i, (update, want) in enumerate(zip(updates, expected, strict=True)):
        ref.feed(update)
        assert np.array_equal(ref.fb, want), i


@needs_corpus
@requires_novnc
def test_tight_lossless_spread_updates_decode_with_novnc(two_cores: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same sequence through noVNC's tight.js and its inflater (pako), fed in odd-sized chunks."""
    updates, expected = spread_sequence(monkeypatch, "isal" if ISAL is not None else "zlib")
    got = decode_each_with_novnc(updates, 1920, 1080, chunk=65521)
    for i, (g, want) in enumerate(zip(got, expected, strict=True)):
        assert np.array_equal(g, want), i


@needs_corpus
def test_tightpng_images_on_two_threads_same_bytes(two_cores: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyvnc.encoders.tightpng import TightPNGEncoder

    job = EncodeJob(corpus_frame("desktop"), (FULL,), NOVNC_PF, compress=2)
    threads = threads_running(monkeypatch, TightPNGEncoder, "_png_rect", 0.001)
    spread = b"".join(TightPNGEncoder().encode(job))
    assert len(threads) == 2
    set_cores(monkeypatch, 1)
    assert b"".join(TightPNGEncoder().encode(job)) == spread


@needs_corpus
def test_zrle_fills_and_rectangles_in_order_with_bands_side_by_side(
    two_cores: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the encode manager (fills between the rectangles on ZRLE's one stream): the tile data of all
    rectangles of a photograph with one-colour windows on it is made in bands on two threads, and the stream
    carries exactly what one thread sends rectangle by rectangle, fills included, in the same order."""
    from pyvnc.encoders.select import EncoderSelector

    frame = corpus_frame("photo").copy()
    frame[100:500, 200:900] = (40, 40, 40, 0)  # windows: fills between the photograph's rectangles
    frame[600:1000, 1000:1700] = (230, 230, 230, 0)
    job = EncodeJob(frame, (FULL,), NOVNC_PF, compress=2)
    threads = threads_running(monkeypatch, zrle, "zrle_data", 0.001)
    fills = threads_running(monkeypatch, zrle.ZRLEEncoder, "encode_fill")
    selector = EncoderSelector()
    selector.configure([16])
    _used, spread = selector.encode(job)
    assert len(threads) == 2
    set_cores(monkeypatch, 1)
    threads.clear()
    one = EncoderSelector()
    one.configure([16])
    _used, alone = one.encode(job)
    assert len(threads) == 1
    assert [r[:12] for r in spread] == [r[:12] for r in alone]  # the same rectangles in the same order
    assert len(spread) > 3 and fills  # fills and the rectangles around them

    def stream(rects: list[bytes]) -> bytes:
        inflater = zlib.decompressobj()
        return b"".join(inflater.decompress(r[16:]) for r in rects)

    assert stream(spread) == stream(alone)
