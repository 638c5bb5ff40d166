"""VeNCrypt (rfbproto "VeNCrypt"), bytes in and out: versions, subtypes, the ack, the pause for TLS, and the
authentication that follows inside it."""

from __future__ import annotations

import pytest

from pyvnc.protocol.connection import Phase, ProtocolSettings, RFBServerProtocol
from pyvnc.protocol.constants import SecurityType, VeNCryptSubtype
from pyvnc.protocol.messages import AuthRequested, ClientInitReceived, Closed, TLSRequested
from pyvnc.protocol.security.vncauth import check_response, encrypt_challenge

VENCRYPT, VNC, NONE = SecurityType.VENCRYPT, SecurityType.VNC_AUTH, SecurityType.NONE
X509_VNC, X509_NONE = VeNCryptSubtype.X509_VNC, VeNCryptSubtype.X509_NONE


def make(types: tuple[int, ...], subtypes: tuple[int, ...], version: bytes = b"RFB 003.008\n") -> RFBServerProtocol:
    proto = RFBServerProtocol(ProtocolSettings(security_types=types, vencrypt_subtypes=subtypes))
    assert proto.data_to_send() == b"RFB 003.008\n"
    proto.receive_data(version)
    return proto


def to_tls(proto: RFBServerProtocol, subtype: int) -> None:
    """Choose VeNCrypt and ``subtype``: the exchange up to TLS, byte for byte."""
    proto.receive_data(bytes([VENCRYPT]))
    assert proto.data_to_send() == b"\x00\x02"  # VeNCrypt 0.2
    proto.receive_data(b"\x00\x02")
    assert proto.data_to_send() == b"\x00\x01" + subtype.to_bytes(4, "big")  # OK, one subtype
    proto.receive_data(subtype.to_bytes(4, "big"))
    assert proto.data_to_send() == b""  # the session sends the ack once it has paused reading
    assert proto.events_received()[-1:] == [TLSRequested(subtype)]
    assert proto.phase is Phase.TLS_PENDING and proto.vencrypt_subtype == subtype
    proto.accept_tls()
    assert proto.data_to_send() == b"\x01"  # the ack; TLS next


def test_offer_lists_vencrypt_first_then_the_plain_type() -> None:
    proto = make((VENCRYPT, VNC), (X509_VNC,))
    assert proto.data_to_send() == b"\x02\x13\x02"


def test_x509vnc_authenticates_inside_tls() -> None:
    """Nothing is sent or parsed between the ack and ``tls_started()`` (what the client sends there is TLS);
    then VNC Authentication goes on as usual, and the SecurityResult follows."""
    proto = make((VENCRYPT, VNC), (X509_VNC,))
    proto.data_to_send()
    to_tls(proto, X509_VNC)
    proto.tls_started()
    challenge = proto.data_to_send()
    assert len(challenge) == 16
    proto.receive_data(encrypt_challenge("secret", challenge) + b"\x01")  # the response, then ClientInit
    auth = [e for e in proto.events_received() if isinstance(e, AuthRequested)]
    assert len(auth) == 1 and auth[0].security_type == VNC
    assert check_response("secret", auth[0].challenge, auth[0].response)
    proto.accept_auth()
    assert proto.data_to_send() == b"\x00\x00\x00\x00"
    assert proto.events_received() == [ClientInitReceived(True)]
    assert proto.security_type == VENCRYPT


@pytest.mark.parametrize("version", [b"RFB 003.007\n", b"RFB 003.008\n"])
def test_x509none_sends_security_result_in_37_too(version: bytes) -> None:
    """Inside VeNCrypt, "None" still gets its SecurityResult: the security type is VeNCrypt, not None."""
    proto = make((VENCRYPT,), (X509_NONE,), version)
    assert proto.data_to_send() == b"\x01\x13"
    to_tls(proto, X509_NONE)
    proto.tls_started()
    auth = [e for e in proto.events_received() if isinstance(e, AuthRequested)]
    assert auth == [AuthRequested(NONE, b"", b"")]
    proto.accept_auth()
    assert proto.data_to_send() == b"\x00\x00\x00\x00"


def test_bytes_before_tls_started_wait() -> None:
    """Bytes fed while TLS is pending are not parsed as RFB (the session never feeds the TLS handshake, but
    the parser must not run ahead either)."""
    proto = make((VENCRYPT,), (X509_VNC,))
    proto.data_to_send()
    to_tls(proto, X509_VNC)
    proto.receive_data(b"\x16\x03\x01")
    assert proto.data_to_send() == b"" and proto.events_received() == []
    assert proto.phase is Phase.TLS_PENDING
    with pytest.raises(RuntimeError):
        proto.accept_auth()


def test_bytes_sent_with_the_subtype_are_refused() -> None:
    """Bytes right behind the subtype, before the ack: an early ClientHello (TLS would never see it) or
    plaintext meant to be taken as sent inside TLS (here a ClientInit and a KeyEvent, which an X509None server
    would otherwise accept as authenticated input). A failing ack and a close, never TLSRequested."""
    proto = make((VENCRYPT,), (X509_NONE,))
    proto.data_to_send()
    proto.receive_data(bytes([VENCRYPT]))
    proto.data_to_send()
    proto.receive_data(b"\x00\x02")
    proto.data_to_send()
    proto.receive_data(X509_NONE.to_bytes(4, "big") + b"\x01" + b"\x04\x01\x00\x00\x00\x00\x00\x41")
    assert proto.data_to_send() == b"\x00"
    events = proto.events_received()
    assert proto.closed and not any(isinstance(e, (TLSRequested, AuthRequested)) for e in events)
    assert isinstance(events[-1], Closed) and "before the server's ack" in events[-1].reason


def test_refuse_tls_sends_a_failing_ack_and_closes() -> None:
    """What the session does when bytes reached its stream's buffer before it paused reading."""
    proto = make((VENCRYPT,), (X509_VNC,))
    proto.data_to_send()
    proto.receive_data(bytes([VENCRYPT]) + b"\x00\x02")
    proto.data_to_send()
    proto.receive_data(X509_VNC.to_bytes(4, "big"))
    proto.events_received()
    proto.refuse_tls("early bytes")
    assert proto.data_to_send() == b"\x00" and proto.closed
    with pytest.raises(RuntimeError):
        proto.accept_tls()


def test_other_vencrypt_version_is_refused() -> None:
    proto = make((VENCRYPT,), (X509_VNC,))
    proto.data_to_send()
    proto.receive_data(bytes([VENCRYPT]))
    proto.data_to_send()
    proto.receive_data(b"\x00\x01")  # 0.1
    assert proto.data_to_send() == b"\x01"  # not OK
    events = proto.events_received()
    assert proto.closed and isinstance(events[-1], Closed) and "VeNCrypt version 0.1" in events[-1].reason


@pytest.mark.parametrize("subtype", [256, 257, 259, X509_NONE])
def test_a_subtype_not_offered_is_refused(subtype: int) -> None:
    """Plain (256), the anonymous-TLS and Plain subtypes, and X509None when only X509Vnc is offered: a
    failing ack (0) and a clean close, never a downgrade to no authentication."""
    proto = make((VENCRYPT, VNC), (X509_VNC,))
    proto.data_to_send()
    proto.receive_data(bytes([VENCRYPT]))
    proto.data_to_send()
    proto.receive_data(b"\x00\x02")
    proto.data_to_send()
    proto.receive_data(subtype.to_bytes(4, "big"))
    assert proto.data_to_send() == b"\x00"
    events = proto.events_received()
    assert proto.closed and isinstance(events[-1], Closed) and str(subtype) in events[-1].reason
    assert not any(isinstance(e, (TLSRequested, AuthRequested)) for e in events)


def test_rfb33_gets_the_plain_type_or_a_clear_refusal() -> None:
    """RFB 3.3 lets the server pick, and VeNCrypt needs the client to: 3.3 clients get VNC Authentication
    when it is offered beside VeNCrypt, and a refusal with the reason when TLS is required."""
    offer = make((VENCRYPT, VNC), (X509_VNC,), b"RFB 003.003\n")
    out = offer.data_to_send()
    assert out[:4] == b"\x00\x00\x00\x02" and len(out) == 20
    required = make((VENCRYPT,), (X509_VNC,), b"RFB 003.003\n")
    out = required.data_to_send()
    reason = b"this server requires TLS (VeNCrypt), which RFB 3.3 cannot negotiate"
    assert out == b"\x00\x00\x00\x00" + len(reason).to_bytes(4, "big") + reason
    assert required.closed


def test_settings_must_pair_vencrypt_with_subtypes() -> None:
    with pytest.raises(ValueError):
        RFBServerProtocol(ProtocolSettings(security_types=(VENCRYPT,)))
    with pytest.raises(ValueError):
        RFBServerProtocol(ProtocolSettings(security_types=(VNC,), vencrypt_subtypes=(X509_VNC,)))
