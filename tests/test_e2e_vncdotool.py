"""End to end with a real client nobody here wrote: vncdotool (``vncdo``) over TCP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyvnc import DemoSource, PushSource, Server, ServerConfig

VNCDO = str(Path(sys.executable).with_name("vncdo"))
ROOT = Path(__file__).resolve().parent.parent


async def vncdo(port: int, *args: str, password: str | None = None, timeout: float = 60) -> tuple[int, str]:
    cmd = [VNCDO, "-s", f"127.0.0.1::{port}"]
    if password is not None:
        cmd += ["-p", password]
    proc = await asyncio.create_subprocess_exec(
        *cmd, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, "timeout"
    return proc.returncode or 0, out.decode(errors="replace")


def rgb_of(frame: np.ndarray) -> np.ndarray:
    """BGRX → RGB."""
    return np.ascontiguousarray(frame[..., 2::-1])


async def test_capture_equals_server_frame(tmp_path: Path) -> None:
    source = DemoSource(800, 600, animate=False)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        out = tmp_path / "cap.png"
        rc, text = await vncdo(server.port, "capture", str(out))
        assert rc == 0, text
        assert server.hub is not None
        captured = np.asarray(Image.open(out).convert("RGB"))
        assert captured.shape == (600, 800, 3)
        assert np.array_equal(captured, rgb_of(server.hub.frame))
        assert captured.std() > 10  # a real scene, not a blank frame


async def test_capture_with_password_and_wrong_password(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (333, 517, 3), dtype=np.uint8)
    source = PushSource(width=517, height=333)
    source.push(frame)
    async with Server(ServerConfig(port=0, web_port=0, password="s3cret!"), source=source) as server:
        out = tmp_path / "cap.png"
        rc, text = await vncdo(server.port, "capture", str(out), password="s3cret!")
        assert rc == 0, text
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), frame)

        bad = tmp_path / "bad.png"
        rc, text = await vncdo(server.port, "capture", str(bad), password="wrong", timeout=30)
        assert rc != 0
        assert not bad.exists()
        # the server keeps serving others after a failed login
        rc, text = await vncdo(server.port, "capture", str(out), password="s3cret!")
        assert rc == 0, text


async def test_view_only_password_ignores_input(tmp_path: Path) -> None:
    keys: list[tuple[int, bool]] = []
    source = PushSource(width=64, height=48, on_key=lambda k, d: keys.append((k, d)))
    config = ServerConfig(port=0, web_port=0, password="full", view_only_password="look")
    async with Server(config, source=source) as server:
        rc, text = await vncdo(server.port, "key", "a", password="look")
        assert rc == 0, text
        await asyncio.sleep(0.2)
        assert keys == []
        rc, text = await vncdo(server.port, "key", "b", password="full")
        assert rc == 0, text
        for _ in range(50):
            if len(keys) >= 2:
                break
            await asyncio.sleep(0.05)
        assert keys == [(ord("b"), True), (ord("b"), False)]


async def test_partial_push_reaches_client(tmp_path: Path) -> None:
    source = PushSource(width=320, height=200)
    base = np.zeros((200, 320, 3), np.uint8)
    source.push(base)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        changed = base.copy()
        changed[50:60, 70:90] = (10, 200, 30)
        source.push(changed, rects=[(70, 50, 20, 10)])
        out = tmp_path / "cap.png"
        rc, text = await vncdo(server.port, "capture", str(out))
        assert rc == 0, text
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), changed)


def _start_cli(*args: str) -> asyncio.Future[asyncio.subprocess.Process]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pyvnc",
            "serve",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(ROOT),
        )
    )


async def _wait_port(proc: asyncio.subprocess.Process) -> tuple[int, list[str]]:
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        if not line:
            raise AssertionError("server exited:\n" + "".join(lines))
        lines.append(line)
        m = re.search(r"listening for VNC clients on 127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1)), lines


@pytest.mark.parametrize("with_password", [False, True])
async def test_cli_demo_source(tmp_path: Path, with_password: bool) -> None:
    args = ["--source", "demo", "--port", "0", "--web-port", "0", "--geometry", "640x400"]
    password = None
    if with_password:
        password = "hunter2"
        pw = tmp_path / "pw"
        pw.write_text(password + "\n")
        args += ["--password-file", str(pw)]
    proc = await _start_cli(*args)
    try:
        port, lines = await _wait_port(proc)
        out = tmp_path / "cap.png"
        rc, text = await vncdo(port, "capture", str(out), password=password)
        assert rc == 0, text
        img = Image.open(out)
        assert img.size == (640, 400)
        if with_password:
            rc, text = await vncdo(port, "capture", str(tmp_path / "x.png"), password="nope", timeout=30)
            assert rc != 0
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 15)
    assert proc.stderr is not None
    rest = (await proc.stderr.read()).decode()
    log = "".join(lines) + rest
    assert rc == 0, log
    assert "Traceback" not in log
    assert "hunter2" not in log
    assert "SIGTERM" in log


async def test_embedding_example_runs(tmp_path: Path) -> None:
    """examples/embed.py: asyncio.run(server.serve_forever()) from another program, stopped by SIGINT."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "embed.py"),
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        first, second = tmp_path / "1.png", tmp_path / "2.png"
        rc, text = await vncdo(port, "capture", str(first), password="secret")
        assert rc == 0, text
        await asyncio.sleep(0.3)
        rc, text = await vncdo(port, "capture", str(second), password="secret")
        assert rc == 0, text
        a = np.asarray(Image.open(first).convert("RGB"))
        b = np.asarray(Image.open(second).convert("RGB"))
        assert a.shape == (600, 800, 3)
        assert not np.array_equal(a, b)  # the picture moves
    finally:
        proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(proc.wait(), 15)
    assert proc.stdout is not None
    out = (await proc.stdout.read()).decode()
    assert rc == 0 and "Traceback" not in out, out
