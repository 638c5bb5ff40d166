"""Protocol extensions, bytes in and bytes out: continuous updates, fences, extended clipboard, QEMU key events,
extended mouse buttons."""

from __future__ import annotations

import struct
import zlib

import pytest

from pyvnc.pacing import Pacer
from pyvnc.protocol import clipboard
from pyvnc.protocol.connection import ProtocolSettings, RFBServerProtocol
from pyvnc.protocol.messages import (
    ContinuousUpdatesChanged,
    CutText,
    CutTextDiscarded,
    EncodingsChanged,
    FenceReceived,
    KeyEvent,
    PointerEvent,
    QEMUKeyEvent,
    UpdateRequested,
    led_state_rect,
)
from pyvnc.region import Rect

EXT_CLIP = -1063131698


def connect(encodings: list[int], max_cut_text: int = 1 << 20) -> RFBServerProtocol:
    proto = RFBServerProtocol(ProtocolSettings(max_cut_text=max_cut_text))
    proto.receive_data(b"RFB 003.008\n\x01")
    proto.accept_auth()
    proto.receive_data(b"\x01")
    proto.send_server_init(100, 80, "x")
    proto.events_received()
    proto.data_to_send()
    proto.receive_data(set_encodings(encodings))
    assert isinstance(proto.events_received()[-1], EncodingsChanged)
    return proto


def set_encodings(encodings: list[int]) -> bytes:
    return struct.pack(">BxH", 2, len(encodings)) + struct.pack(f">{len(encodings)}i", *encodings)


def client_cut(body: bytes) -> bytes:
    return struct.pack(">B3xi", 6, -len(body)) + body


def server_cut(body: bytes) -> bytes:
    return struct.pack(">B3xi", 3, -len(body)) + body


# --- announcements on SetEncodings ----------------------------------------------------------------------------


def test_fence_and_continuous_updates_announced_once() -> None:
    proto = connect([0])
    proto.receive_data(set_encodings([0, -312, -313]))
    out = proto.data_to_send()
    fence = struct.pack(">B3xIB", 248, (1 << 31) | 0b111, 0)
    assert out == fence + b"\x96"
    proto.receive_data(set_encodings([0, -312, -313]))
    assert proto.data_to_send() == b""  # only the first time


def test_extended_clipboard_caps_on_every_set_encodings() -> None:
    proto = connect([0], max_cut_text=5000)
    for _ in range(2):
        proto.receive_data(set_encodings([0, EXT_CLIP]))
        flags = (1 << 24) | 1 | (1 << 25) | (1 << 26) | (1 << 27) | (1 << 28)
        assert proto.data_to_send() == server_cut(struct.pack(">II", flags, 5000))


# --- continuous updates (rfbproto 7.5.7) -----------------------------------------------------------------------


def test_enable_and_disable_continuous_updates() -> None:
    proto = connect([0, -313])
    proto.data_to_send()
    proto.receive_data(struct.pack(">BBHHHH", 150, 1, 0, 0, 100, 80))
    assert proto.events_received() == [ContinuousUpdatesChanged(True, Rect(0, 0, 100, 80))]
    assert proto.continuous and proto.has_request
    assert list(proto.update_area()) == [Rect(0, 0, 100, 80)]
    # incremental requests are ignored, non-incremental ones honoured
    proto.receive_data(struct.pack(">BBHHHH", 3, 1, 0, 0, 10, 10))
    assert not proto.request_area
    proto.receive_data(struct.pack(">BBHHHH", 3, 0, 5, 5, 10, 10))
    assert list(proto.full_request) == [Rect(5, 5, 10, 10)]
    proto.events_received()
    proto.receive_data(struct.pack(">BBHHHH", 150, 0, 0, 0, 0, 0))
    assert proto.events_received() == [ContinuousUpdatesChanged(False, Rect(0, 0, 0, 0))]
    assert proto.data_to_send() == b"\x96"  # EndOfContinuousUpdates
    assert not proto.continuous


def test_enable_continuous_updates_without_announcement_closes() -> None:
    proto = connect([0])
    proto.receive_data(struct.pack(">BBHHHH", 150, 1, 0, 0, 100, 80))
    assert proto.closed


# --- fences (rfbproto 7.5.8) ----------------------------------------------------------------------------------


def test_fence_request_blocks_following_messages_until_answered() -> None:
    proto = connect([0, -312])
    proto.data_to_send()
    flags = (1 << 31) | 0b010 | (1 << 9)  # request, BlockAfter and an unknown bit
    key = b"\x04\x01\x00\x00\x00\x00\x00\x61"
    proto.receive_data(struct.pack(">B3xIB", 248, flags, 3) + b"abc" + key)
    assert proto.events_received() == [FenceReceived(flags, b"abc", True)]
    assert proto.data_to_send() == b""  # no answer until the session says so
    proto.answer_fence()
    # the answer: Request and unknown bits cleared, payload echoed; then the key event is parsed
    assert proto.data_to_send() == struct.pack(">B3xIB", 248, 0b010, 3) + b"abc"
    assert proto.events_received() == [KeyEvent(True, 0x61)]


def test_sync_next_fence_is_answered_after_the_next_message() -> None:
    """SyncNext: the message after the fence takes effect atomically with the answer (TigerVNC's viewers send
    Fence(SyncNext) then SetPixelFormat and switch decoders on the answer): the answer is due only once that
    message is processed, however the bytes arrive; messages are not held up meanwhile."""
    proto = connect([0, -312])
    proto.data_to_send()
    flags = (1 << 31) | 0b100  # request, SyncNext
    proto.receive_data(struct.pack(">B3xIB", 248, flags, 2) + b"pf")
    assert proto.events_received() == [] and not proto.pending_fences
    rgb565 = struct.pack(">BBBBHHHBBB3x", 16, 16, 0, 1, 31, 63, 31, 11, 5, 0)
    proto.receive_data(b"\x00\x00\x00\x00" + rgb565)
    events = proto.events_received()
    assert [type(e).__name__ for e in events] == ["PixelFormatChanged", "FenceReceived"], events
    assert proto.pixel_format.bits_per_pixel == 16
    proto.answer_fence()
    assert proto.data_to_send() == struct.pack(">B3xIB", 248, 0b100, 2) + b"pf"
    # nothing was held: a key event right after is parsed
    proto.receive_data(b"\x04\x01\x00\x00\x00\x00\x00\x61")
    assert proto.events_received() == [KeyEvent(True, 0x61)]


def test_fences_after_a_sync_next_fence_keep_their_order() -> None:
    """A fence right after a SyncNext one is "the next message": the SyncNext fence is answered first, whether
    the second is SyncNext too or BlockAfter."""
    key = b"\x04\x01\x00\x00\x00\x00\x00\x61"
    for second in ((1 << 31) | 0b100, (1 << 31) | 0b010):
        proto = connect([0, -312])
        proto.data_to_send()
        first = struct.pack(">B3xIB", 248, (1 << 31) | 0b100, 3) + b"one"
        proto.receive_data(first + struct.pack(">B3xIB", 248, second, 3) + b"two" + key)
        proto.answer_fence()
        answered = proto.data_to_send()
        if second & 0b100:  # the second waits for the key event, which came: both answered, in order
            assert answered == b"".join(
                struct.pack(">B3xIB", 248, f & 0b111, 3) + p for f, p in ((0b100, b"one"), (second, b"two"))
            )
        else:
            assert answered.startswith(struct.pack(">B3xIB", 248, 0b100, 3) + b"one")
            assert answered.endswith(struct.pack(">B3xIB", 248, 0b010, 3) + b"two")
        assert KeyEvent(True, 0x61) in proto.events_received()


def test_every_fence_request_is_answered_in_order() -> None:
    proto = connect([0, -312])
    proto.data_to_send()
    request = (1 << 31) | 0b001  # BlockBefore: the session answers once its update in flight is out
    proto.receive_data(b"".join(struct.pack(">B3xIB", 248, request, 1) + p for p in (b"A", b"B")))
    assert [e.payload for e in proto.events_received() if isinstance(e, FenceReceived)] == [b"A", b"B"]
    proto.answer_fence()
    assert proto.data_to_send() == b"".join(struct.pack(">B3xIB", 248, 0b001, 1) + p for p in (b"A", b"B"))


def test_end_of_continuous_updates_waits_for_the_update_being_encoded() -> None:
    """Disabling continuous updates while an update is being encoded: that update goes out first, then
    EndOfContinuousUpdates (the client switches state on it)."""
    proto = connect([0, -313])
    proto.data_to_send()
    proto.receive_data(struct.pack(">BBHHHH", 150, 1, 0, 0, 100, 80))
    proto.hold_end_of_continuous = True  # what the session sets while it encodes
    proto.receive_data(struct.pack(">BBHHHH", 150, 0, 0, 0, 0, 0))
    assert not proto.continuous and proto.data_to_send() == b""
    proto.send_update([])
    proto.release_end_of_continuous()
    assert proto.data_to_send() == b"\x00\x00\x00\x00" + b"\x96"
    # one EndOfContinuousUpdates for every disable, held or not
    proto.hold_end_of_continuous = True
    for enable in (1, 0, 1, 0):
        proto.receive_data(struct.pack(">BBHHHH", 150, enable, 0, 0, 100, 80))
    proto.release_end_of_continuous()
    assert proto.data_to_send() == b"\x96\x96"


def test_fence_response_and_our_fences() -> None:
    proto = connect([0, -312])
    proto.data_to_send()
    proto.send_fence(b"\x00\x00\x00\x07")
    assert proto.data_to_send() == struct.pack(">B3xIB", 248, (1 << 31) | 1, 4) + b"\x00\x00\x00\x07"
    proto.receive_data(struct.pack(">B3xIB", 248, 1, 4) + b"\x00\x00\x00\x07")
    assert proto.events_received() == [FenceReceived(1, b"\x00\x00\x00\x07", False)]


def test_fence_payload_over_64_closes() -> None:
    proto = connect([0, -312])
    proto.receive_data(struct.pack(">B3xIB", 248, 0, 65) + bytes(65))
    assert proto.closed


def test_extension_messages_stay_valid_after_the_client_drops_the_pseudo_encoding() -> None:
    """rfbproto lets a client send Fence, EnableContinuousUpdates and QEMU messages once the extension was
    established; a later SetEncodings without the pseudo-encoding does not take that back: the answer to the
    server's own fence request, turning continuous updates off, a key already on its way are taken."""
    proto = connect([0, -312, -313, -258])
    proto.data_to_send()
    proto.receive_data(struct.pack(">BBHHHH", 150, 1, 0, 0, 100, 80))
    proto.send_fence(b"\x00\x00\x00\x09")
    proto.data_to_send()
    proto.receive_data(set_encodings([0]))
    proto.events_received()
    proto.receive_data(struct.pack(">B3xIB", 248, 1, 4) + b"\x00\x00\x00\x09")
    proto.receive_data(struct.pack(">BBHHHH", 150, 0, 0, 0, 0, 0))
    proto.receive_data(struct.pack(">BBHII", 255, 0, 1, 0x41, 0x1E))
    assert not proto.closed
    assert proto.events_received() == [
        FenceReceived(1, b"\x00\x00\x00\x09", False),
        ContinuousUpdatesChanged(False, Rect(0, 0, 0, 0)),
        QEMUKeyEvent(True, 0x41, 0x1E),
    ]
    assert proto.data_to_send() == b"\x96"  # EndOfContinuousUpdates
    proto.send_fence(b"\x00")
    assert proto.data_to_send() == b""  # the server sends no more fences of its own
    # never established: still a violation
    fresh = connect([0])
    fresh.receive_data(struct.pack(">B3xIB", 248, 1, 0))
    assert fresh.closed


# --- QEMU extended key events, extended mouse buttons ---------------------------------------------------------


def test_qemu_extended_key_event() -> None:
    proto = connect([0, -258])
    proto.receive_data(struct.pack(">BBHII", 255, 0, 1, 0x41, 0x1E))
    assert proto.events_received() == [QEMUKeyEvent(True, 0x41, 0x1E)]
    proto = connect([0])
    proto.receive_data(struct.pack(">BBHII", 255, 0, 1, 0x41, 0x1E))
    assert proto.closed


def test_extended_mouse_buttons() -> None:
    proto = connect([0, -316])
    proto.receive_data(struct.pack(">BBHHB", 5, 0x80 | 0x01, 10, 20, 0b11))
    assert proto.events_received() == [PointerEvent(0x01 | (0b11 << 7), 10, 20)]
    # without the pseudo-encoding bit 7 is button 8 and no extra byte follows
    proto = connect([0])
    proto.receive_data(struct.pack(">BBHH", 5, 0x80, 10, 20) + struct.pack(">BBHHHH", 3, 0, 0, 0, 1, 1))
    assert proto.events_received() == [PointerEvent(0x80, 10, 20), UpdateRequested(False, Rect(0, 0, 1, 1))]


# --- extended clipboard -----------------------------------------------------------------------------------------


def test_client_provide_becomes_cut_text() -> None:
    proto = connect([0, EXT_CLIP])
    proto.data_to_send()
    text = "héllo\r\nwörld ☺".encode() + b"\0"
    body = struct.pack(">I", (1 << 28) | 1) + zlib.compress(struct.pack(">I", len(text)) + text)
    proto.receive_data(client_cut(body))
    assert proto.events_received() == [CutText("héllo\nwörld ☺")]


def test_client_notify_makes_server_request_and_peek_answers_notify() -> None:
    proto = connect([0, EXT_CLIP])
    proto.data_to_send()
    proto.receive_data(client_cut(struct.pack(">I", (1 << 27) | 1)))
    assert proto.data_to_send() == server_cut(struct.pack(">I", (1 << 25) | 1))
    proto.receive_data(client_cut(struct.pack(">I", 1 << 26)))
    assert proto.data_to_send() == server_cut(struct.pack(">I", 1 << 27))  # nothing on our clipboard


def test_server_clipboard_provided_or_notified_by_client_caps() -> None:
    proto = connect([0, EXT_CLIP])
    proto.data_to_send()
    proto.send_cut_text("a\nb")
    out = proto.data_to_send()
    assert out[:8] == struct.pack(">B3xi", 3, -(len(out) - 8))
    (flags,) = struct.unpack(">I", out[8:12])
    assert flags == (1 << 28) | 1
    data = zlib.decompress(out[12:])
    assert data == struct.pack(">I", 5) + b"a\r\nb\0"
    # a client whose caps allow no unsolicited text gets a notify, and the text on request
    caps = struct.pack(">II", (1 << 24) | 1 | (1 << 27) | (1 << 28), 0)
    proto.receive_data(client_cut(caps))
    proto.send_cut_text("later")
    assert proto.data_to_send() == server_cut(struct.pack(">I", (1 << 27) | 1))
    proto.receive_data(client_cut(struct.pack(">I", (1 << 25) | 1)))
    out = proto.data_to_send()
    assert zlib.decompress(out[12:]) == struct.pack(">I", 6) + b"later\0"


def test_server_clipboard_follows_the_actions_and_formats_the_client_takes() -> None:
    """rfbproto: caps list the formats and actions the sender is willing to receive."""
    proto = connect([0, EXT_CLIP])
    proto.data_to_send()
    notify_only = struct.pack(">II", (1 << 24) | 1 | (1 << 27), 1 << 20)  # text up to 1 MiB, but no provide
    proto.receive_data(client_cut(notify_only))
    proto.send_cut_text("short")
    assert proto.data_to_send() == server_cut(struct.pack(">I", (1 << 27) | 1))
    no_text = struct.pack(">II", (1 << 24) | 4 | (1 << 27) | (1 << 28), 1 << 20)  # html only
    proto.receive_data(client_cut(no_text))
    proto.send_cut_text("more")
    assert proto.data_to_send() == b""


def test_legacy_cut_text_without_extension() -> None:
    proto = connect([0])
    proto.send_cut_text("é€")
    assert proto.data_to_send() == b"\x03\x00\x00\x00\x00\x00\x00\x02\xe9?"


def test_oversized_clipboard_text_is_dropped_and_the_client_stays() -> None:
    """A big copy on the client (noVNC and TigerVNC paste by notify, request, provide) is more text than the
    limit: dropped, without ever inflating more than the limit (a zlib bomb is the same case), and the
    connection carries on. Text followed by a big other format is taken."""
    proto = connect([0, EXT_CLIP], max_cut_text=100_000)
    bomb = struct.pack(">I", 10_000_000) + bytes(10_000_000)
    body = struct.pack(">I", (1 << 28) | 1) + zlib.compress(bomb, 9)
    assert len(body) < 20_000  # small on the wire, huge inflated
    proto.receive_data(client_cut(body) + b"\x04\x01\x00\x00\x00\x00\x00\x61")
    assert not proto.closed
    assert proto.events_received() == [CutTextDiscarded(10_000_000), KeyEvent(True, 0x61)]
    text = b"short\0"
    both = struct.pack(">I", len(text)) + text + struct.pack(">I", 5_000_000) + bytes(5_000_000)
    proto.receive_data(client_cut(struct.pack(">I", (1 << 28) | 1 | 4) + zlib.compress(both, 9)))
    assert proto.events_received() == [CutText("short")]
    # a message longer on the wire than the limit allows is skipped unread, the client stays
    proto = connect([0, EXT_CLIP], max_cut_text=1000)
    proto.receive_data(client_cut(body) + b"\x04\x01\x00\x00\x00\x00\x00\x61")
    events = proto.events_received()
    assert not proto.closed and events[-1] == KeyEvent(True, 0x61)


def test_clipboard_parse_rejects_garbage() -> None:
    with pytest.raises(Exception, match="zlib"):
        clipboard.parse(struct.pack(">I", (1 << 28) | 1) + b"not zlib", 100)
    with pytest.raises(Exception, match="sizes"):
        clipboard.parse(struct.pack(">I", (1 << 24) | 3), 100)


# --- pacing ---------------------------------------------------------------------------------------------------------


def test_pacer_window_follows_bandwidth_delay_product() -> None:
    pacer = Pacer()
    assert pacer.can_send()
    t = 0.0
    # a small update measures the bare round trip: 50 ms
    seq = pacer.sent(1000, t)
    assert pacer.acknowledged(seq, t + 0.050)
    assert pacer.min_rtt == pytest.approx(0.050)
    # 250 kB taking 200 ms beyond the round trip: 1.25 MB/s
    t = 1.0
    seq = pacer.sent(250_000, t)
    assert not pacer.can_send() or pacer.bytes_in_flight < pacer.window
    assert pacer.acknowledged(seq, t + 0.250)
    assert pacer.bandwidth == pytest.approx(1_250_000)
    assert pacer.window == pytest.approx(2 * 1_250_000 * 0.050)
    # with more than a window in flight, no new update starts until a fence returns
    a = pacer.sent(100_000, 2.0)
    pacer.sent(100_000, 2.0)
    assert not pacer.can_send()
    assert pacer.acknowledged(a, 2.2)
    assert pacer.can_send()
    assert not pacer.acknowledged(12345, 3.0)  # unknown fences are ignored


def test_qemu_led_state_rect_bytes() -> None:
    """x, y, width, height 0, encoding -261, then one byte: bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock."""
    assert led_state_rect(0b100) == bytes(8) + struct.pack(">i", -261) + b"\x04"
    assert led_state_rect(0b011) == bytes(8) + b"\xff\xff\xfe\xfb" + b"\x03"
    assert led_state_rect(0xFF)[-1] == 7  # only the three defined bits


def test_extended_pointer_event_bytes() -> None:
    """With ExtendedMouseButtons on, the marker bit announces a byte of buttons 8-15; without it, bit 7 is
    button 8 and no extra byte follows (rfbproto "PointerEvent")."""
    p = connect([0])
    p.receive_data(struct.pack(">BBHH", 5, 0x81, 1, 2))  # not enabled yet: bit 7 is button 8, no extra byte
    p.receive_data(set_encodings([0, -316]))
    p.receive_data(struct.pack(">BBHHB", 5, 0x80 | 0x01, 10, 20, 0b11))  # button 1, then 8 and 9
    p.receive_data(struct.pack(">BBHH", 5, 0x04, 10, 20))  # a normal event: button 3 only
    events = [e for e in p.events_received() if isinstance(e, PointerEvent)]
    assert [(e.buttons, e.x, e.y) for e in events] == [(0x81, 1, 2), (0x01 | (0b11 << 7), 10, 20), (0x04, 10, 20)]
