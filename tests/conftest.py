"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.select import EncoderSelector


@pytest.fixture
def used_encodings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every encoding the server's sessions encode updates with, in order (a spy on EncoderSelector.encode)."""
    used: list[int] = []
    original = EncoderSelector.encode

    def spy(self: EncoderSelector, job: EncodeJob, **options: bool) -> tuple[frozenset[int], list[bytes]]:
        encodings, rects = original(self, job, **options)
        used.extend(sorted(encodings))
        return encodings, rects

    monkeypatch.setattr(EncoderSelector, "encode", spy)
    return used


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost), with its key: (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    names = ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    subprocess.run(
        ["openssl", *request, *names, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
