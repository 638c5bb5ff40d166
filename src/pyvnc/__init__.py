"""pyvnc: a VNC (RFB) server on asyncio.

Embed it in a program::

    source = PushSource(width=1280, height=720)
    source.push(frame)  # numpy uint8, H×W×3 RGB or H×W×4
    server = Server(ServerConfig(listen=["127.0.0.1"], port=5900, password="secret"), source=source)
    asyncio.run(server.serve_forever())
"""

from __future__ import annotations

from .capture.base import FrameSink, FrameSource
from .capture.demo import DemoSource
from .capture.push import PushSource
from .config import ServerConfig, load_config
from .errors import AuthenticationFailed, CaptureError, ConfigError, EncoderError, ProtocolError, PyVNCError
from .server import Server

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "CaptureError",
    "ConfigError",
    "DemoSource",
    "EncoderError",
    "FrameSink",
    "FrameSource",
    "ProtocolError",
    "PushSource",
    "PyVNCError",
    "Server",
    "ServerConfig",
    "__version__",
    "load_config",
]
