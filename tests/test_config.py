"""Tests of pyvnc.config: ServerConfig validation and TOML loading."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from pyvnc.config import ServerConfig, config_keys, load_config, parse_geometry
from pyvnc.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_TOML = REPO_ROOT / "pyvnc.toml"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and programmatic use ----------------------------------------------------------------------


def test_defaults() -> None:
    config = ServerConfig()
    assert config.listen == ("127.0.0.1",)
    assert config.port == 5900
    assert config.password is None
    assert config.view_only_password is None
    assert config.insecure_no_auth is False
    assert config.source == "auto"
    assert config.display is None
    assert config.geometry == (1280, 720)
    assert config.run is None
    assert config.max_fps == 60.0
    assert config.log_level == "info"
    assert config.desktop_name is None
    assert config.max_clients == 32
    assert config.encode_threads is None
    assert config.max_pending_handshakes == 16
    assert config.handshake_timeout == 10.0
    assert config.max_cut_text == 1048576
    assert config.share_policy == "client"
    assert config.requires_auth is False
    assert config.loopback_only is True


def test_programmatic_list_becomes_tuple() -> None:
    config = ServerConfig(listen=["127.0.0.1", "::1"], port=5901, password="secret")
    assert config.listen == ("127.0.0.1", "::1")
    assert config.password == "secret"
    assert config.requires_auth
    hash(config)  # frozen and hashable


def test_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


def test_replace_revalidates() -> None:
    with pytest.raises(ConfigError, match=r"^port:"):
        dataclasses.replace(ServerConfig(), port=-1)


def test_normalisation() -> None:
    config = ServerConfig(
        listen=("LOCALHOST", "[::1]", "127.0.0.1", "127.0.0.1"),
        log_level="DEBUG",
        source="Demo",
        share_policy="ALWAYS",
        geometry=[800, 600],  # type: ignore[arg-type]
        max_fps=30,
        handshake_timeout=5,
    )
    assert config.listen == ("localhost", "::1", "127.0.0.1")
    assert config.log_level == "debug"
    assert config.source == "demo"
    assert config.share_policy == "always"
    assert config.geometry == (800, 600)
    assert isinstance(config.max_fps, float)
    assert isinstance(config.handshake_timeout, float)


def test_geometry_string_accepted() -> None:
    assert ServerConfig(geometry="1920x1080").geometry == (1920, 1080)  # type: ignore[arg-type]


def test_password_not_in_repr() -> None:
    config = ServerConfig(password="hunter2", view_only_password="viewer")
    assert "hunter2" not in repr(config)
    assert "viewer" not in repr(config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 70000}, "port: must be an integer from 0 to 65535, got 70000"),
        ({"port": -1}, "port: must be an integer from 0 to 65535, got -1"),
        ({"port": "5900"}, "port: must be an integer from 0 to 65535, got string '5900'"),
        ({"port": True}, "port: must be an integer from 0 to 65535, got boolean true"),
        ({"port": 5900.0}, "port: must be an integer"),
        ({"listen": ()}, "listen: must name at least one address"),
        ({"listen": ["nonsense"]}, "listen: 'nonsense' is not an IPv4 or IPv6 address"),
        ({"listen": ["example.com"]}, "listen: 'example.com' is not"),
        ({"listen": [1]}, "listen: each address must be a string"),
        ({"listen": 5}, "listen: must be a list of addresses"),
        ({"password": ""}, "password: must not be empty (an empty password never matches)"),
        ({"password": 1234}, "password: must be a string"),
        ({"password": "a", "view_only_password": ""}, "view_only_password: must not be empty"),
        ({"view_only_password": "viewer"}, "view_only_password: needs password"),
        ({"password": "same", "view_only_password": "same"}, "view_only_password: must differ"),
        ({"insecure_no_auth": 1}, "insecure_no_auth: must be true or false"),
        ({"h264": "on"}, "h264: must be true or false"),
        ({"rfb_tls": "yes"}, 'rfb_tls: must be one of "off", "offer", "require"'),
        ({"rfb_tls": "require"}, 'rfb_tls: "require" needs a certificate'),
        ({"source": "wayland"}, 'source: must be one of "auto", "demo", "x11", "xvfb"'),
        ({"source": None}, "source: must be one of"),
        ({"display": "1"}, 'display: must be an X display such as ":1"'),
        ({"display": ":x"}, "display: must be an X display"),
        ({"display": 1}, "display: must be an X display"),
        ({"geometry": (15, 720)}, "geometry: must be [width, height] with each from 16 to 16384, got 15x720"),
        ({"geometry": (1280, 16385)}, "geometry: must be [width, height]"),
        ({"geometry": (1280,)}, "geometry: must be [width, height]"),
        ({"geometry": (1280.0, 720)}, "geometry: must be [width, height]"),
        ({"geometry": "big"}, "geometry: expected WIDTHxHEIGHT"),
        ({"run": ""}, "run: must be a command"),
        ({"run": ["xterm"]}, "run: must be a string"),
        ({"run": "xterm", "source": "demo"}, 'run: needs source "xvfb"'),
        ({"max_fps": 0}, "max_fps: must be a number greater than 0 and at most 240, got 0"),
        ({"max_fps": 241}, "max_fps: must be a number greater than 0 and at most 240"),
        ({"max_fps": float("nan")}, "max_fps: must be a number"),
        ({"max_fps": "fast"}, "max_fps: must be a number"),
        ({"log_level": "verbose"}, "log_level: must be one of"),
        ({"desktop_name": 3}, "desktop_name: must be a string"),
        ({"max_clients": 0}, "max_clients: must be an integer of at least 1, got 0"),
        ({"encode_threads": 0}, "encode_threads: must be an integer from 1 to 256, got 0"),
        ({"encode_threads": 257}, "encode_threads: must be an integer from 1 to 256"),
        ({"encode_threads": 2.0}, "encode_threads: must be an integer"),
        ({"encode_threads": "all"}, "encode_threads: must be an integer"),
        ({"max_pending_handshakes": 0}, "max_pending_handshakes: must be an integer of at least 1"),
        ({"handshake_timeout": 0}, "handshake_timeout: must be a positive number of seconds"),
        ({"handshake_timeout": float("inf")}, "handshake_timeout: must be a positive number"),
        ({"max_cut_text": -1}, "max_cut_text: must be an integer from 0 to 67108864"),
        ({"max_cut_text": 64 * 1024 * 1024 + 1}, "max_cut_text: must be an integer from 0"),
        ({"share_policy": "sometimes"}, 'share_policy: must be one of "client", "always", "never"'),
    ],
)
def test_validation_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerConfig(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_password_never_in_error_message() -> None:
    with pytest.raises(ConfigError) as info:
        ServerConfig(password="topsecret", view_only_password="topsecret")
    assert "topsecret" not in str(info.value)


def test_limits_accepted() -> None:
    config = ServerConfig(
        port=0, geometry=(16, 16384), max_fps=240, max_cut_text=0, listen=["::1"], max_clients=1
    )
    assert config.port == 0
    assert ServerConfig(port=65535).port == 65535
    assert ServerConfig(encode_threads=1).encode_threads == 1
    assert ServerConfig(encode_threads=256).encode_threads == 256


def test_long_password_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pyvnc.config"):
        ServerConfig(password="123456789")
    assert "first 8" in caplog.text
    assert "123456789" not in caplog.text


def test_short_password_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pyvnc.config"):
        ServerConfig(password="12345678")
    assert caplog.text == ""


# -- the no-authentication rule -------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.10", "2001:db8::1", "::ffff:10.0.0.1"])
def test_non_loopback_without_password_refused(address: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerConfig(listen=(address,))
    message = str(info.value)
    assert message.startswith("listen:")
    assert address in message
    assert "password_file" in message
    assert "insecure_no_auth" in message


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.10"])
def test_non_loopback_allowed_with_password_or_insecure_flag(address: str) -> None:
    assert ServerConfig(listen=(address,), password="secret").listen == (address,)
    config = ServerConfig(listen=(address,), insecure_no_auth=True)
    assert config.listen == (address,)
    assert not config.loopback_only


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "::ffff:127.0.0.1"])
def test_loopback_without_password_allowed(address: str) -> None:
    config = ServerConfig(listen=(address,))
    assert config.loopback_only


def test_mixed_listen_names_exposed_address() -> None:
    with pytest.raises(ConfigError, match=r"^listen: refusing to listen on 10\.1\.2\.3 without a password"):
        ServerConfig(listen=("127.0.0.1", "10.1.2.3"))


# -- parse_geometry -------------------------------------------------------------------------------------


def test_parse_geometry() -> None:
    assert parse_geometry("1920x1080") == (1920, 1080)
    assert parse_geometry("800X600") == (800, 600)
    for bad in ("1920", "x1080", "1920x", "ax b", "-1x5", "1920x1080x3"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            parse_geometry(bad)


# -- load_config ----------------------------------------------------------------------------------------


def test_load_none_gives_defaults() -> None:
    assert load_config(None) == ServerConfig()


def test_reference_toml_equals_defaults() -> None:
    assert load_config(REFERENCE_TOML) == ServerConfig()


def test_reference_toml_documents_every_key() -> None:
    text = REFERENCE_TOML.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"^#?\s*([a-z_][a-z0-9_]*)\s*=", text, flags=re.MULTILINE))
    assert set(config_keys()) <= mentioned


def test_load_full_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    write(tmp_path / "secrets" / "full", "s3cret\n")
    write(tmp_path / "secrets" / "view", "viewer\r\nsecond line ignored\n")
    path = write(
        tmp_path / "pyvnc.toml",
        """
listen = ["0.0.0.0", "::"]
port = 5901
password_file = "secrets/full"
view_only_password_file = "secrets/view"
source = "xvfb"
display = ":7"
geometry = [1920, 1080]
run = "xterm"
max_fps = 30
log_level = "DEBUG"
desktop_name = "test desk"
max_clients = 4
max_pending_handshakes = 2
handshake_timeout = 2.5
max_cut_text = 0
share_policy = "never"
""",
    )
    config = load_config(path)
    assert config == ServerConfig(
        listen=("0.0.0.0", "::"),
        port=5901,
        password="s3cret",
        view_only_password="viewer",
        source="xvfb",
        display=":7",
        geometry=(1920, 1080),
        run="xterm",
        max_fps=30.0,
        log_level="debug",
        desktop_name="test desk",
        max_clients=4,
        max_pending_handshakes=2,
        handshake_timeout=2.5,
        max_cut_text=0,
        share_policy="never",
    )


def test_password_file_relative_to_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    write(conf_dir / "pw", "fromconf")
    write(tmp_path / "pw", "fromcwd")
    path = write(conf_dir / "pyvnc.toml", 'password_file = "pw"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config(path).password == "fromconf"
    # override paths are relative to the current directory
    assert load_config(path, {"password_file": "pw"}).password == "fromcwd"


def test_absolute_password_file(tmp_path: Path) -> None:
    pw = write(tmp_path / "pw", "abs\n")
    path = write(tmp_path / "sub.toml", f"password_file = {str(pw)!r}\n")
    assert load_config(path).password == "abs"


def test_inline_password_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'password = "inline"\n')
    assert load_config(path).password == "inline"


def test_password_and_password_file_conflict(tmp_path: Path) -> None:
    write(tmp_path / "pw", "x")
    path = write(tmp_path / "c.toml", 'password = "inline"\npassword_file = "pw"\n')
    with pytest.raises(ConfigError, match=r"^password_file: set together with password"):
        load_config(path)


@pytest.mark.parametrize("content", ["", "\n", "\r\nsecret\n"])
def test_empty_password_file(tmp_path: Path, content: str) -> None:
    write(tmp_path / "pw", content)
    path = write(tmp_path / "c.toml", 'password_file = "pw"\n')
    with pytest.raises(ConfigError, match=r"^password_file: the first line of .*pw is empty"):
        load_config(path)


def test_missing_password_file_names_path(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'view_only_password_file = "nope"\npassword = "p"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith("view_only_password_file: cannot read")
    assert str(tmp_path / "nope") in message


def test_password_file_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "password_file = 3\n")
    with pytest.raises(ConfigError, match=r"^password_file: must be a path"):
        load_config(path)


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "prot = 5900\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith("prot: unknown key")
    assert "did you mean 'port'?" in message


def test_unknown_key_suggests_password_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'passwordfile = "x"\n')
    with pytest.raises(ConfigError, match="did you mean 'password_file'"):
        load_config(path)


def test_unknown_key_without_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[server]\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith("server: unknown key")
    assert "did you mean" not in str(info.value)


def test_unknown_override_key() -> None:
    with pytest.raises(ConfigError, match=r"^max_fsp: unknown key in overrides \(did you mean 'max_fps'\?\)"):
        load_config(None, {"max_fsp": 3})


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('port = "5900"', "port"),
        ('listen = "0.0.0.0:5900"', "listen"),
        ("listen = [1, 2]", "listen"),
        ('insecure_no_auth = "yes"', "insecure_no_auth"),
        ("h264 = 1", "h264"),
        ('geometry = ["a", "b"]', "geometry"),
        ("geometry = { w = 1, h = 2 }", "geometry"),
        ("max_fps = true", "max_fps"),
        ("max_clients = 1.5", "max_clients"),
        ("log_level = 1", "log_level"),
        ("handshake_timeout = 1979-05-27", "handshake_timeout"),
    ],
)
def test_wrong_toml_type_names_key(tmp_path: Path, toml: str, key: str) -> None:
    path = write(tmp_path / "c.toml", toml + "\n")
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        load_config(path)


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "port = \n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "invalid TOML" in message
    assert str(path) in message
    assert "line 1" in message  # tomllib's own message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'desktop_name = "\xff"\n')
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_missing_config_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    assert "No such file" in str(info.value)


def test_config_path_is_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)


def test_overrides_beat_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'port = 5901\nsource = "demo"\nlisten = ["127.0.0.1", "::1"]\n')
    config = load_config(path, {"port": 6000, "listen": ["::1"]})
    assert config.port == 6000
    assert config.listen == ("::1",)
    assert config.source == "demo"


def test_override_password_replaces_file_password(tmp_path: Path) -> None:
    write(tmp_path / "pw", "fromfile")
    path = write(tmp_path / "c.toml", 'password_file = "missing-but-overridden"\n')
    assert load_config(path, {"password_file": str(tmp_path / "pw")}).password == "fromfile"
    assert load_config(path, {"password": "inline"}).password == "inline"


def test_file_password_allows_override_listen_everywhere(tmp_path: Path) -> None:
    write(tmp_path / "pw", "pw")
    path = write(tmp_path / "c.toml", 'password_file = "pw"\n')
    assert load_config(path, {"listen": ["0.0.0.0"]}).listen == ("0.0.0.0",)


def test_auth_rule_applies_to_loaded_config(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'listen = ["0.0.0.0"]\n')
    with pytest.raises(ConfigError, match=r"^listen: refusing"):
        load_config(path)
    assert load_config(path, {"insecure_no_auth": True}).insecure_no_auth


def test_ipv6_loopback_from_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'listen = ["::1"]\n')
    assert load_config(path).listen == ("::1",)


def test_load_accepts_str_path(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "port = 0\n")
    assert load_config(str(path)).port == 0
