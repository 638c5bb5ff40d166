"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest

from pyvnc.encoders.base import EncodeJob
from pyvnc.encoders.select import EncoderSelector


@pytest.fixture
def used_encodings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every encoding the server's sessions encode updates with, in order (a spy on EncoderSelector.encode)."""
    used: list[int] = []
    original = EncoderSelector.encode

    def spy(self: EncoderSelector, job: EncodeJob, video: bool = True) -> tuple[frozenset[int], list[bytes]]:
        encodings, rects = original(self, job, video)
        used.extend(sorted(encodings))
        return encodings, rects

    monkeypatch.setattr(EncoderSelector, "encode", spy)
    return used
