"""pyvnc side by side with TigerVNC's scraping server (x0vncserver) on the same screen content.

    .venv/bin/python benchmarks/compare_x0vncserver.py [--frames N] [--rounds R] [--images a,b] [--encodings a,b]
                                                       [--compress N] [--x0 /usr/bin/X0tigervnc]
                                                       [--encode-threads N]

For each corpus image it starts an Xvfb at 1920×1080×24 showing the image (``display -window root``), runs
``X0tigervnc -display :N -rfbport P -localhost=1 -SecurityTypes None`` and ``pyvnc serve --source x11`` (both
as subprocesses, so each one's CPU time is its own) on that display, and for every encoding a small RFB 3.8
client of this script's own connects to each server in turn: SecurityType None, SetPixelFormat 32 bpp depth 24
little-endian (red shift 16, green 8, blue 0), SetEncodings [encoding, quality level (JPEG rows only),
compression level], then one warm-up frame and N full (non-incremental) FramebufferUpdateRequests, one at a
time. It counts the bytes of each FramebufferUpdate and reads the server's CPU time (utime + stime of every
thread, /proc/PID/stat fields 14 and 15) before and after the N frames.

Printed per image × encoding: KiB per full frame, server CPU ms per frame and client-seen wall ms per frame
for both servers, the pyvnc/x0vncserver ratios, and for Tight rows the PSNR of what the client decoded
against the image (the tests' reference Tight decoder, JPEG through Pillow; "exact" when lossless), so that
JPEG sizes can be compared at the quality each server delivered. Notes:

- x0vncserver always paints the pointer into its framebuffer (pyvnc does not unless the client lacks a cursor
  pseudo-encoding — none is offered here, so both paint it); it sits on a flat area of no image in particular
  and changes sizes by a few bytes at most.
- x0vncserver does not implement Zlib (6): those rows show pyvnc only. The encodings each server actually used
  are listed under the table when they are not just the one asked for (servers may fall back, e.g. to Raw).
- Both servers poll the screen while a client is connected; that cost is in the CPU figures of both.
- The kernel counts CPU time in ticks of 1/CLK_TCK s (10 ms here), so a row needs a few dozen frames before
  its CPU figure means anything: with 10 frames of 5 ms the reading is off by up to 20 %. Hence 40 by default.
- On a busy machine one reading of a row moves by 10-30 % from run to run. ``--rounds R`` measures every row
  R times, the two servers taking turns (in the other order every round), and shows the medians.

For RRE and Hextile rows a last section puts pyvnc's encoder, in this process, on the very rectangles
x0vncserver cut its last frame into (bands of at most 65,536 pixels): the tile grid then starts at the same
rows for both, so the comparison is of the encoders alone (x0vncserver's bands happen to suit the terminal
image's text lines better than one grid over the whole frame does).

Every process started here is killed on the way out (normal exit, error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")
IMAGES = ("terminal", "webpage", "desktop", "photo", "noise")
WIDTH, HEIGHT = 1920, 1080
CLK_TCK = os.sysconf("SC_CLK_TCK")

RAW, RRE, HEXTILE, ZLIB, TIGHT, ZRLE = 0, 2, 5, 6, 7, 16
#: the client reads big rectangles in pieces of at most this many bytes
READ_CHUNK = 1 << 20
QUALITY_0 = -32
COMPRESS_0 = -256

#: name → (encoding, JPEG quality level or None for lossless)
ENCODINGS: dict[str, tuple[int, int | None]] = {
    "raw": (RAW, None),
    "rre": (RRE, None),
    "hextile": (HEXTILE, None),
    "zlib": (ZLIB, None),
    "zrle": (ZRLE, None),
    "tight": (TIGHT, None),
    "tight-jpeg6": (TIGHT, 6),
    "tight-jpeg8": (TIGHT, 8),
}
DEFAULT_ENCODINGS = ("raw", "rre", "hextile", "zlib", "zrle", "tight", "tight-jpeg6", "tight-jpeg8")
ENCODING_NAMES = {RAW: "Raw", 1: "CopyRect", RRE: "RRE", HEXTILE: "Hextile", ZLIB: "Zlib", TIGHT: "Tight", ZRLE: "ZRLE"}

#: 32 bpp, depth 24, little-endian, true colour, maxima 255, shifts red 16, green 8, blue 0
PIXEL_FORMAT = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
BPP = 4  # bytes per pixel
TPIXEL = 3  # Tight / ZRLE compact pixel: depth 24 in 32 bpp


# --------------------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------------------


class Processes:
    """Every process this script starts; all killed by :meth:`stop_all`."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs[:]):
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def start_xvfb(procs: Processes) -> tuple[subprocess.Popen[bytes], str]:
    r, w = os.pipe()
    proc = procs.start(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{WIDTH}x{HEIGHT}x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(w,),
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    if not number:
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


def show_image(display: str, image: Path) -> None:
    """Make ``image`` the root window's background (ImageMagick's ``display`` exits once it has set it)."""
    subprocess.run(
        ["display", "-display", display, "-window", "root", str(image)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=False,  # it exits with status 1 after setting the background
    )
    try:
        import mss
        import numpy as np
        from PIL import Image
    except ImportError:
        return
    with mss.MSS(display=display) as sct:
        shot = np.asarray(sct.grab(sct.monitors[0]))[..., 2::-1]
    if not np.array_equal(shot, np.asarray(Image.open(image).convert("RGB"))):
        raise RuntimeError(f"{display} does not show {image} exactly")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from 3 (state) on
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15


# --------------------------------------------------------------------------------------------------------------
# the client
# --------------------------------------------------------------------------------------------------------------


class CountingReader:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.count = 0
        #: when set, every byte read is also appended here
        self.tape: bytearray | None = None

    async def read(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.count += n
        if self.tape is not None:
            self.tape += data
        return data

    async def skip(self, n: int) -> None:
        """Read ``n`` bytes that are not needed (onto the tape, when one is running). A big rectangle is taken
        with read(), whatever has arrived at a time: readexactly() of 8 MB was several times slower here (the
        buffer is copied and shifted as it fills) and added about 9 ms of this client's time to a frame."""
        if self.tape is not None or n <= READ_CHUNK:
            await self.read(n)
            return
        left = n
        while left:
            got = await self.reader.read(min(left, READ_CHUNK))
            if not got:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(got)
        self.count += n

    async def u8(self) -> int:
        return (await self.read(1))[0]

    async def u32(self) -> int:
        return int(struct.unpack(">I", await self.read(4))[0])

    async def compact_length(self) -> int:
        length = 0
        for shift in (0, 7, 14):
            b = await self.u8()
            length |= (b & 0x7F if shift < 14 else b) << shift
            if shift == 14 or not b & 0x80:
                break
        return length


@dataclass
class Measurement:
    frame_bytes: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    encodings: Counter[str] = field(default_factory=Counter)
    #: PSNR (dB) of the last frame as decoded, against the image shown (Tight rows; None elsewhere)
    psnr: float | None = None
    #: (x, y, w, h, encoding) of every rectangle of the last frame
    rects: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    #: (CPU ms, wall ms) per frame of every round (``--rounds``); the figures shown are their medians
    rounds: list[tuple[float, float]] = field(default_factory=list)

    @property
    def kib_per_frame(self) -> float:
        return sum(self.frame_bytes) / len(self.frame_bytes) / 1024

    @property
    def cpu_ms_per_frame(self) -> float:
        if self.rounds:
            return statistics.median(cpu for cpu, _ in self.rounds)
        return self.cpu_s * 1000 / len(self.frame_bytes)

    @property
    def wall_ms_per_frame(self) -> float:
        if self.rounds:
            return statistics.median(wall for _, wall in self.rounds)
        return self.wall_s * 1000 / len(self.frame_bytes)

    def add_round(self, other: Measurement) -> None:
        """Count ``other``, a later round of the same row, in the medians."""
        if not self.rounds:
            self.rounds.append((self.cpu_s * 1000 / len(self.frame_bytes), self.wall_s * 1000 / len(self.frame_bytes)))
        self.rounds.append((other.cpu_ms_per_frame, other.wall_ms_per_frame))


class Client:
    """An RFB 3.8 client that reads (and skips over) every rectangle of the encodings measured here."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r = CountingReader(reader)
        self.writer = writer
        self.width = self.height = 0
        #: every Tight rectangle received (header included), in order, for decoding afterwards
        self.tight_rects: list[bytes] = []
        #: (x, y, w, h, encoding) of every rectangle of the last update
        self.last_rects: list[tuple[int, int, int, int, int]] = []

    @classmethod
    async def connect(cls, port: int, encodings: list[int]) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self = cls(reader, writer)
        version = await self.r.read(12)
        if not version.startswith(b"RFB 003."):
            raise RuntimeError(f"not an RFB server: {version!r}")
        writer.write(b"RFB 003.008\n")
        types = await self.r.read(await self.r.u8())
        if 1 not in types:
            raise RuntimeError(f"security type None not offered: {list(types)}")
        writer.write(b"\x01")
        if await self.r.u32() != 0:
            raise RuntimeError("security handshake failed")
        writer.write(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", await self.r.read(4))
        await self.r.skip(16)
        await self.r.skip(await self.r.u32())
        writer.write(b"\x00\x00\x00\x00" + PIXEL_FORMAT)
        writer.write(struct.pack(">BxH", 2, len(encodings)) + b"".join(struct.pack(">i", e) for e in encodings))
        await writer.drain()
        return self

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def frame(self, used: Counter[str]) -> int:
        """Request the whole screen (non-incremental); the bytes of the FramebufferUpdate that answers."""
        self.writer.write(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))
        await self.writer.drain()
        while True:
            mtype = await self.r.u8()
            if mtype == 0:
                start = self.r.count - 1
                await self.update(used)
                return self.r.count - start
            await self.other_message(mtype)

    async def other_message(self, mtype: int) -> None:
        r = self.r
        if mtype == 1:  # SetColourMapEntries
            _pad, _first, n = struct.unpack(">BHH", await r.read(5))
            await r.skip(6 * n)
        elif mtype == 2:  # Bell
            pass
        elif mtype == 3:  # ServerCutText
            await r.skip(3)
            await r.skip(await r.u32())
        elif mtype == 150:  # EndOfContinuousUpdates
            pass
        elif mtype == 248:  # ServerFence
            await r.skip(7)
            await r.skip(await r.u8())
        else:
            raise RuntimeError(f"unexpected server message {mtype}")

    async def update(self, used: Counter[str]) -> None:
        r = self.r
        (count,) = struct.unpack(">xH", await r.read(3))
        self.last_rects = []
        for _ in range(count):
            _x, _y, w, h, enc = struct.unpack(">HHHHi", await r.read(12))
            if enc == -224:  # LastRect
                break
            self.last_rects.append((_x, _y, w, h, enc))
            used[ENCODING_NAMES.get(enc, str(enc))] += 1
            if enc == RAW:
                await r.skip(w * h * BPP)
            elif enc == 1:  # CopyRect
                await r.skip(4)
            elif enc == RRE:
                n = await r.u32()
                await r.skip(BPP + n * (BPP + 8))
            elif enc == HEXTILE:
                await self.hextile(w, h)
            elif enc in (ZLIB, ZRLE):
                await r.skip(await r.u32())
            elif enc == TIGHT:
                self.r.tape = bytearray(struct.pack(">HHHHi", _x, _y, w, h, enc))
                await self.tight(w, h)
                self.tight_rects.append(bytes(self.r.tape))
                self.r.tape = None
            elif enc == -223:  # DesktopSize
                pass
            elif enc == -308:  # ExtendedDesktopSize
                n = await r.u8()
                await r.skip(3 + 16 * n)
            elif enc == -307:  # DesktopName
                await r.skip(await r.u32())
            else:
                raise RuntimeError(f"cannot skip encoding {enc}")

    async def hextile(self, w: int, h: int) -> None:
        r = self.r
        for ty in range(0, h, 16):
            for tx in range(0, w, 16):
                tw, th = min(16, w - tx), min(16, h - ty)
                sub = await r.u8()
                if sub & 1:  # Raw
                    await r.skip(tw * th * BPP)
                    continue
                size = (BPP if sub & 2 else 0) + (BPP if sub & 4 else 0)
                if size:
                    await r.skip(size)
                if sub & 8:  # AnySubrects
                    n = await r.u8()
                    await r.skip(n * ((BPP + 2) if sub & 16 else 2))

    async def tight(self, w: int, h: int) -> None:
        r = self.r
        control = await r.u8()
        kind = control >> 4
        if kind == 8:  # fill
            await r.skip(TPIXEL)
            return
        if kind == 9:  # JPEG
            await r.skip(await r.compact_length())
            return
        if kind & 8:
            raise RuntimeError(f"bad Tight compression control {control:#x}")
        filter_id = await r.u8() if kind & 4 else 0
        if filter_id == 1:  # palette
            colours = await r.u8() + 1
            await r.skip(colours * TPIXEL)
            size = (w + 7) // 8 * h if colours == 2 else w * h
        elif filter_id in (0, 2):  # copy, gradient
            size = w * h * TPIXEL
        else:
            raise RuntimeError(f"bad Tight filter {filter_id}")
        await r.skip(size if size < 12 else await r.compact_length())


def decoded_psnr(rects: list[bytes], image: Path) -> float | None:
    """Decode a connection's Tight rectangles with the tests' independent reference decoder (JPEG through
    Pillow) and compare the result with ``image``; None when the tests are not beside this script."""
    tests = ROOT / "tests" / "encoders"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    try:
        import numpy as np
        from PIL import Image
        from test_tight_reference import TightReference, psnr

        from pyvnc.protocol.pixelformat import PixelFormat
    except ImportError:
        return None
    ref = TightReference(PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0), WIDTH, HEIGHT)
    ref.feed(rects)
    return float(psnr(ref.fb, np.asarray(Image.open(image).convert("RGB"))))


async def measure(port: int, pid: int, encodings: list[int], frames: int, image: Path | None = None) -> Measurement:
    m = Measurement()
    client = await Client.connect(port, encodings)
    try:
        if (client.width, client.height) != (WIDTH, HEIGHT):
            raise RuntimeError(f"server desktop is {client.width}x{client.height}")
        await client.frame(Counter())  # warm-up: the first frame of a connection
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        for _ in range(frames):
            m.frame_bytes.append(await asyncio.wait_for(client.frame(m.encodings), 120))
        m.wall_s = time.perf_counter() - t0
        m.cpu_s = cpu_seconds(pid) - cpu0
        m.rects = client.last_rects
    finally:
        await client.close()
    if image is not None and client.tight_rects:
        m.psnr = decoded_psnr(client.tight_rects, image)
    return m


# --------------------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    image: str
    encoding: str
    x0: Measurement | None
    py: Measurement


def start_servers(
    procs: Processes, display: str, x0: str, logdir: Path, encode_threads: int | None = None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Start both servers on ``display``: ((x0 port, pid), (pyvnc port, pid))."""
    x0_port = free_port()
    x0_log = (logdir / "x0vncserver.log").open("wb")
    x0_proc = procs.start(
        [x0, "-display", display, "-rfbport", str(x0_port), "-localhost=1", "-SecurityTypes", "None"],
        stdout=x0_log,
        stderr=subprocess.STDOUT,
    )
    py_port = free_port()
    py_log = (logdir / "pyvnc.log").open("wb")
    pyvnc = [sys.executable, "-m", "pyvnc"]
    py_proc = procs.start(
        [
            *pyvnc,
            *("serve", "--source", "x11", "--display", display, "--port", str(py_port), "--web-port", "0"),
            *(("--encode-threads", str(encode_threads)) if encode_threads else ()),
        ],
        stdout=py_log,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    wait_port(x0_port, x0_proc, "x0vncserver")
    wait_port(py_port, py_proc, "pyvnc")
    return (x0_port, x0_proc.pid), (py_port, py_proc.pid)


def idle_cpu(pids: dict[str, int], seconds: float = 1.0) -> dict[str, float]:
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    time.sleep(seconds)
    return {k: (cpu_seconds(p) - before[k]) * 1000 / seconds for k, p in pids.items()}


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    procs = Processes()
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with tempfile.TemporaryDirectory(prefix="compare-x0-") as tmp:
            for image in args.images:
                path = CORPUS / f"{image}.png"
                xvfb, display = start_xvfb(procs)
                show_image(display, path)
                servers = start_servers(procs, display, args.x0, Path(tmp), args.encode_threads)
                (x0_port, x0_pid), (py_port, py_pid) = servers
                idle = idle_cpu({"x0vncserver": x0_pid, "pyvnc": py_pid})
                print(
                    f"# {image}: {display}; idle CPU, no client: x0vncserver {idle['x0vncserver']:.0f} ms/s, "
                    f"pyvnc {idle['pyvnc']:.0f} ms/s",
                    flush=True,
                )
                for name in args.encodings:
                    encoding, quality = ENCODINGS[name]
                    offered = [encoding]
                    if quality is not None:
                        offered.append(QUALITY_0 + quality)
                    offered.append(COMPRESS_0 + args.compress)
                    x0m: Measurement | None = None
                    pym: Measurement | None = None
                    for r in range(args.rounds):
                        # the servers take turns, in the other order every round, so that a slow spell of
                        # the machine weighs on both
                        order = ["x0", "py"] if r % 2 == 0 else ["py", "x0"]
                        for server in order:
                            if server == "x0" and encoding == ZLIB:  # TigerVNC has no Zlib encoder
                                continue
                            port, pid = (x0_port, x0_pid) if server == "x0" else (py_port, py_pid)
                            m = asyncio.run(measure(port, pid, offered, args.frames, path))
                            kept = x0m if server == "x0" else pym
                            if kept is not None:
                                kept.add_round(m)
                            elif server == "x0":
                                x0m = m
                            else:
                                pym = m
                    assert pym is not None
                    rows.append(Row(image, name, x0m, pym))
                    print_row(rows[-1], flush=True)
                procs.stop_all()
                del xvfb
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
    return rows


HEADER = (
    f"{'image':<9} {'encoding':<12} | {'KiB/frame':>21} {'size':>6} | {'server CPU ms/frame':>19} {'CPU':>6} | "
    f"{'wall ms/frame':>15} | {'PSNR dB':>13}\n"
    f"{'':<9} {'':<12} | {'x0vnc':>10} {'pyvnc':>10} {'py/x0':>6} | {'x0vnc':>9} {'pyvnc':>9} {'py/x0':>6} | "
    f"{'x0vnc':>7} {'pyvnc':>7} | {'x0vnc':>6} {'pyvnc':>6}"
)


def print_row(row: Row, flush: bool = False) -> None:
    py, x0 = row.py, row.x0

    def ratio(a: float, b: float) -> str:
        return f"{a / b:6.2f}" if b > 0 else "     ∞" if a > 0 else "     –"

    if x0 is not None:
        size = f"{x0.kib_per_frame:10.1f} {py.kib_per_frame:10.1f} {ratio(py.kib_per_frame, x0.kib_per_frame)}"
        cpu = f"{x0.cpu_ms_per_frame:9.1f} {py.cpu_ms_per_frame:9.1f} {ratio(py.cpu_ms_per_frame, x0.cpu_ms_per_frame)}"
        wall = f"{x0.wall_ms_per_frame:7.1f} {py.wall_ms_per_frame:7.1f}"
    else:
        size = f"{'—':>10} {py.kib_per_frame:10.1f} {'':>6}"
        cpu = f"{'—':>9} {py.cpu_ms_per_frame:9.1f} {'':>6}"
        wall = f"{'—':>7} {py.wall_ms_per_frame:7.1f}"
    def db(m: Measurement | None) -> str:
        if m is None or m.psnr is None:
            return f"{'—':>6}"
        return f"{'exact':>6}" if m.psnr == float("inf") else f"{m.psnr:6.1f}"

    print(f"{row.image:<9} {row.encoding:<12} | {size} | {cpu} | {wall} | {db(x0)} {db(py)}", flush=flush)


def used_notes(rows: list[Row]) -> Iterator[str]:
    for row in rows:
        asked = ENCODING_NAMES[ENCODINGS[row.encoding][0]]
        for server, m in (("x0vncserver", row.x0), ("pyvnc", row.py)):
            if m is not None and set(m.encodings) != {asked}:
                per_frame = ", ".join(f"{n} {c / len(m.frame_bytes):g}" for n, c in m.encodings.most_common())
                yield f"  {row.image} {row.encoding}: {server} sent rectangles per frame: {per_frame}"


def same_rects_notes(rows: list[Row]) -> Iterator[str]:
    """For RRE and Hextile rows: pyvnc's encoder, in this process, on the very rectangles x0vncserver cut its
    last frame into (its encode manager sends bands of at most 65,536 pixels, whose tile grids start at
    every band's top, where pyvnc sends one rectangle with one grid). Its bytes against x0vncserver's tell
    the encoders apart from where the tiles happen to fall."""
    try:
        from encoders import load_frame  # benchmarks/encoders.py: a corpus image as a BGRX frame

        from pyvnc.encoders.base import EncodeJob
        from pyvnc.encoders.hextile import HextileEncoder
        from pyvnc.encoders.rre import RREEncoder
        from pyvnc.protocol.pixelformat import NATIVE  # the clients' format here (PIXEL_FORMAT)
        from pyvnc.region import Rect
    except ImportError:
        return

    encoders = {HEXTILE: HextileEncoder, RRE: RREEncoder}
    for row in rows:
        encoding = ENCODINGS[row.encoding][0]
        if encoding not in encoders or row.x0 is None or not row.x0.rects:
            continue
        frame = load_frame(row.image)
        rects = tuple(Rect(x, y, w, h) for x, y, w, h, _ in row.x0.rects)
        ours = 4 + sum(len(d) for d in encoders[encoding]().encode(EncodeJob(frame, rects, NATIVE)))
        theirs = row.x0.frame_bytes[-1]
        yield (
            f"  {row.image} {row.encoding}: on x0vncserver's {len(rects)} rectangles, x0vncserver {theirs / 1024:.1f}"
            f" KiB, pyvnc's encoder {ours / 1024:.1f} KiB ({ours / theirs:.3f}; pointer not drawn)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frames", type=int, default=40, help="measured full frames per server and encoding (default 40)"
    )
    parser.add_argument("--images", default=",".join(IMAGES), help=f"corpus images (default: {','.join(IMAGES)})")
    parser.add_argument(
        "--encodings",
        default=",".join(DEFAULT_ENCODINGS),
        help=f"of {','.join(ENCODINGS)} (default: {','.join(DEFAULT_ENCODINGS)})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every row this many times, the servers taking turns; medians are shown (default 1)",
    )
    parser.add_argument("--compress", type=int, default=2, help="compression level sent to both (default 2)")
    parser.add_argument("--x0", default="/usr/bin/X0tigervnc", help="TigerVNC's scraping server binary")
    parser.add_argument(
        "--encode-threads",
        type=int,
        help="pyvnc's encode_threads (default: one per core; 1 shows its CPU without spreading updates)",
    )
    args = parser.parse_args(argv)
    args.images = [i for i in args.images.split(",") if i]
    args.encodings = [e for e in args.encodings.split(",") if e]
    for e in args.encodings:
        if e not in ENCODINGS:
            parser.error(f"unknown encoding {e!r}")
    for i in args.images:
        if not (CORPUS / f"{i}.png").exists():
            parser.error(f"no corpus image {CORPUS / i}.png")
    for tool in ("Xvfb", "display", args.x0):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    if args.frames < 1 or args.rounds < 1 or not 0 <= args.compress <= 9:
        parser.error("--frames and --rounds must be at least 1 and --compress 0..9")

    print(
        f"{WIDTH}x{HEIGHT} full frames, {args.frames} per row after one warm-up"
        + (f", medians of {args.rounds} rounds" if args.rounds > 1 else "")
        + "; client pixel format 32 bpp "
        f"depth 24 LE (shifts 16/8/0); compression level {args.compress}\n"
    )
    print(HEADER, flush=True)
    rows = run(args)
    notes = list(used_notes(rows))
    if notes:
        print("\nEncodings actually sent, where not only the one asked for:")
        print("\n".join(notes))
    same = list(same_rects_notes(rows))
    if same:
        print("\nThe same rectangles (x0vncserver's split of the frame) through pyvnc's encoder:")
        print("\n".join(same))
    print(
        "\nx0vncserver paints the pointer into its framebuffer (a few bytes); it has no Zlib encoder (—). "
        "CPU is utime+stime of the whole server process over the measured frames, screen polling included."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
