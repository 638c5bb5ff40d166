"""Choose and build the frame source a configuration asks for."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Protocol

from ..errors import ConfigError
from .base import FrameSource
from .demo import DemoSource
from .x11 import X11Source
from .xvfb import XvfbSource

logger = logging.getLogger(__name__)

SOURCES = ("auto", "demo", "x11", "xvfb")


class SourceConfig(Protocol):
    """The settings :func:`create_source` reads (:class:`pyvnc.config.ServerConfig` has them)."""

    @property
    def source(self) -> str: ...

    @property
    def display(self) -> str | None: ...

    @property
    def geometry(self) -> tuple[int, int]: ...

    @property
    def run(self) -> str | None: ...

    @property
    def desktop_name(self) -> str | None: ...


def _choose(config: SourceConfig) -> tuple[str, str]:
    """The source kind to build for ``config`` and why."""
    kind = config.source
    if kind not in SOURCES:
        raise ConfigError(f"source: must be one of {', '.join(SOURCES)}, got {kind!r}")
    if kind != "auto":
        return kind, f'source = "{kind}" in the configuration'
    xvfb = shutil.which("Xvfb") is not None
    if config.run and xvfb:
        return "xvfb", "a run command is configured and Xvfb is installed"
    if config.display:
        return "x11", f"display {config.display} is configured"
    env_display = os.environ.get("DISPLAY")
    if env_display:
        return "x11", f"$DISPLAY is {env_display}"
    if xvfb:
        return "xvfb", "no X display is set and Xvfb is installed"
    return "demo", "no X display is set and Xvfb is not installed"


def create_source(config: SourceConfig) -> FrameSource:
    """Build the frame source ``config`` asks for; ``"auto"`` picks one and logs which and why.

    auto: a run command (with Xvfb installed) → a managed Xvfb; else a configured display or ``$DISPLAY`` →
    that X display; else Xvfb installed → a managed Xvfb; else the demo scene.
    """
    kind, reason = _choose(config)
    width, height = config.geometry
    source: FrameSource
    if kind == "demo":
        source = DemoSource(width, height)
        if config.desktop_name:
            source.name = config.desktop_name
        described = f"the demo scene ({width}x{height})"
    elif kind == "x11":
        x11 = X11Source(config.display, name=config.desktop_name)
        described = f"X display {x11.display or '(unset)'}"
        source = x11
    else:
        try:
            source = XvfbSource(width, height, run=config.run, display=config.display, name=config.desktop_name)
        except ValueError as exc:
            raise ConfigError(f"display: {exc}") from None
        described = f"a private Xvfb ({width}x{height})" + (f" running {config.run!r}" if config.run else "")
    logger.info("frame source: %s, because %s", described, reason)
    return source
