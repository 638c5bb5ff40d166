"""RFBServerProtocol: bytes in, events and bytes out (rfbproto 7.1-7.6)."""

from __future__ import annotations

import struct

import pytest

from pyvnc.protocol.connection import Phase, ProtocolSettings, RFBServerProtocol, negotiate_version
from pyvnc.protocol.constants import Encoding, SecurityType
from pyvnc.protocol.messages import (
    AuthRequested,
    ClientInitReceived,
    Closed,
    CutText,
    CutTextDiscarded,
    DesktopSizeRequested,
    EncodingsChanged,
    KeyEvent,
    PixelFormatChanged,
    PointerEvent,
    Screen,
    UpdateRequested,
    VersionNegotiated,
)
from pyvnc.protocol.pixelformat import NATIVE, PixelFormat
from pyvnc.protocol.security.vncauth import check_response, encrypt_challenge
from pyvnc.region import Rect

NONE = (SecurityType.NONE,)
VNC = (SecurityType.VNC_AUTH,)


def make(security: tuple[int, ...] = NONE, **kw: object) -> RFBServerProtocol:
    proto = RFBServerProtocol(ProtocolSettings(security_types=security, **kw))  # type: ignore[arg-type]
    assert proto.data_to_send() == b"RFB 003.008\n"
    return proto


def connect(version: bytes = b"RFB 003.008\n", shared: int = 1) -> RFBServerProtocol:
    """A protocol brought to the normal phase with security None."""
    proto = make()
    proto.receive_data(version)
    if version != b"RFB 003.003\n":
        proto.data_to_send()
        proto.receive_data(b"\x01")
    events = proto.events_received()
    auth = [e for e in events if isinstance(e, AuthRequested)]
    assert auth and auth[0].security_type == SecurityType.NONE
    proto.accept_auth()
    proto.data_to_send()
    proto.receive_data(bytes([shared]))
    assert proto.events_received() == [ClientInitReceived(bool(shared))]
    proto.send_server_init(640, 480, "test")
    proto.data_to_send()
    assert proto.phase is Phase.NORMAL
    return proto


# --- version negotiation (rfbproto 7.1.1) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("major", "minor", "expected"),
    [
        (3, 3, (3, 3)),
        (3, 7, (3, 7)),
        (3, 8, (3, 8)),
        (3, 889, (3, 8)),
        (3, 4, (3, 3)),
        (3, 5, (3, 3)),
        (3, 6, (3, 3)),
        (3, 14, (3, 8)),
        (2, 0, None),
    ],
)
def test_negotiate_version(major: int, minor: int, expected: tuple[int, int] | None) -> None:
    assert negotiate_version(major, minor) == expected


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 200\n", b"RFB 3.8\n\n\n\n\n", b"RFB 003.00a\n", b"\x00" * 12])
def test_garbage_version_closes(garbage: bytes) -> None:
    proto = make()
    proto.receive_data(garbage)
    events = proto.events_received()
    assert proto.closed
    assert isinstance(events[-1], Closed) and events[-1].error
    assert "ProtocolVersion" in events[-1].reason
    assert proto.data_to_send() == b""


def test_version_arrives_byte_by_byte() -> None:
    proto = make()
    for b in b"RFB 003.008\n":
        assert proto.phase is Phase.VERSION
        proto.receive_data(bytes([b]))
    assert proto.events_received() == [VersionNegotiated((3, 8))]
    assert proto.data_to_send() == b"\x01\x01"


# --- security None -----------------------------------------------------------------------------------------


def test_rfb33_none_server_chooses_and_sends_no_result() -> None:
    proto = make()
    proto.receive_data(b"RFB 003.003\n")
    assert proto.data_to_send() == struct.pack(">I", 1)  # the server-chosen type, as a U32
    events = proto.events_received()
    assert events == [VersionNegotiated((3, 3)), AuthRequested(1, b"", b"")]
    proto.accept_auth()
    assert proto.data_to_send() == b""  # no SecurityResult for None before 3.8
    assert proto.phase is Phase.CLIENT_INIT


def test_rfb37_none_sends_no_security_result() -> None:
    proto = make()
    proto.receive_data(b"RFB 003.007\n")
    assert proto.data_to_send() == b"\x01\x01"
    proto.receive_data(b"\x01")
    proto.events_received()
    proto.accept_auth()
    assert proto.data_to_send() == b""


def test_rfb38_none_sends_security_result_ok() -> None:
    proto = make()
    proto.receive_data(b"RFB 003.008\n\x01")
    assert proto.data_to_send() == b"\x01\x01"
    proto.events_received()
    proto.accept_auth()
    assert proto.data_to_send() == b"\x00\x00\x00\x00"


def test_unoffered_security_type_fails_with_reason_in_38() -> None:
    proto = make(VNC)
    proto.receive_data(b"RFB 003.008\n")
    assert proto.data_to_send() == b"\x01\x02"
    proto.receive_data(b"\x01")
    out = proto.data_to_send()
    assert out[:4] == b"\x00\x00\x00\x01"
    (n,) = struct.unpack(">I", out[4:8])
    assert out[8:] == b"security type not offered" and n == len(out) - 8
    assert proto.closed
    assert not any(isinstance(e, AuthRequested) for e in proto.events_received())


def test_unoffered_security_type_37_no_reason() -> None:
    proto = make(VNC)
    proto.receive_data(b"RFB 003.007\n")
    proto.data_to_send()
    proto.receive_data(b"\x10")
    assert proto.data_to_send() == b"\x00\x00\x00\x01"
    assert proto.closed


# --- VNC authentication (rfbproto 7.2.2) -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.008\n"])
def test_vnc_auth_success_every_version(version: bytes) -> None:
    proto = make(VNC)
    proto.receive_data(version)
    out = proto.data_to_send()
    if version == b"RFB 003.003\n":
        assert out[:4] == b"\x00\x00\x00\x02"
        challenge = out[4:]
    else:
        assert out == b"\x01\x02"
        proto.receive_data(b"\x02")
        challenge = proto.data_to_send()
    assert len(challenge) == 16
    proto.receive_data(encrypt_challenge("secret", challenge))
    auth = [e for e in proto.events_received() if isinstance(e, AuthRequested)]
    assert len(auth) == 1 and auth[0].challenge == challenge
    assert check_response("secret", auth[0].challenge, auth[0].response)
    assert not check_response("Secret", auth[0].challenge, auth[0].response)
    assert "challenge" not in repr(auth[0]) or challenge.hex() not in repr(auth[0])
    proto.accept_auth(view_only=True)
    assert proto.data_to_send() == b"\x00\x00\x00\x00"
    assert proto.view_only
    proto.receive_data(b"\x00")
    assert proto.events_received() == [ClientInitReceived(False)]


@pytest.mark.parametrize(
    ("version", "tail"),
    [(b"RFB 003.003\n", b""), (b"RFB 003.007\n", b""), (b"RFB 003.008\n", b"\x00\x00\x00\x15Authentication failed")],
)
def test_vnc_auth_failure_every_version(version: bytes, tail: bytes) -> None:
    proto = make(VNC)
    proto.receive_data(version)
    if version != b"RFB 003.003\n":
        proto.data_to_send()
        proto.receive_data(b"\x02")
    challenge = proto.data_to_send()[-16:]
    proto.receive_data(encrypt_challenge("wrong", challenge))
    proto.events_received()
    proto.reject_auth()
    assert proto.data_to_send() == b"\x00\x00\x00\x01" + tail
    assert proto.closed
    events = proto.events_received()
    assert isinstance(events[-1], Closed) and "authentication failed" in events[-1].reason


def test_challenges_are_random() -> None:
    seen = set()
    for _ in range(20):
        proto = make(VNC)
        proto.receive_data(b"RFB 003.008\n\x02")
        seen.add(proto.data_to_send()[-16:])
    assert len(seen) == 20


def test_des_known_answer() -> None:
    # the value vncdotool (an independent implementation, over the cryptography package) computes
    challenge = bytes(range(16))
    assert encrypt_challenge("password", challenge).hex() == "b866924125c8eebb9debc1db61c538e2"


def test_empty_password_never_matches() -> None:
    challenge = bytes(16)
    assert not check_response("", challenge, encrypt_challenge("", challenge))
    assert not check_response(None, challenge, encrypt_challenge("", challenge))


def test_client_init_pipelined_with_auth_response() -> None:
    proto = make(VNC)
    proto.receive_data(b"RFB 003.008\n\x02")
    challenge = proto.data_to_send()[-16:]
    # the response and ClientInit arrive together, before the server answered
    proto.receive_data(encrypt_challenge("pw", challenge) + b"\x01")
    assert [type(e) for e in proto.events_received()] == [VersionNegotiated, AuthRequested]
    proto.accept_auth()
    assert proto.events_received() == [ClientInitReceived(True)]


def test_refused_connection_38_and_33() -> None:
    proto = make(refuse_reason="too many clients")
    proto.receive_data(b"RFB 003.008\n")
    assert proto.data_to_send() == b"\x00" + struct.pack(">I", 16) + b"too many clients"
    assert proto.closed
    proto = make(refuse_reason="busy")
    proto.receive_data(b"RFB 003.003\n")
    assert proto.data_to_send() == b"\x00\x00\x00\x00\x00\x00\x00\x04busy"


# --- initialisation (rfbproto 7.3) -------------------------------------------------------------------------------


def test_server_init_bytes() -> None:
    proto = make()
    proto.receive_data(b"RFB 003.008\n\x01")
    proto.events_received()
    proto.accept_auth()
    proto.data_to_send()
    proto.receive_data(b"\x01")
    proto.send_server_init(1280, 720, "desk ü")
    out = proto.data_to_send()
    name = "desk ü".encode()
    assert out == struct.pack(">HH", 1280, 720) + NATIVE.pack() + struct.pack(">I", len(name)) + name
    # native format: 32 bpp, depth 24, little-endian, true colour, 255 maxima, shifts 16/8/0
    assert NATIVE.pack() == bytes.fromhex("2018000100ff00ff00ff100800000000")


# --- client messages (rfbproto 7.5) ------------------------------------------------------------------------------


def test_set_pixel_format_true_colour() -> None:
    proto = connect()
    pf = bytes.fromhex("10100001001f003f001f0b050000 0000".replace(" ", ""))
    proto.receive_data(b"\x00\x00\x00\x00" + pf)
    (event,) = proto.events_received()
    assert isinstance(event, PixelFormatChanged)
    assert event.pixel_format == PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
    assert proto.pixel_format_generation == 1
    assert proto.data_to_send() == b""


def test_set_pixel_format_colour_map_gets_palette() -> None:
    proto = connect()
    pf = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0).pack()
    proto.receive_data(b"\x00\x00\x00\x00" + pf)
    assert isinstance(proto.events_received()[0], PixelFormatChanged)
    out = proto.data_to_send()
    assert out[:6] == b"\x01\x00\x00\x00\x01\x00"  # SetColourMapEntries, first 0, 256 colours
    assert len(out) == 6 + 256 * 6
    assert not proto.closed


def test_set_pixel_format_invalid_closes() -> None:
    proto = connect()
    pf = PixelFormat(24, 24, False, True, 255, 255, 255, 16, 8, 0).pack()
    proto.receive_data(b"\x00\x00\x00\x00" + pf)
    events = proto.events_received()
    assert proto.closed and isinstance(events[-1], Closed) and events[-1].error


def test_set_encodings() -> None:
    proto = connect()
    encs = [16, 5, 0, -223, -224, -308]
    proto.receive_data(b"\x02\x00" + struct.pack(">H", len(encs)) + struct.pack(">6i", *encs))
    assert proto.events_received() == [EncodingsChanged(tuple(encs))]
    assert proto.supports(Encoding.ZRLE) and proto.supports(Encoding.LAST_RECT)
    assert not proto.supports(Encoding.TIGHT)


def test_set_encodings_too_many_closes_before_reading() -> None:
    proto = connect()
    proto.receive_data(b"\x02\x00\xff\xff")  # 65535 encodings announced
    events = proto.events_received()
    assert proto.closed and "SetEncodings lists 65535" in events[-1].reason  # type: ignore[attr-defined]


def test_update_requests_accumulate() -> None:
    proto = connect()
    proto.receive_data(b"\x03\x01" + struct.pack(">4H", 10, 20, 30, 40))
    proto.receive_data(b"\x03\x00" + struct.pack(">4H", 600, 400, 100, 100))  # partly outside 640x480
    assert proto.events_received() == [
        UpdateRequested(True, Rect(10, 20, 30, 40)),
        UpdateRequested(False, Rect(600, 400, 100, 100)),
    ]
    assert proto.has_request
    assert list(proto.full_request) == [Rect(600, 400, 40, 80)]
    assert proto.request_area.area == 30 * 40 + 40 * 80
    full, area = proto.take_request()
    assert full.area == 40 * 80 and area.area == 30 * 40 + 40 * 80
    assert not proto.has_request and not proto.full_request


def test_key_pointer_and_cut_text() -> None:
    proto = connect()
    proto.receive_data(b"\x04\x01\x00\x00" + struct.pack(">I", 0x01000000 + 0x20AC))
    proto.receive_data(b"\x04\x00\x00\x00\x00\x00\xff\x0d")
    proto.receive_data(b"\x05\x05" + struct.pack(">HH", 639, 479))
    text = "héllo".encode("latin-1")
    proto.receive_data(b"\x06\x00\x00\x00" + struct.pack(">I", len(text)) + text)
    assert proto.events_received() == [
        KeyEvent(True, 0x010020AC),
        KeyEvent(False, 0xFF0D),
        PointerEvent(5, 639, 479),
        CutText("héllo"),
    ]


def test_messages_split_across_reads() -> None:
    proto = connect()
    data = b"\x05\x01\x00\x10\x00\x20" + b"\x04\x01\x00\x00\x00\x00\x00\x61"
    for i in range(len(data)):
        proto.receive_data(data[i : i + 1])
    assert proto.events_received() == [PointerEvent(1, 16, 32), KeyEvent(True, 0x61)]


def test_cut_text_over_limit_is_skipped_without_buffering() -> None:
    proto = RFBServerProtocol(ProtocolSettings(max_cut_text=100))
    proto.receive_data(b"RFB 003.008\n\x01")
    proto.events_received()
    proto.accept_auth()
    proto.receive_data(b"\x01")
    proto.send_server_init(10, 10, "x")
    proto.events_received()
    length = 5_000_000
    proto.receive_data(b"\x06\x00\x00\x00" + struct.pack(">I", length))
    chunk = b"z" * 65536
    sent = 0
    while sent < length:
        piece = chunk[: length - sent]
        proto.receive_data(piece)
        sent += len(piece)
        assert len(proto._buf) == 0  # nothing accumulates
    proto.receive_data(b"\x04\x01\x00\x00\x00\x00\x00\x61")
    assert proto.events_received() == [CutTextDiscarded(length), KeyEvent(True, 0x61)]
    assert not proto.closed


def test_cut_text_at_limit_accepted() -> None:
    proto = RFBServerProtocol(ProtocolSettings(max_cut_text=4))
    proto.receive_data(b"RFB 003.008\n\x01")
    proto.accept_auth()
    proto.receive_data(b"\x01")
    proto.send_server_init(10, 10, "x")
    proto.events_received()
    proto.receive_data(b"\x06\x00\x00\x00\x00\x00\x00\x04abcd")
    assert proto.events_received() == [CutText("abcd")]


def test_negative_cut_text_without_extended_clipboard_closes() -> None:
    proto = connect()
    proto.receive_data(b"\x06\x00\x00\x00" + struct.pack(">i", -8))
    assert proto.closed


@pytest.mark.parametrize("mtype", [1, 7, 99, 150, 248, 251, 255])
def test_unknown_message_type_closes_with_reason(mtype: int) -> None:
    proto = connect()
    proto.receive_data(bytes([mtype]) + b"\x00" * 20)
    events = proto.events_received()
    assert proto.closed
    assert isinstance(events[-1], Closed) and f"unknown client message type {mtype}" in events[-1].reason
    # nothing more is parsed or sent after the close
    proto.receive_data(b"\x04\x01\x00\x00\x00\x00\x00\x61")
    assert proto.events_received() == []


def test_set_desktop_size_after_extended_desktop_size() -> None:
    proto = connect()
    proto.receive_data(b"\x02\x00\x00\x01" + struct.pack(">i", -308))
    proto.events_received()
    msg = bytes([251, 0]) + struct.pack(">HHBx", 800, 600, 1) + struct.pack(">IHHHHI", 7, 0, 0, 800, 600, 0)
    proto.receive_data(msg)
    assert proto.events_received() == [DesktopSizeRequested(800, 600, (Screen(7, 0, 0, 800, 600, 0),))]


def test_eof_closes_cleanly() -> None:
    proto = connect()
    proto.receive_eof()
    events = proto.events_received()
    assert events == [Closed("client disconnected", False)]


# --- server messages (rfbproto 7.6) ------------------------------------------------------------------------------


def test_server_messages() -> None:
    proto = connect()
    proto.send_bell()
    proto.send_cut_text("ab€")
    proto.send_update([b"R" * 12, b"S" * 12])
    assert proto.data_to_send() == (
        b"\x02" + b"\x03\x00\x00\x00\x00\x00\x00\x03ab?" + b"\x00\x00\x00\x02" + b"R" * 12 + b"S" * 12
    )


def test_many_rects_use_last_rect() -> None:
    proto = connect()
    with pytest.raises(ValueError):
        proto.send_update([b""] * 70000)
    proto.receive_data(b"\x02\x00\x00\x01" + struct.pack(">i", -224))
    proto.send_update([b"x"] * 70000)
    out = proto.data_to_send()
    assert out[:4] == b"\x00\x00\xff\xff"
    assert out[-12:] == struct.pack(">HHHHi", 0, 0, 0, 0, -224)
