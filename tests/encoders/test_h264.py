"""Open H.264 (encoding 50): bytes out of the encoder, decoded by libavcodec through the spec's client model
(:mod:`h264view`), over corpus frames, sequences, odd sizes, resets and level changes; and how the selector
picks it."""

from __future__ import annotations

import numpy as np
import pytest
from enc_content import corpus_available, corpus_frame, rgb_to_bgrx
from h264view import BASELINE, BT601_LIMITED, IDR, PPS, RESET_ALL_CONTEXTS, SLICE, SPS, H264View, psnr

from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.h264 import H264Encoder, available
from pyvnc.encoders.select import EncoderSelector
from pyvnc.protocol.constants import Encoding
from pyvnc.protocol.pixelformat import PixelFormat
from pyvnc.region import Rect

pytestmark = pytest.mark.skipif(not available(), reason="PyAV with libx264 is not installed")

PF = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)
RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)


def frame_of(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_bgrx(np.ascontiguousarray(rgb))


def rgb_of(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame[..., 2::-1])


def encode(enc: H264Encoder, frame: np.ndarray, rects: tuple[Rect, ...] | None = None, **levels: int) -> bytes:
    h, w = frame.shape[:2]
    out = enc.encode(EncodeJob(frame, rects or (Rect(0, 0, w, h),), PF, **levels))
    assert len(out) == 1
    return out[0]


def gradient(h: int, w: int) -> np.ndarray:
    """Smooth content (what video keeps well), RGB."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack(((xx * 255 // max(1, w - 1)), (yy * 255 // max(1, h - 1)), np.full((h, w), 90)), -1).astype(
        np.uint8
    )


@pytest.mark.skipif(not corpus_available(), reason="corpus images not available")
def test_corpus_frames_in_one_context_decode_above_30_db() -> None:
    """Four 1080p corpus frames in a row, one context: the first starts it (ResetAllContexts, SPS, PPS, IDR,
    baseline profile), the others are P-frames of one slice each, and every one decodes at 30 dB or better
    at the default quality level."""
    enc = H264Encoder()
    view = H264View(np.zeros((1080, 1920, 3), np.uint8))
    for i, name in enumerate(("terminal", "webpage", "desktop", "photo")):
        frame = corpus_frame(name)
        shown = view.feed(encode(enc, frame))
        assert shown.rect == (0, 0, 1920, 1080)
        if i == 0:
            assert shown.flags == RESET_ALL_CONTEXTS
            assert {SPS, PPS, IDR} <= set(shown.nal_types) and shown.profile == BASELINE
            # the colour matrix is said, so that no decoder takes 1080p video for BT.709
            assert shown.colour == BT601_LIMITED
        else:
            assert shown.flags == 0 and IDR not in shown.nal_types
        assert [t for t in shown.nal_types if t in (SLICE, IDR)] in ([SLICE], [IDR])  # one slice a frame
        assert psnr(view.fb, rgb_of(frame)) >= 30, name


@pytest.mark.skipif(not corpus_available(), reason="corpus images not available")
def test_small_changes_follow_in_small_frames() -> None:
    """A sequence of changes on one stream: each frame shows its change (the colour of the new patch) and
    stays at 30 dB or better as a whole, costs a small part of the first frame, and no key frame comes back."""
    rng = np.random.default_rng(5)
    base = rgb_of(corpus_frame("webpage")[300:660, 400:1040])  # text and pictures: no small key frame
    enc = H264Encoder()
    view = H264View(np.zeros((360, 640, 3), np.uint8))
    first = view.feed(encode(enc, frame_of(base)))
    before: tuple[Rect, ...] = ()
    for i in range(12):
        rgb = base.copy()
        x, y = 40 + 37 * i, 30 + 19 * i
        rgb[y : y + 40, x : x + 60] = rng.integers(60, 200, size=3, dtype=np.uint8)
        # what changed: the last patch went, this one came (the session's damage); the rectangle sent is
        # the whole screen all the same
        changed = (*before, Rect(x, y, 60, 40))
        shown = view.feed(encode(enc, frame_of(rgb), changed))
        assert shown.rect == (0, 0, 640, 360)
        before = (Rect(x, y, 60, 40),)
        assert shown.nal_types == [SLICE] and shown.flags == 0
        assert shown.size < first.size / 5
        # the patch's inside (its edges blend with the blocks around it in 4:2:0) has its colour
        inside = view.fb[y + 8 : y + 32, x + 8 : x + 52].reshape(-1, 3).astype(int)
        assert np.abs(inside.mean(axis=0) - rgb[y + 20, x + 30]).max() <= 6, i
        assert psnr(view.fb, rgb) >= 30, i


@pytest.mark.parametrize("size", [(360, 640), (361, 643)])
def test_converting_only_what_changed_gives_the_bytes_of_whole_frames(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the changed rectangles (with a margin) are converted into the picture kept from the last frame:
    libx264 gets exactly the picture a whole-frame conversion makes, so the bytes are the same, frame after
    frame, for rectangles at odd places and sizes, on the edges and in the corners of odd-sized screens."""
    h, w = size
    rng = np.random.default_rng(8)
    converted: list[Rect] = []
    convert = H264Encoder._convert

    def spy(self: H264Encoder, frame: np.ndarray, rect: Rect) -> None:
        converted.append(rect)
        convert(self, frame, rect)

    monkeypatch.setattr(H264Encoder, "_convert", spy)
    picture = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    whole, partial = H264Encoder(), H264Encoder()
    assert encode(whole, picture) == encode(partial, picture)
    shapes = [
        [Rect(0, 0, 1, 1), Rect(w - 1, h - 1, 1, 1)],
        [Rect(13, 7, 31, 9), Rect(w - 5, 100, 5, 33)],
        [Rect(200, h - 3, 77, 3), Rect(0, 50, 3, 41), Rect(101, 101, 1, 1)],
        [Rect(w - 64, 0, 64, 17), Rect(0, h - 18, 40, 18)],
    ]
    for step in range(8):
        rects = shapes[step % len(shapes)]
        picture = picture.copy()
        for r in rects:
            picture[r.y : r.bottom, r.x : r.right] = rng.integers(0, 256, (r.h, r.w, 4), dtype=np.uint8)
        assert encode(whole, picture) == encode(partial, picture, tuple(rects)), step
    assert len(converted) == sum(len(shapes[i % len(shapes)]) for i in range(8))  # none went whole


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (17, 33), (63, 101)])
def test_odd_sizes_are_padded_and_cropped(shape: tuple[int, int]) -> None:
    """Sizes H.264's 4:2:0 cannot code as they are: the rectangle says the true size, the frame is at least as
    big (the spec lets the client crop), and the cropped picture is the content, edges included."""
    h, w = shape
    rgb = gradient(h, w)
    enc = H264Encoder()
    view = H264View(np.zeros((h, w, 3), np.uint8))
    shown = view.feed(encode(enc, frame_of(rgb)))
    assert shown.rect == (0, 0, w, h)
    assert shown.frame_size is not None and shown.frame_size[0] >= w and shown.frame_size[1] >= h
    assert psnr(view.fb, rgb) >= 30
    # the last column and row are not left to padding: they carry the content
    assert psnr(view.fb[:, -1:], rgb[:, -1:]) >= 30 and psnr(view.fb[-1:], rgb[-1:]) >= 30
    # and a second frame carries on in the same context
    moved = (rgb // 2 + 60).astype(np.uint8)
    assert view.feed(encode(enc, frame_of(moved))).flags == 0
    assert psnr(view.fb, moved) >= 30


def test_reset_starts_over_with_a_key_frame_a_new_decoder_reads() -> None:
    """After reset() (an encoded frame was thrown away) the next frame is an IDR frame with ResetAllContexts:
    the client drops its decoder, and a fresh one decodes the frame on its own."""
    enc = H264Encoder()
    view = H264View(np.zeros((120, 160, 3), np.uint8))
    a, b = gradient(120, 160), np.roll(gradient(120, 160), 40, axis=0)
    view.feed(encode(enc, frame_of(a)))
    encode(enc, frame_of(np.flipud(a)))  # encoded, never sent
    enc.reset()
    shown = view.feed(encode(enc, frame_of(b)))
    assert shown.flags == RESET_ALL_CONTEXTS and IDR in shown.nal_types
    assert psnr(view.fb, b) >= 30
    # without the reset the client's decoder would have missed the thrown-away frame; the selector's
    # discard() is what calls reset()
    sel = EncoderSelector(h264=True)
    sel.configure([Encoding.OPEN_H264])
    sel.encode(EncodeJob(frame_of(a), (Rect(0, 0, 160, 120),), PF))
    assert sel.discard(frozenset({Encoding.OPEN_H264}))
    _, out = sel.encode(EncodeJob(frame_of(b), (Rect(0, 0, 160, 120),), PF))
    fresh = H264View(np.zeros((120, 160, 3), np.uint8)).feed(out[0])
    assert fresh.flags == RESET_ALL_CONTEXTS and IDR in fresh.nal_types


def test_quality_and_compression_levels_change_what_is_sent() -> None:
    """The quality level sets the rate factor: level 9 sends more and decodes closer than level 0. A change of
    level starts the stream over (ResetAllContexts, IDR) and the client reads on. The compression level picks
    the x264 preset: other bytes, the same picture quality band."""
    photo = corpus_available()
    frame = np.ascontiguousarray(corpus_frame("photo")[:360, :640]) if photo else frame_of(gradient(360, 640))
    enc = H264Encoder()
    view = H264View(np.zeros((360, 640, 3), np.uint8))
    sizes, values = {}, {}
    for level in (0, 9, 6):
        shown = view.feed(encode(enc, frame, quality=level))
        assert shown.flags == RESET_ALL_CONTEXTS and IDR in shown.nal_types, level
        sizes[level], values[level] = shown.size, psnr(view.fb, rgb_of(frame))
    assert sizes[9] > sizes[6] > sizes[0]
    assert values[9] > values[6] > values[0]
    assert values[6] >= 30
    same = view.feed(encode(enc, frame, quality=6))
    assert same.flags == 0  # same level: the stream goes on
    by_compress = {}
    for compress in (5, 9, 1):  # each one another preset than the one before
        shown = view.feed(encode(enc, frame, quality=6, compress=compress))
        by_compress[compress] = shown.size
        assert shown.profile == BASELINE, compress  # slower presets too (they would use CABAC in Main)
        assert psnr(view.fb, rgb_of(frame)) >= 30
    assert len(set(by_compress.values())) == 3


def test_a_new_framebuffer_size_resets_all_contexts() -> None:
    enc = H264Encoder()
    view = H264View(np.zeros((600, 800, 3), np.uint8))
    view.feed(encode(enc, frame_of(gradient(480, 640))))
    bigger = gradient(600, 800)
    shown = view.feed(encode(enc, frame_of(bigger)))
    assert shown.rect == (0, 0, 800, 600) and shown.flags == RESET_ALL_CONTEXTS and IDR in shown.nal_types
    assert list(view.contexts) == [(0, 0, 800, 600)]
    assert psnr(view.fb, bigger) >= 30


def test_selector_sends_the_whole_frame_as_h264_only_when_allowed_and_possible() -> None:
    rgb = gradient(200, 300)
    frame = frame_of(rgb)
    job = EncodeJob(frame, (Rect(10, 20, 30, 40),), PF)
    sel = EncoderSelector(h264=True)
    sel.configure([Encoding.OPEN_H264, Encoding.TIGHT, -26])
    used, out = sel.encode(job)
    assert used == {Encoding.OPEN_H264} and len(out) == 1
    view = H264View(np.zeros((200, 300, 3), np.uint8))
    assert view.feed(out[0]).rect == (0, 0, 300, 200)
    assert psnr(view.fb, rgb) >= 30
    # a patch drawn over the video (the painted cursor) goes with the next encoding
    used, out = sel.encode(job, video=False)
    assert used == {Encoding.TIGHT}
    # H.264 carries RGB of its own: a 16-bit client gets the next encoding
    used, _ = sel.encode(EncodeJob(frame, job.rects, RGB565))
    assert used == {Encoding.TIGHT}
    # off on the server (the default): never chosen, even when listed first
    off = EncoderSelector()
    off.configure([Encoding.OPEN_H264, Encoding.ZRLE])
    assert off.encoding_for(PF) == Encoding.ZRLE and off.encode(job)[0] == {Encoding.ZRLE}


def test_back_to_h264_after_other_encodings_brings_the_whole_screen_back() -> None:
    """H.264, then a while in another encoding (the client's list or pixel format changed), then H.264 again
    with only a small change since the last update: the video's next frame, in the same stream, carries the
    whole screen as it is now, not the picture of its last frame with the small change."""
    a, b = gradient(180, 320), np.ascontiguousarray(gradient(180, 320)[::-1, ::-1])
    sel = EncoderSelector(h264=True)
    view = H264View(np.zeros((180, 320, 3), np.uint8))
    whole = (Rect(0, 0, 320, 180),)
    sel.configure([Encoding.OPEN_H264, Encoding.RAW])
    view.feed(sel.encode(EncodeJob(frame_of(a), whole, PF))[1][0])
    for pf in (RGB565, PF):  # a while in 16 bits (no H.264 there), then a while with H.264 not listed
        if pf is PF:
            sel.configure([Encoding.RAW])
        used, _ = sel.encode(EncodeJob(frame_of(b), whole, pf))
        assert used == {Encoding.RAW}
    sel.configure([Encoding.OPEN_H264, Encoding.RAW])
    c = b.copy()
    c[10:20, 10:30] = (250, 250, 0)
    used, out = sel.encode(EncodeJob(frame_of(c), (Rect(10, 10, 20, 10),), PF))
    shown = view.feed(out[0])
    assert used == {Encoding.OPEN_H264} and shown.flags == 0  # the same stream
    assert psnr(view.fb, c) >= 30


@pytest.mark.parametrize("preferred", [Encoding.RAW, Encoding.RRE, Encoding.JPEG])
def test_h264_listed_second_never_fills_in_for_the_first(preferred: int) -> None:
    """Only as the client's first choice: listed after Raw (whose one-colour areas would go to the next
    encoding that fills), RRE (photos) or JPEG (text), H.264 would send a whole-screen frame for one area and
    repaint everything else lossily."""
    rgb = gradient(240, 320)
    rgb[:120, :200] = (10, 200, 30)  # a big one-colour area
    rgb[130:200, 20:300] = np.random.default_rng(3).integers(0, 256, (70, 280, 3), dtype=np.uint8)  # photo-like
    rgb[205:235, 10:310] = (255, 255, 255)
    rgb[210:230:3, 12:308:2] = (0, 0, 0)  # text-like strokes
    sel = EncoderSelector(h264=True)
    sel.configure([preferred, Encoding.OPEN_H264, -26])
    used, out = sel.encode(EncodeJob(frame_of(rgb), (Rect(0, 0, 320, 240),), PF))
    assert Encoding.OPEN_H264 not in used and all(int.from_bytes(r[8:12], "big", signed=True) != 50 for r in out)


def test_closing_the_selector_drops_the_video_encoder() -> None:
    """A session's end drops its encoders; the selector says whether one was H.264 (the session then hands
    the freed memory back to the system)."""
    import gc
    import weakref

    sel = EncoderSelector(h264=True)
    sel.configure([Encoding.OPEN_H264])
    sel.encode(EncodeJob(frame_of(gradient(64, 64)), (Rect(0, 0, 64, 64),), PF))
    ref = weakref.ref(sel.encoder(Encoding.OPEN_H264))
    assert sel.close() is True
    gc.collect()
    assert ref() is None
    assert sel.close() is False
