"""The ``pyvnc`` command line: ``pyvnc serve --config pyvnc.toml`` and its flags.

Flags override the config file, which overrides the defaults of :class:`~pyvnc.config.ServerConfig`.
Every bad value ends the program with exactly one line on stderr (``pyvnc: error: ...``) and exit
status 2; errors while the server runs (e.g. the screen cannot be opened) exit with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

from .config import LOG_LEVELS, RFB_TLS_MODES, SOURCES, ServerConfig, load_config, parse_geometry
from .errors import ConfigError, PyVNCError

__all__ = ["build_config", "build_parser", "main"]

logger = logging.getLogger(__name__)

PROG = "pyvnc"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Command-line flag destinations that map one-to-one onto config keys.
_OVERRIDE_KEYS: tuple[str, ...] = (
    "listen",
    "port",
    "web_port",
    "cert",
    "key",
    "password_file",
    "view_only_password_file",
    "insecure_no_auth",
    "source",
    "display",
    "geometry",
    "run",
    "max_fps",
    "encode_threads",
    "h264",
    "rfb_tls",
    "desktop_name",
    "max_clients",
    "log_level",
)


def _version() -> str:
    """The installed version of pyvnc, or "unknown" when run from a source tree."""
    import pyvnc

    version = getattr(pyvnc, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("pyvnc")
    except PackageNotFoundError:
        return "unknown (source tree)"


def _fail(message: str) -> None:
    """Print one ``pyvnc: error: ...`` line on stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see '{self.prog} --help')"
        _fail(message + hint)
        raise SystemExit(2)


# -- argument types: they check syntax only; ServerConfig checks ranges and names the key ---------------


def _int_arg(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _geometry_arg(text: str) -> tuple[int, int]:
    try:
        return parse_geometry(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """Build the ``pyvnc`` argument parser (exposed for tests and documentation)."""
    parser = _Parser(
        prog=PROG,
        description="pyvnc: a VNC (RFB) server for X11 desktops, virtual displays and a demo scene.",
        epilog="Run 'pyvnc serve --help' for the server's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve = commands.add_parser(
        "serve",
        help="run the VNC server",
        description=(
            "Run the VNC server until interrupted (Ctrl-C or SIGTERM).\n\n"
            "Settings come from the built-in defaults, then the config file (--config), then these\n"
            "flags, each overriding the one before. The defaults are shown below."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Without a password the server only listens on loopback addresses; to reach it from another\n"
            "machine give --password-file (or tunnel over SSH). See pyvnc.toml for every setting,\n"
            "including those without a flag (share_policy, max_cut_text, handshake limits)."
        ),
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file; its keys are listed in the reference pyvnc.toml (default: none)",
    )
    serve.add_argument(
        "--listen",
        metavar="ADDR",
        action="append",
        help=(
            "address to listen on: an IPv4/IPv6 address or 'localhost'; repeat for several; "
            "'0.0.0.0' or '::' for all interfaces, which needs a password (default: 127.0.0.1)"
        ),
    )
    serve.add_argument(
        "--port",
        metavar="N",
        type=_int_arg,
        help="TCP port to listen on, 0 for any free port (default: 5900)",
    )
    serve.add_argument(
        "--web-port",
        metavar="N",
        type=_int_arg,
        help=(
            "port of the web listener: a noVNC page at '/' and RFB over WebSocket at '/websockify', "
            "on the same addresses as --listen; 0 turns it off (default: 6080)"
        ),
    )
    serve.add_argument(
        "--cert",
        metavar="FILE",
        help="PEM certificate: with --key, the web port serves https and wss, and --rfb-tls can put TLS "
        "on the VNC port (default: none)",
    )
    serve.add_argument(
        "--key",
        metavar="FILE",
        help="PEM private key for --cert (default: none)",
    )
    serve.add_argument(
        "--password-file",
        metavar="FILE",
        help=(
            "file whose first line is the password for full control; VNC authentication uses "
            "only its first 8 characters (default: no password)"
        ),
    )
    serve.add_argument(
        "--view-only-password-file",
        metavar="FILE",
        help=(
            "file whose first line is a second password that gives view-only access; "
            "needs --password-file too (default: none)"
        ),
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="allow listening on a non-loopback address without a password (dangerous; default: off)",
    )
    serve.add_argument(
        "--source",
        choices=SOURCES,
        type=str.lower,
        help=(
            "what to serve: 'x11' an existing X display, 'xvfb' a virtual display pyvnc starts, "
            "'demo' a synthetic test scene, 'auto' picks one and logs why (default: auto)"
        ),
    )
    serve.add_argument(
        "--display",
        metavar=":N",
        help="X display to capture (x11) or to create (xvfb), e.g. ':1' (default: $DISPLAY or a free one)",
    )
    serve.add_argument(
        "--geometry",
        metavar="WxH",
        type=_geometry_arg,
        help="screen size of the virtual display or demo scene, e.g. 1920x1080 (default: 1280x720)",
    )
    serve.add_argument(
        "--run",
        metavar="CMD",
        help="command to start inside the virtual display, e.g. 'xterm -fg white': split as a shell would, "
        "but not run by one (use sh -c '...' for pipes or &) (default: none)",
    )
    serve.add_argument(
        "--max-fps",
        metavar="N",
        type=_float_arg,
        help="most screen grabs per second, above 0 and at most 240 (default: 60)",
    )
    serve.add_argument(
        "--encode-threads",
        metavar="N",
        type=_int_arg,
        help="threads a big update is encoded on, 1 to 256; 1 keeps each update on one core (default: one per core)",
    )
    serve.add_argument(
        "--rfb-tls",
        choices=RFB_TLS_MODES,
        type=str.lower,
        help="TLS (VeNCrypt) on the VNC port with --cert/--key: 'offer' it first, 'require' it, or 'off' "
        "(default: off)",
    )
    serve.add_argument(
        "--h264",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send H.264 (lossy, text included) to clients that list it, such as noVNC in browsers with "
        "WebCodecs (default: off)",
    )
    serve.add_argument(
        "--desktop-name",
        metavar="NAME",
        help="desktop name shown by viewers (default: chosen by the server)",
    )
    serve.add_argument(
        "--max-clients",
        metavar="N",
        type=_int_arg,
        help="most clients connected at once (default: 32)",
    )
    serve.add_argument(
        "--log-level",
        metavar="LEVEL",
        choices=LOG_LEVELS,
        type=str.lower,
        help="logging level: debug, info, warning or error (default: info)",
    )
    return parser


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed ``serve`` arguments into a :class:`ServerConfig` (flags override ``--config``).

    Raises :class:`~pyvnc.errors.ConfigError` on any bad value.
    """
    overrides: dict[str, object] = {}
    for key in _OVERRIDE_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    return load_config(getattr(args, "config", None), overrides)


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def _configure_logging(level: str) -> None:
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(level.upper())


def _serve(args: argparse.Namespace) -> int:
    """The ``serve`` command: load the config, set up logging and run the server until stopped."""
    # Warnings raised while loading the config (e.g. a long password) use the final format.
    _configure_logging("warning")
    try:
        config = build_config(args)
    except ConfigError as exc:
        _fail(str(exc))
        return 2
    _configure_logging(config.log_level)

    from .server import Server  # imported late: --help and config errors must work without it

    try:
        server = Server(config)
        _run(server.serve_forever())
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:
        _fail(str(exc))
        return 2
    except PyVNCError as exc:
        _fail(str(exc))
        return 1
    except OSError as exc:  # e.g. the port is already in use
        logger.debug("server stopped by an OS error", exc_info=True)
        _fail(str(exc))
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvnc`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args)
    parser.error(f"unknown command {args.command!r}")  # unreachable: argparse checks choices
