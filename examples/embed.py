"""Serve an animated numpy picture over VNC from your own program.

Run it, then connect a viewer to 127.0.0.1:5900 with the password "secret"::

    python examples/embed.py [PORT]
    vncviewer 127.0.0.1::5900

The picture is a moving colour gradient with a square sliding across it. Each frame is pushed with the
rectangles that changed: the whole frame once a second (the gradient shifts) and otherwise only the strip the
square moves in. Key and pointer events from viewers are printed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import numpy as np

from pyvnc import PushSource, Server, ServerConfig

WIDTH, HEIGHT = 800, 600
FPS = 30
SQUARE = 60


def on_key(keysym: int, down: bool) -> None:
    print(f"key {keysym:#06x} {'down' if down else 'up'}")


def on_pointer(x: int, y: int, buttons: int) -> None:
    print(f"pointer ({x}, {y}) buttons {buttons:#04b}")


def gradient(shift: int) -> np.ndarray:
    """An RGB gradient (HxWx3 uint8) whose colours move with ``shift``."""
    ys = np.arange(HEIGHT, dtype=np.uint16)[:, None]
    xs = np.arange(WIDTH, dtype=np.uint16)[None, :]
    rgb = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    rgb[..., 0] = (xs + shift) % 256
    rgb[..., 1] = (ys + 2 * shift) % 256
    rgb[..., 2] = 160
    return rgb


def animate(source: PushSource, stop: threading.Event) -> None:
    """Push frames at FPS from a thread of our own (push() is thread-safe)."""
    background = gradient(0)
    source.push(background)
    last_second = int(time.monotonic())
    strip_y = HEIGHT // 2 - SQUARE // 2
    x_prev = 0
    while not stop.is_set():
        now = time.monotonic()
        frame = background.copy()
        x = int((now * 200) % (WIDTH - SQUARE))
        frame[strip_y : strip_y + SQUARE, x : x + SQUARE] = (255, 255, 255)
        if int(now) != last_second:
            # once a second the whole gradient moves: push the whole frame
            last_second = int(now)
            background = gradient(last_second * 8 % 256)
            frame = background.copy()
            frame[strip_y : strip_y + SQUARE, x : x + SQUARE] = (255, 255, 255)
            source.push(frame)
        else:
            # only the square moved: push just the area it left and the area it entered
            left, right = min(x, x_prev), max(x, x_prev) + SQUARE
            source.push(frame, rects=[(left, strip_y, right - left, SQUARE)])
        x_prev = x
        stop.wait(1 / FPS)


def main() -> None:
    source = PushSource(width=WIDTH, height=HEIGHT, name="pyvnc embed example", on_key=on_key, on_pointer=on_pointer)
    stop = threading.Event()
    producer = threading.Thread(target=animate, args=(source, stop), daemon=True)
    producer.start()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5900
    server = Server(ServerConfig(listen=["127.0.0.1"], port=port, password="secret"), source=source)
    try:
        asyncio.run(server.serve_forever())
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        producer.join()


if __name__ == "__main__":
    main()
