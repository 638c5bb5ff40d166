"""The exception hierarchy of pyvnc (see DESIGN.md, "Errors")."""

from __future__ import annotations


class PyVNCError(Exception):
    """Base class of every error pyvnc raises on purpose."""


class ProtocolError(PyVNCError):
    """The peer broke the RFB protocol; the session closes with this reason."""


class AuthenticationFailed(PyVNCError):
    """A client failed authentication."""


class ConfigError(PyVNCError):
    """A bad configuration value; the message names the key or flag."""


class CaptureError(PyVNCError):
    """The screen source went away or cannot be opened."""


class EncoderError(PyVNCError):
    """An encoder could not encode a rectangle."""
