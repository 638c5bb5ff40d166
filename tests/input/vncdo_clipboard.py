"""A vncdotool client that prints the legacy ServerCutText it receives (for the clipboard tests).

    python vncdo_clipboard.py PORT EXPECTED_COUNT TIMEOUT

Connects with vncdotool's threaded API (its own client class, with ``copy_text`` overridden), prints "ready"
once connected, then one ``repr`` line per text received, and exits after EXPECTED_COUNT texts or TIMEOUT
seconds.
"""

from __future__ import annotations

import queue
import sys

from vncdotool import api
from vncdotool.client import VNCDoToolClient, VNCDoToolFactory

received: queue.SimpleQueue[str] = queue.SimpleQueue()


class RecordingClient(VNCDoToolClient):
    def copy_text(self, text: str) -> None:
        received.put(text)


class RecordingFactory(VNCDoToolFactory):
    protocol = RecordingClient


def main() -> int:
    port, count, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    client = api.connect(f"127.0.0.1::{port}", factory_class=RecordingFactory)
    try:
        client.refreshScreen()  # one full update: the session is up
        print("ready", flush=True)
        for _ in range(count):
            try:
                print(repr(received.get(timeout=timeout)), flush=True)
            except queue.Empty:
                return 1
        return 0
    finally:
        client.disconnect()
        api.shutdown()


if __name__ == "__main__":
    sys.exit(main())
