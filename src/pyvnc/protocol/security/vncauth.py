"""VNC Authentication (rfbproto 7.2.2): DES challenge-response.

The server sends a random 16-byte challenge; the client encrypts it with DES (ECB) under a key made from the
first eight bytes of the password, each byte's bit order reversed, NUL-padded. This module never logs.
"""

from __future__ import annotations

import hmac
import secrets

from Crypto.Cipher import DES

CHALLENGE_SIZE = 16

# Each key byte has its bit order reversed (a quirk of the original VNC DES code).
_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def make_challenge() -> bytes:
    """A fresh random challenge from the OS's CSPRNG."""
    return secrets.token_bytes(CHALLENGE_SIZE)


def _key(password: str) -> bytes:
    raw = password.encode("latin-1", errors="replace")[:8].ljust(8, b"\0")
    return raw.translate(_REVERSED)


def encrypt_challenge(password: str, challenge: bytes) -> bytes:
    """The response a client with ``password`` sends for ``challenge`` (used by tests and our own client)."""
    cipher = DES.new(_key(password), DES.MODE_ECB)
    return bytes(cipher.encrypt(challenge))


def check_response(password: str | None, challenge: bytes, response: bytes) -> bool:
    """True when ``response`` answers ``challenge`` for ``password``; an empty or missing password never matches.

    The comparison runs in constant time.
    """
    if not password or len(challenge) != CHALLENGE_SIZE or len(response) != CHALLENGE_SIZE:
        return False
    expected = encrypt_challenge(password, challenge)
    return hmac.compare_digest(expected, response)
