"""create_source: which source a configuration gets, and why."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

import pytest

from pyvnc.capture.demo import DemoSource
from pyvnc.capture.factory import create_source
from pyvnc.capture.x11 import X11Source
from pyvnc.capture.xvfb import XvfbSource
from pyvnc.errors import ConfigError


@dataclass(frozen=True)
class Cfg:
    source: str = "auto"
    display: str | None = None
    geometry: tuple[int, int] = (800, 600)
    run: str | None = None
    desktop_name: str | None = None


@pytest.fixture
def no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)


def _xvfb_installed(monkeypatch: pytest.MonkeyPatch, installed: bool) -> None:
    real = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **k: ("/usr/bin/Xvfb" if installed else None) if name == "Xvfb" else real(name),
    )


def test_auto_with_display_env(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DISPLAY", ":42")
    with caplog.at_level(logging.INFO, logger="pyvnc.capture.factory"):
        src = create_source(Cfg())
    assert isinstance(src, X11Source) and not isinstance(src, XvfbSource)
    assert src.display == ":42"
    assert "$DISPLAY" in caplog.text and ":42" in caplog.text


def test_auto_with_configured_display(no_display: None) -> None:
    src = create_source(Cfg(display=":7"))
    assert type(src) is X11Source and src.display == ":7"


def test_auto_without_display_uses_xvfb(no_display: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _xvfb_installed(monkeypatch, True)
    src = create_source(Cfg(geometry=(1024, 768)))
    assert isinstance(src, XvfbSource) and src.size == (1024, 768)


def test_auto_without_anything_uses_demo(
    no_display: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _xvfb_installed(monkeypatch, False)
    with caplog.at_level(logging.INFO, logger="pyvnc.capture.factory"):
        src = create_source(Cfg(geometry=(640, 480)))
    assert isinstance(src, DemoSource) and src.size == (640, 480)
    assert "Xvfb is not installed" in caplog.text


def test_auto_with_a_run_command_prefers_xvfb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":42")
    _xvfb_installed(monkeypatch, True)
    src = create_source(Cfg(run="xterm"))
    assert isinstance(src, XvfbSource) and src.run == "xterm"


def test_explicit_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":42")
    demo = create_source(Cfg(source="demo", desktop_name="hello"))
    assert isinstance(demo, DemoSource) and demo.name == "hello"
    x11 = create_source(Cfg(source="x11", display=":3", desktop_name="desk"))
    assert type(x11) is X11Source and x11.display == ":3" and x11.name == "desk"
    xvfb = create_source(Cfg(source="xvfb", display=":55", geometry=(300, 200), run="xterm -e top"))
    assert isinstance(xvfb, XvfbSource) and xvfb.requested_display == 55 and xvfb.size == (300, 200)


def test_bad_values() -> None:
    with pytest.raises(ConfigError, match="source"):
        create_source(Cfg(source="vnc"))
    with pytest.raises(ConfigError, match="display"):
        create_source(Cfg(source="xvfb", display="otherhost:1"))
