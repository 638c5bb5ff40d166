"""Tests of the ``pyvnc`` command line: argument parsing, config building and error reporting."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import pyvnc.config
from pyvnc.cli import build_config, build_parser, main
from pyvnc.config import ServerConfig
from pyvnc.errors import CaptureError, ConfigError

# The directory holding the pyvnc package under test, so the subprocesses import the same code.
SRC_DIR = Path(pyvnc.config.__file__).resolve().parent.parent

SERVE_FLAGS = [
    "--config",
    "--listen",
    "--port",
    "--password-file",
    "--view-only-password-file",
    "--insecure-no-auth",
    "--source",
    "--display",
    "--geometry",
    "--run",
    "--max-fps",
    "--desktop-name",
    "--max-clients",
    "--log-level",
]


def run_pyvnc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pyvnc ARGS`` with the package under test on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC_DIR)
    return subprocess.run(
        [sys.executable, "-m", "pyvnc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def parse(*args: str) -> ServerConfig:
    return build_config(build_parser().parse_args(["serve", *args]))


# -- build_config ---------------------------------------------------------------------------------------


def test_no_flags_gives_defaults() -> None:
    assert parse() == ServerConfig()


def test_flags_map_to_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("full\n")
    (tmp_path / "vpw").write_text("view\n")
    config = parse(
        "--listen",
        "0.0.0.0",
        "--listen",
        "::",
        "--port",
        "5901",
        "--password-file",
        str(tmp_path / "pw"),
        "--view-only-password-file",
        str(tmp_path / "vpw"),
        "--source",
        "XVFB",
        "--display",
        ":3",
        "--geometry",
        "1920x1080",
        "--run",
        "xterm -fg white",
        "--max-fps",
        "24.5",
        "--desktop-name",
        "desk",
        "--max-clients",
        "3",
        "--encode-threads",
        "1",
        "--h264",
        "--rfb-tls",
        "OFF",
        "--log-level",
        "DEBUG",
    )
    assert config == ServerConfig(
        listen=("0.0.0.0", "::"),
        port=5901,
        password="full",
        view_only_password="view",
        source="xvfb",
        display=":3",
        geometry=(1920, 1080),
        run="xterm -fg white",
        max_fps=24.5,
        desktop_name="desk",
        max_clients=3,
        encode_threads=1,
        h264=True,
        rfb_tls="off",
        log_level="debug",
    )


def test_h264_flag_overrides_the_file_either_way(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("h264 = true\n")
    assert parse("--config", str(conf)).h264
    assert not parse("--config", str(conf), "--no-h264").h264
    assert parse("--h264").h264 and not parse().h264


def test_insecure_no_auth_flag() -> None:
    assert parse("--listen", "0.0.0.0", "--insecure-no-auth").insecure_no_auth
    with pytest.raises(ConfigError, match=r"^listen: refusing"):
        parse("--listen", "0.0.0.0")


def test_flags_override_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('port = 5901\nsource = "demo"\ninsecure_no_auth = true\n')
    config = parse("--config", str(conf), "--port", "6000")
    assert config.port == 6000
    assert config.source == "demo"
    assert config.insecure_no_auth  # an absent flag does not reset the file's value


def test_reference_config_via_cli() -> None:
    repo_toml = Path(__file__).resolve().parent.parent / "pyvnc.toml"
    assert parse("--config", str(repo_toml)) == ServerConfig()


# -- main() in-process ----------------------------------------------------------------------------------


def test_main_without_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: pyvnc" in err
    assert "serve" in err


def test_main_config_error_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", "--config", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("pyvnc: error: cannot read config file")


def test_main_argparse_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "abc"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("pyvnc: error: argument --port: expected an integer, got 'abc'")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("pyvnc ")


# -- python -m pyvnc as a subprocess --------------------------------------------------------------------


def test_serve_help_mentions_every_flag() -> None:
    result = run_pyvnc("serve", "--help")
    assert result.returncode == 0, result.stderr
    for flag in SERVE_FLAGS:
        assert flag in result.stdout, flag
    assert "default" in result.stdout


def test_no_subcommand_exits_2() -> None:
    result = run_pyvnc()
    assert result.returncode == 2
    assert "usage: pyvnc" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "config_text", "expected"),
    [
        (["--port", "70000"], None, "pyvnc: error: port: must be an integer from 0 to 65535, got 70000"),
        (["--port", "abc"], None, "pyvnc: error: argument --port: expected an integer"),
        (["--geometry", "big"], None, "pyvnc: error: argument --geometry: expected WIDTHxHEIGHT"),
        (["--geometry", "8x8"], None, "pyvnc: error: geometry: must be [width, height]"),
        (["--max-fps", "fast"], None, "pyvnc: error: argument --max-fps: expected a number"),
        (["--max-fps", "0"], None, "pyvnc: error: max_fps: must be a number greater than 0"),
        (["--source", "wayland"], None, "pyvnc: error: argument --source: invalid choice"),
        (["--log-level", "loud"], None, "pyvnc: error: argument --log-level: invalid choice"),
        (["--display", "1"], None, "pyvnc: error: display: must be an X display"),
        (["--listen", "nowhere"], None, "pyvnc: error: listen: 'nowhere' is not"),
        (["--listen", "0.0.0.0"], None, "pyvnc: error: listen: refusing to listen on 0.0.0.0"),
        (["--max-clients", "0"], None, "pyvnc: error: max_clients: must be an integer of at least 1"),
        (["--encode-threads", "0"], None, "pyvnc: error: encode_threads: must be an integer from 1 to 256"),
        (["--password-file", "no-such-file"], None, "pyvnc: error: password_file: cannot read no-such-file"),
        (["--config", "missing.toml"], None, "pyvnc: error: cannot read config file missing.toml"),
        (["--bogus"], None, "pyvnc: error: unrecognized arguments: --bogus"),
        (
            ["--config", "c.toml"],
            "prot = 1\n",
            "pyvnc: error: prot: unknown key in c.toml (did you mean 'port'?)",
        ),
        (["--config", "c.toml"], 'port = "1"\n', "pyvnc: error: port: must be an integer"),
        (["--config", "c.toml"], "port = = 1\n", "pyvnc: error: c.toml: invalid TOML"),
        (["--config", "c.toml"], 'password_file = "pw"\n', "pyvnc: error: password_file: cannot read"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, args: list[str], config_text: str | None, expected: str
) -> None:
    if config_text is not None:
        (tmp_path / "c.toml").write_text(config_text)
    result = run_pyvnc("serve", *args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected), lines[0]
    assert result.stdout == ""


def test_empty_password_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    result = run_pyvnc("serve", "--password-file", "pw", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pyvnc: error: password_file: the first line of pw is empty (an empty password never matches)"
    ]


# -- the serve path, with a stand-in for pyvnc.server ---------------------------------------------------


class _FakeServer:
    """Records each config it is given; serve_forever raises ``outcome`` unless it is None."""

    configs: ClassVar[list[ServerConfig]] = []
    outcome: ClassVar[BaseException | None] = None

    def __init__(self, config: ServerConfig) -> None:
        self.configs.append(config)

    async def serve_forever(self) -> None:
        if self.outcome is not None:
            raise self.outcome


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeServer]]:
    module = types.ModuleType("pyvnc.server")
    module.Server = _FakeServer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyvnc.server", module)
    _FakeServer.configs = []
    _FakeServer.outcome = None
    root = logging.getLogger()
    level = root.level
    yield _FakeServer
    root.setLevel(level)


@pytest.mark.parametrize(
    ("outcome", "status", "message"),
    [
        (None, 0, None),
        (KeyboardInterrupt(), 0, None),
        (CaptureError("cannot open display :9"), 1, "pyvnc: error: cannot open display :9"),
        (ConfigError("source: Xvfb is not installed"), 2, "pyvnc: error: source: Xvfb is not installed"),
        (OSError(98, "Address already in use"), 1, "pyvnc: error: [Errno 98] Address already in use"),
    ],
)
def test_serve_outcomes(
    fake_server: type[_FakeServer],
    capsys: pytest.CaptureFixture[str],
    outcome: BaseException | None,
    status: int,
    message: str | None,
) -> None:
    fake_server.outcome = outcome
    assert main(["serve", "--port", "0", "--source", "demo", "--log-level", "warning"]) == status
    assert fake_server.configs == [ServerConfig(port=0, source="demo", log_level="warning")]
    assert logging.getLogger().level == logging.WARNING
    err = capsys.readouterr().err
    if message is None:
        assert err == ""
    else:
        assert err.splitlines() == [message]


def test_serve_config_error_does_not_start_server(
    fake_server: type[_FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "-5"]) == 2
    assert fake_server.configs == []
    assert capsys.readouterr().err.splitlines() == [
        "pyvnc: error: port: must be an integer from 0 to 65535, got -5"
    ]
