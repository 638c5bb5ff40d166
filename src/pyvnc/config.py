"""The server configuration: one frozen :class:`ServerConfig`, loaded from TOML or built in code.

Every value is checked in :meth:`ServerConfig.__post_init__`, so a bad value raises
:class:`~pyvnc.errors.ConfigError` whether it came from ``pyvnc.toml``, a command-line flag or a
program calling ``ServerConfig(port=70000)``. Each message starts with the key it is about, e.g.
``port: must be an integer from 0 to 65535, got 70000``.

:func:`load_config` reads a flat TOML file (the keys are the field names; passwords come from
``password_file`` / ``view_only_password_file``) and applies overrides such as command-line flags.
The commented ``pyvnc.toml`` at the repository root lists every key with its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
import os
import re
import ssl
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .errors import ConfigError

__all__ = [
    "LOG_LEVELS",
    "RFB_TLS_MODES",
    "SHARE_POLICIES",
    "SOURCES",
    "ServerConfig",
    "config_keys",
    "load_config",
    "parse_geometry",
]

logger = logging.getLogger(__name__)

#: Values accepted for ``source``.
SOURCES: tuple[str, ...] = ("auto", "demo", "x11", "xvfb")
#: Values accepted for ``share_policy``.
SHARE_POLICIES: tuple[str, ...] = ("client", "always", "never")
#: Values accepted for ``log_level`` (case-insensitive).
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
#: values of ``rfb_tls``
RFB_TLS_MODES: tuple[str, ...] = ("off", "offer", "require")

#: VNC authentication (rfbproto 7.2.2) uses only the first 8 characters of a password.
VNC_PASSWORD_LENGTH = 8
MAX_PORT = 65535
#: most threads ``encode_threads`` may name
MAX_ENCODE_THREADS = 256
MIN_GEOMETRY = 16
MAX_GEOMETRY = 16384
MAX_FPS = 240.0
MAX_CUT_TEXT_LIMIT = 64 * 1024 * 1024

#: An X display name: ``[host]:display[.screen]``.
_DISPLAY_RE = re.compile(r"^[A-Za-z0-9._-]*:\d+(\.\d+)?$")
_GEOMETRY_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")

#: Keys that only exist in a config file (or in overrides): they name files holding the passwords.
_PASSWORD_FILE_KEYS: dict[str, str] = {
    "password_file": "password",
    "view_only_password_file": "view_only_password",
}


def _type_name(value: object) -> str:
    """Name the type of ``value`` the way a TOML user thinks of it, for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _got(value: object) -> str:
    """Describe a rejected value: its type as well as its repr when the type is the surprising part."""
    if isinstance(value, bool):
        return f"got boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"got {value!r}"
    return f"got {_type_name(value)} {value!r}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(key: str, value: object, low: int, high: int | None) -> int:
    """Return ``value`` if it is an integer in ``[low, high]`` (no upper bound if ``high`` is None)."""
    expected = f"an integer of at least {low}" if high is None else f"an integer from {low} to {high}"
    if not _is_int(value):
        raise ConfigError(f"{key}: must be {expected}, {_got(value)}")
    assert isinstance(value, int)
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{key}: must be {expected}, {_got(value)}")
    return value


def _check_optional_str(key: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string, {_got(value)}")
    return value


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` lower-cased if it is one of ``choices`` (compared case-insensitively)."""
    allowed = ", ".join(f'"{c}"' for c in choices)
    if not isinstance(value, str) or value.lower() not in choices:
        raise ConfigError(f"{key}: must be one of {allowed}, {_got(value)}")
    return value.lower()


def _is_loopback(address: str) -> bool:
    """True if ``address`` (already validated) only accepts connections from this machine."""
    if address == "localhost":
        return True
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def parse_geometry(text: str) -> tuple[int, int]:
    """Parse ``"WIDTHxHEIGHT"`` (e.g. ``"1280x720"``) into ``(width, height)``.

    Only the syntax is checked here; the range is checked by :class:`ServerConfig`.
    Raises :class:`ValueError` with a readable message on bad syntax.
    """
    match = _GEOMETRY_RE.match(text)
    if match is None:
        raise ValueError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to know, validated on construction.

    Build it in code (``ServerConfig(listen=["127.0.0.1"], port=5900, password="secret")``) or load it
    with :func:`load_config`. Lists are accepted where tuples are stored; strings naming choices are
    normalised to lower case. Any bad value raises :class:`~pyvnc.errors.ConfigError` naming the key.
    Use :func:`dataclasses.replace` to derive a changed copy (it is validated again).
    """

    #: Addresses to listen on: IPv4/IPv6 literals or "localhost". "0.0.0.0" / "::" mean every interface.
    #: Any sequence is accepted (e.g. a list); it is always stored as a tuple.
    listen: Sequence[str] = ("127.0.0.1",)
    #: TCP port; 0 picks a free port (handy in tests).
    port: int = 5900
    #: Password for full control (VNC authentication uses its first 8 characters). None: no password.
    password: str | None = field(default=None, repr=False)
    #: Password for view-only access: such clients see the screen but send no input or clipboard.
    view_only_password: str | None = field(default=None, repr=False)
    #: Allow listening on a non-loopback address without any password. Dangerous.
    insecure_no_auth: bool = False
    #: What to serve: "auto", "demo" (a synthetic scene), "x11" (an existing display), "xvfb" (managed).
    source: str = "auto"
    #: X display such as ":1" (for "x11": the one to capture; for "xvfb": the one to create).
    display: str | None = None
    #: (width, height) of a managed Xvfb or the demo scene.
    geometry: tuple[int, int] = (1280, 720)
    #: A command to run inside the managed Xvfb (e.g. a window manager or an application), split into words
    #: as a shell would (shlex) but run without one: use ``sh -c '...'`` for shell syntax.
    run: str | None = None
    #: Upper bound on screen grabs per second.
    max_fps: float = 60.0
    #: Threads a big update is encoded on (1 to 256); None: one per core. Applies to the whole process.
    encode_threads: int | None = None
    #: Send Open H.264 (encoding 50) to clients that list it, in their order of preference. Off by default:
    #: H.264 is lossy everywhere, text included, and noVNC lists it first wherever the browser decodes it.
    h264: bool = False
    #: Logging level: "debug", "info", "warning" or "error".
    log_level: str = "info"
    #: Desktop name sent to clients (ServerInit); None lets the server choose one.
    desktop_name: str | None = None
    #: Most clients connected at once; further connections are refused.
    max_clients: int = 32
    #: Most connections still in the handshake (before ClientInit) at once.
    max_pending_handshakes: int = 16
    #: Seconds a client has to finish the handshake before it is dropped.
    handshake_timeout: float = 10.0
    #: Largest clipboard text accepted from a client, in bytes; longer text is skipped (and logged).
    max_cut_text: int = 1048576
    #: "client" honours ClientInit's shared flag, "always" treats every client as shared, "never" lets a
    #: new client disconnect the others (view-only clients never disconnect anybody).
    share_policy: str = "client"
    #: TCP port of the web listener (our noVNC page at "/", RFB over WebSocket at "/websockify"); 0: off.
    #: It listens on the same addresses as the RFB port, under the same password rules.
    web_port: int = 6080
    #: PEM certificate (chain) file: with ``key``, the web port serves https and wss.
    cert: str | None = None
    #: PEM private-key file for ``cert``.
    key: str | None = None
    #: TLS on the RFB port, with ``cert`` and ``key`` (VeNCrypt X509None / X509Vnc): "offer" it first and
    #: keep the plain security type for clients without VeNCrypt, "require" it, or "off" (the default: a
    #: viewer that speaks VeNCrypt takes it when offered and must then trust the certificate, which some
    #: cannot be told to). Without a certificate there is nothing to offer ("offer" and "require" are then
    #: errors).
    rfb_tls: str = "off"
    #: Origins allowed to open a WebSocket, e.g. "https://vnc.example.org"; empty: only the page's own
    #: origin (the Origin header must match the Host header), plus clients that send no Origin at all.
    web_origins: Sequence[str] = ()
    #: Largest WebSocket message accepted from a browser, in bytes.
    web_max_message: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        """Validate and normalise every field; raise ConfigError naming the key on a bad value."""
        set_ = self._set
        set_("listen", self._validate_listen(self.listen))
        set_("port", _check_int("port", self.port, 0, MAX_PORT))
        set_("password", self._validate_password("password", self.password))
        set_("view_only_password", self._validate_password("view_only_password", self.view_only_password))
        if not isinstance(self.insecure_no_auth, bool):
            raise ConfigError(f"insecure_no_auth: must be true or false, {_got(self.insecure_no_auth)}")
        set_("source", _check_choice("source", self.source, SOURCES))
        set_("display", self._validate_display(self.display))
        set_("geometry", self._validate_geometry(self.geometry))
        set_("run", _check_optional_str("run", self.run))
        if self.run is not None and not self.run.strip():
            raise ConfigError("run: must be a command, got an empty string")
        set_("max_fps", self._validate_max_fps(self.max_fps))
        if self.encode_threads is not None:
            set_("encode_threads", _check_int("encode_threads", self.encode_threads, 1, MAX_ENCODE_THREADS))
        if not isinstance(self.h264, bool):
            raise ConfigError(f"h264: must be true or false, {_got(self.h264)}")
        set_("log_level", _check_choice("log_level", self.log_level, LOG_LEVELS))
        set_("desktop_name", _check_optional_str("desktop_name", self.desktop_name))
        set_("max_clients", _check_int("max_clients", self.max_clients, 1, None))
        set_(
            "max_pending_handshakes",
            _check_int("max_pending_handshakes", self.max_pending_handshakes, 1, None),
        )
        set_("handshake_timeout", self._validate_handshake_timeout(self.handshake_timeout))
        set_("max_cut_text", _check_int("max_cut_text", self.max_cut_text, 0, MAX_CUT_TEXT_LIMIT))
        set_("share_policy", _check_choice("share_policy", self.share_policy, SHARE_POLICIES))
        set_("web_port", _check_int("web_port", self.web_port, 0, MAX_PORT))
        set_("cert", self._validate_pem("cert", self.cert))
        set_("key", self._validate_pem("key", self.key))
        set_("rfb_tls", _check_choice("rfb_tls", self.rfb_tls, RFB_TLS_MODES))
        set_("web_origins", self._validate_origins(self.web_origins))
        set_("web_max_message", _check_int("web_max_message", self.web_max_message, 1024, 1 << 30))
        self._check_consistency()

    # -- helpers -------------------------------------------------------------------------------------

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    @staticmethod
    def _validate_listen(value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            value = (value,)  # a single address is a common slip; accept it
        if not isinstance(value, list | tuple):
            raise ConfigError(f"listen: must be a list of addresses, {_got(value)}")
        if not value:
            raise ConfigError('listen: must name at least one address, e.g. ["127.0.0.1"]')
        addresses: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(f"listen: each address must be a string, {_got(item)}")
            address = item.strip()
            if address.startswith("[") and address.endswith("]"):
                address = address[1:-1]  # "[::1]" as written in URLs
            if address.lower() == "localhost":
                address = "localhost"
            else:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise ConfigError(
                        f'listen: {item!r} is not an IPv4 or IPv6 address or "localhost" '
                        '(use "0.0.0.0" or "::" for every interface)'
                    ) from None
            if address not in addresses:
                addresses.append(address)
        return tuple(addresses)

    @staticmethod
    def _validate_password(key: str, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, {_type_name(value)} given")
        if value == "":
            raise ConfigError(f"{key}: must not be empty (an empty password never matches)")
        if len(value) > VNC_PASSWORD_LENGTH:
            logger.warning(
                "%s is longer than %d characters; VNC authentication only uses the first %d",
                key,
                VNC_PASSWORD_LENGTH,
                VNC_PASSWORD_LENGTH,
            )
        return value

    @staticmethod
    def _check_key_pair(cert: str, key: str) -> None:
        """The certificate and key load together as TLS needs them (a key of another certificate, a file of
        the wrong kind, a key with a passphrase are errors now rather than when the server starts)."""
        from .streams import server_tls_context

        try:
            server_tls_context(cert, key)
        except ValueError as exc:  # the passphrase callback
            raise ConfigError(f"key: {key}: {exc}") from exc
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ConfigError(f"key: {key} is not the key of the certificate {cert}") from exc
            if b"-----BEGIN CERTIFICATE-----" not in Path(cert).read_bytes():
                raise ConfigError(f"cert: {cert} holds no certificate (PEM 'BEGIN CERTIFICATE')") from exc
            if b"PRIVATE KEY-----" not in Path(key).read_bytes():
                raise ConfigError(f"key: {key} holds no private key (PEM 'BEGIN ... PRIVATE KEY')") from exc
            raise ConfigError(f"cert, key: {cert} and {key} cannot be used for TLS: {exc}") from exc

    @staticmethod
    def _validate_pem(key: str, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str | os.PathLike):
            raise ConfigError(f"{key}: must be a path (string), {_got(value)}")
        path = os.fspath(value)
        try:
            with open(path, "rb") as fh:
                head = fh.read(4096)
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
        if b"-----BEGIN" not in head:
            raise ConfigError(f"{key}: {path} is not a PEM file")
        return str(path)

    @staticmethod
    def _validate_origins(value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f'web_origins: must be a list of origins such as "https://host:6080", {_got(value)}')
        return tuple(v.strip().rstrip("/") for v in value)

    @staticmethod
    def _validate_display(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _DISPLAY_RE.match(value):
            got = f"got {value!r}" if isinstance(value, str) else _got(value)
            raise ConfigError(f'display: must be an X display such as ":1" or "host:0.0", {got}')
        return value

    @staticmethod
    def _validate_geometry(value: object) -> tuple[int, int]:
        expected = f"[width, height] with each from {MIN_GEOMETRY} to {MAX_GEOMETRY}"
        if isinstance(value, str):
            try:
                value = parse_geometry(value)
            except ValueError as exc:
                raise ConfigError(f"geometry: {exc}") from None
        if not isinstance(value, list | tuple) or len(value) != 2 or not all(_is_int(v) for v in value):
            raise ConfigError(f"geometry: must be {expected}, {_got(value)}")
        width, height = value
        assert isinstance(width, int) and isinstance(height, int)
        for size in (width, height):
            if not MIN_GEOMETRY <= size <= MAX_GEOMETRY:
                raise ConfigError(f"geometry: must be {expected}, got {width}x{height}")
        return (width, height)

    @staticmethod
    def _validate_max_fps(value: object) -> float:
        expected = f"a number greater than 0 and at most {MAX_FPS:g}"
        if not _is_number(value):
            raise ConfigError(f"max_fps: must be {expected}, {_got(value)}")
        assert isinstance(value, int | float)
        if not 0 < value <= MAX_FPS:  # also rejects NaN
            raise ConfigError(f"max_fps: must be {expected}, {_got(value)}")
        return float(value)

    @staticmethod
    def _validate_handshake_timeout(value: object) -> float:
        expected = "a positive number of seconds"
        if not _is_number(value):
            raise ConfigError(f"handshake_timeout: must be {expected}, {_got(value)}")
        assert isinstance(value, int | float)
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"handshake_timeout: must be {expected}, {_got(value)}")
        return float(value)

    def _check_consistency(self) -> None:
        """Rules that involve more than one key."""
        if self.view_only_password is not None:
            if self.password is None:
                raise ConfigError(
                    "view_only_password: needs password (or password_file) too, so that somebody can get full control"
                )
            if self.view_only_password == self.password:
                raise ConfigError("view_only_password: must differ from password")
            if self.view_only_password[:VNC_PASSWORD_LENGTH] == self.password[:VNC_PASSWORD_LENGTH]:
                logger.warning(
                    "password and view_only_password share their first %d characters, which is all VNC "
                    "authentication compares: a client typing either gets full control",
                    VNC_PASSWORD_LENGTH,
                )
        if (self.cert is None) != (self.key is None):
            raise ConfigError("cert: cert and key must be given together (both PEM files)")
        if self.rfb_tls != "off" and self.cert is None:
            raise ConfigError(f'rfb_tls: "{self.rfb_tls}" needs a certificate: set cert and key (PEM files)')
        if self.cert is not None and self.key is not None:
            self._check_key_pair(self.cert, self.key)
        if self.web_port and self.web_port == self.port:
            raise ConfigError(f"web_port: must differ from port ({self.port}); use 0 to turn the web listener off")
        if self.run is not None and self.source not in ("auto", "xvfb"):
            raise ConfigError(f'run: needs source "xvfb" (or "auto"), but source is "{self.source}"')
        if not self.requires_auth and not self.insecure_no_auth:
            exposed = [a for a in self.listen if not _is_loopback(a)]
            if exposed:
                raise ConfigError(
                    f"listen: refusing to listen on {', '.join(exposed)} without a password; "
                    "set password_file (--password-file), listen on 127.0.0.1 and tunnel over SSH, "
                    "or set insecure_no_auth = true (--insecure-no-auth) if you really mean it"
                )

    # -- derived properties --------------------------------------------------------------------------

    @property
    def requires_auth(self) -> bool:
        """True if clients must authenticate (a password is set)."""
        return self.password is not None

    @property
    def loopback_only(self) -> bool:
        """True if every listen address only accepts connections from this machine."""
        return all(_is_loopback(a) for a in self.listen)


def config_keys() -> tuple[str, ...]:
    """Every key a config file (or ``load_config``'s overrides) may contain."""
    names = [f.name for f in dataclasses.fields(ServerConfig)]
    return (*names, *_PASSWORD_FILE_KEYS)


def _unknown_key_error(key: str, where: str) -> ConfigError:
    message = f"{key}: unknown key{where}"
    close = difflib.get_close_matches(key, config_keys(), n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return ConfigError(message)


def _read_password_file(key: str, value: object, base: Path | None) -> str:
    """Return the first line of the password file named by ``value`` (relative to ``base``)."""
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(f"{key}: must be a path (string), {_got(value)}")
    path = Path(value)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        with path.open("rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if not first_line:
        raise ConfigError(f"{key}: the first line of {path} is empty (an empty password never matches)")
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("%s: %s is readable by other users; consider chmod 600", key, path)
    return first_line


def _resolve_passwords(values: dict[str, object], base: Path | None, where: str) -> dict[str, object]:
    """Replace ``*_password_file`` keys in ``values`` by the passwords read from those files."""
    resolved = dict(values)
    for file_key, key in _PASSWORD_FILE_KEYS.items():
        if file_key not in resolved:
            continue
        if key in resolved:
            raise ConfigError(f"{file_key}: set together with {key}{where}; use only one of them")
        resolved[key] = _read_password_file(file_key, resolved.pop(file_key), base)
    return resolved


_NO_OVERRIDES: Mapping[str, object] = MappingProxyType({})


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: the file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return data


def load_config(path: str | Path | None, overrides: Mapping[str, object] = _NO_OVERRIDES) -> ServerConfig:
    """Build a :class:`ServerConfig` from the TOML file at ``path`` (if any) and ``overrides``.

    The file holds flat top-level keys named like the :class:`ServerConfig` fields, except that
    passwords are best given as ``password_file`` / ``view_only_password_file``: paths (relative to the
    config file's directory) whose first line is the password. Inline ``password`` is accepted too.

    ``overrides`` (e.g. command-line flags) win over the file; every key present is applied, and their
    ``*_password_file`` paths are relative to the current directory. A password given in one source
    replaces a password or password file given in the other.

    Raises :class:`~pyvnc.errors.ConfigError` for a missing/unreadable/invalid file, an unknown key, a
    wrong type or value, or an unreadable password file.
    """
    known = set(config_keys())
    file_values: dict[str, object] = {}
    base: Path | None = None
    if path is not None:
        path = Path(path)
        file_values = _read_toml(path)
        base = path.parent
        for key in file_values:
            if key not in known:
                raise _unknown_key_error(key, f" in {path}")

    override_values = dict(overrides)
    for key in override_values:
        if key not in known:
            raise _unknown_key_error(key, " in overrides")

    # A password from the overrides (inline or as a file) replaces the file's, which is then not read.
    for file_key, key in _PASSWORD_FILE_KEYS.items():
        if file_key in override_values or key in override_values:
            file_values.pop(file_key, None)
            file_values.pop(key, None)

    file_values = _resolve_passwords(file_values, base, f" in {path}")
    for file_key in ("cert", "key"):
        value = file_values.get(file_key)
        if base is not None and isinstance(value, str) and not Path(value).is_absolute():
            file_values[file_key] = str(base / value)
    override_values = _resolve_passwords(override_values, None, " in overrides")

    merged = {**file_values, **override_values}
    return ServerConfig(**merged)  # type: ignore[arg-type]  # values are checked in __post_init__
