"""Over real sockets with our own small client: every protocol version, pixel formats vncdotool cannot set,
colour maps, partial and incremental updates, resizes, sharing, limits and bad clients."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest
from rfbclient import AuthError, RecordingSource, RFBClient

from pyvnc import PushSource, Server, ServerConfig
from pyvnc.protocol.pixelformat import PixelFormat

W, H = 161, 97


def frame_rgb(seed: int = 3, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def expected_after(pf: PixelFormat, rgb: np.ndarray) -> np.ndarray:
    """What a client in ``pf`` should see: each channel quantised to its max and scaled back."""
    out = np.empty_like(rgb)
    for i, mx in enumerate((pf.red_max, pf.green_max, pf.blue_max)):
        q = (rgb[..., i].astype(np.int64) * mx + 127) // 255
        out[..., i] = (q * 255 * 2 + mx) // (2 * mx)
    return out


FORMATS = [
    PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0),
    PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0),
    PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16),
    PixelFormat(32, 30, True, True, 1023, 1023, 1023, 20, 10, 0),
    PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0),
    PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0),
    PixelFormat(16, 15, True, True, 31, 31, 31, 0, 5, 10),
    PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6),
    PixelFormat(8, 6, True, True, 3, 3, 3, 4, 2, 0),
]


@pytest.fixture
async def served() -> tuple[Server, PushSource, np.ndarray]:
    source = PushSource(width=W, height=H)
    rgb = frame_rgb()
    source.push(rgb)
    server = Server(ServerConfig(port=0, web_port=0), source=source)
    await server.start()
    yield server, source, rgb  # type: ignore[misc]
    await server.close_and_wait()


@pytest.mark.parametrize(
    "pf", FORMATS, ids=lambda pf: f"{pf.bits_per_pixel}bpp-d{pf.depth}-{'be' if pf.big_endian else 'le'}"
)
async def test_true_colour_formats(served: tuple[Server, PushSource, np.ndarray], pf: PixelFormat) -> None:
    server, _source, rgb = served
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.set_pixel_format(pf)
    client.set_encodings([0])
    client.request(incremental=False)
    await client.read_update()
    assert np.array_equal(client.fb, expected_after(pf, rgb))
    await client.close()


async def test_colour_map_client_gets_palette(served: tuple[Server, PushSource, np.ndarray]) -> None:
    server, _source, rgb = served
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.set_pixel_format(PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0))
    client.request(incremental=False)
    await client.read_update()  # SetColourMapEntries arrives first, then the update
    assert len(client.palette) == 256
    err = np.abs(client.fb.astype(int) - rgb.astype(int))
    assert err[..., :2].max() <= 19 and err[..., 2].max() <= 43  # 3-3-2 quantisation
    await client.close()


@pytest.mark.parametrize("version", [b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.008\n", b"RFB 003.005\n"])
@pytest.mark.parametrize("password", [None, "pw"])
async def test_versions_and_security(version: bytes, password: str | None) -> None:
    source = PushSource(width=W, height=H)
    rgb = frame_rgb(4)
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0, password=password), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port, password=password, version=version)
        assert (client.width, client.height) == (W, H)
        client.request()
        await client.read_update()
        assert np.array_equal(client.fb, rgb)
        await client.close()
        if password:
            with pytest.raises(AuthError):
                await RFBClient.connect("127.0.0.1", server.port, password="bad", version=version)


async def test_incremental_waits_for_change_then_sends_only_it(
    served: tuple[Server, PushSource, np.ndarray],
) -> None:
    server, source, rgb = served
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.request(incremental=False)
    await client.read_update()
    client.request(incremental=True)
    # nothing changed: no update may arrive (no empty updates in a busy loop)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.reader.readexactly(1), 0.5)
    changed = rgb.copy()
    changed[10:13, 20:25] = 0
    source.push(changed, rects=[(20, 10, 5, 3)])
    update = await client.read_update()
    assert update.rects == [(20, 10, 5, 3, 0)]
    assert np.array_equal(client.fb, changed)
    await client.close()


async def test_full_request_never_merged_away(served: tuple[Server, PushSource, np.ndarray]) -> None:
    server, _source, _rgb = served
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.request(incremental=True)
    client.request(incremental=False, x=5, y=6, w=7, h=8)
    update = await client.read_update()
    assert (5, 6, 7, 8, 0) in update.rects
    await client.close()


async def test_resize_goes_in_an_update_without_framebuffer_data(
    served: tuple[Server, PushSource, np.ndarray],
) -> None:
    """rfbproto (DesktopSize, ExtendedDesktopSize): the update that carries the new size (or, for an
    ExtendedDesktopSize client, first states the layout) carries no framebuffer data; the next request
    gets the whole desktop. libvncclient refuses the new desktop's rectangles in the same update."""
    server, source, rgb = served
    for encodings in ([0, -308], [0, -223]):
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings(encodings)
        client.request()
        update = await client.read_update()
        if encodings[1] == -308:
            assert update.rects == [(0, 0, W, H, -308)]  # reason "server", the current layout
            client.request(incremental=True)
            update = await client.read_update()
        assert {r[4] for r in update.rects} == {0} and np.array_equal(client.fb, rgb)
        bigger = frame_rgb(8, h=H + 40, w=W + 30)
        source.push(bigger)
        client.request(incremental=True)
        update = await client.read_update()
        assert update.rects == [(0, 0, W + 30, H + 40, encodings[1])]
        assert (client.width, client.height) == (W + 30, H + 40)
        client.request(incremental=True)
        update = await client.read_update()
        assert {r[4] for r in update.rects} == {0}
        assert np.array_equal(client.fb, bigger)
        await client.close()
        source.push(rgb)


async def test_set_desktop_size_prohibited(served: tuple[Server, PushSource, np.ndarray]) -> None:
    server, _source, _rgb = served
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.set_encodings([0, -308])
    msg = bytes([251, 0]) + struct.pack(">HHBx", 300, 200, 1) + struct.pack(">IHHHHI", 0, 0, 0, 300, 200, 0)
    client.writer.write(msg)
    client.request(incremental=True)
    update = await client.read_update()
    eds = [r for r in update.rects if r[4] == -308]
    # the answer (reason: this client; status: prohibited; the size as it is), then the layout now (reason:
    # server), last: libvncclient takes the size of every such rectangle
    assert eds == [(1, 1, W, H, -308), (0, 0, W, H, -308)]
    await client.close()


async def layouts_until(client: RFBClient, count: int) -> list[tuple[int, int, int, int, list[tuple[int, ...]]]]:
    """Read updates (asking for more) until ``count`` ExtendedDesktopSize rectangles have come; checks that no
    update carrying one also carries framebuffer data."""
    for _ in range(20):
        if len(client.layouts) >= count:
            return client.layouts
        update = await asyncio.wait_for(client.read_update(), 10)
        if any(r[4] == -308 for r in update.rects):
            assert all(r[4] == -308 for r in update.rects), update.rects
        client.request(incremental=True)
    raise AssertionError(f"only {client.layouts}")


async def layout_clients(server: Server) -> tuple[RFBClient, RFBClient]:
    """Two ExtendedDesktopSize clients that have the server's layout and the pixels."""
    clients = []
    for _ in range(2):
        c = await RFBClient.connect("127.0.0.1", server.port)
        c.set_encodings([0, -308])
        c.request()
        await layouts_until(c, 1)
        c.request(incremental=True)
        await c.read_update()  # the pixels
        clients.append(c)
    return clients[0], clients[1]


async def test_set_desktop_size_answers_with_the_layout_asked_for(
    served: tuple[Server, PushSource, np.ndarray],
) -> None:
    """rfbproto SetDesktopSize: every request is answered to its client, in order, on success with exactly
    the layout asked for (screen ids and flags kept) and reason "this client"; the other clients get the new
    layout with reason "another client"; an impossible layout is refused with "invalid screen layout". A new
    layout of the same size (two screens side by side here) needs no resize of the source."""
    server, _source, _rgb = served
    asker, other = await layout_clients(server)
    for c in (asker, other):
        assert c.layouts == [(0, 0, W, H, [(1, 0, 0, W, H, 0)])]  # the server's layout: one screen
    two = [(7, 0, 0, 80, H, 0x10), (9, 80, 0, W - 80, H, 0)]
    asker.set_desktop_size(W, H, two)
    moved = [two[1], (7, 0, 0, 80, 50, 0)]
    asker.set_desktop_size(W, H, moved)  # two requests back to back
    asker.set_desktop_size(W, H, [(3, 100, 0, W, H, 0)])  # off the framebuffer: refused
    asker.request(incremental=True)
    other.request(incremental=True)
    answers = (await layouts_until(asker, 4))[1:]
    assert answers[0] == (1, 0, W, H, two)  # this client, no error: exactly what it asked for
    assert answers[1] == (1, 0, W, H, moved)
    assert answers[2][:2] == (1, 3)  # this client, invalid screen layout
    seen = (await layouts_until(other, 2))[1:]
    assert seen[-1] == (2, 0, W, H, moved)  # another client changed it
    assert all(reason == 2 for reason, *_ in seen)
    # a non-incremental request is answered with the layout too, in an update of its own
    other.request(incremental=False)
    layouts = await layouts_until(other, len(other.layouts) + 1)
    assert layouts[-1][:2] == (0, 0)
    update = await asyncio.wait_for(other.read_update(), 10)
    assert {r[4] for r in update.rects} == {0}
    await asker.close()
    await other.close()


class ResizablePushSource(PushSource):
    """A PushSource that takes SetDesktopSize: after ``delay`` seconds it shows a new picture of that size
    (or, with ``hang``, never answers; with ``fail``, raises)."""

    def __init__(self, delay: float = 0.0, hang: bool = False, fail: bool = False) -> None:
        super().__init__(width=W, height=H)
        self.push(frame_rgb())
        self.delay, self.hang, self.fail = delay, hang, fail
        self.cancelled = asyncio.Event()

    async def set_desktop_size(self, w: int, h: int) -> int:
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the source's resize broke")
        self.push(frame_rgb(5, h=h, w=w))
        return 0


async def test_set_desktop_size_requests_are_carried_out_and_answered_in_order() -> None:
    """Requests that take time (a resize), are refused, or ask for what is already there, sent back to back:
    carried out one at a time and answered in the order sent; the other client sees each size once, as
    "another client"'s; every size rectangle's size is one the desktop really had, the last the one now."""
    source = ResizablePushSource(delay=0.2)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        asker, other = await layout_clients(server)
        big = [(1, 0, 0, W + 40, H + 20, 0)]
        asker.set_desktop_size(W + 40, H + 20, big)  # a resize, 0.2 s
        asker.set_desktop_size(W, H, [(1, W, 0, 10, 10, 0)])  # off the framebuffer: refused
        asker.set_desktop_size(W + 40, H + 20, big)  # what will be there by then: no resize
        asker.set_desktop_size(W + 40, H + 20, big)  # and again
        asker.request(incremental=True)
        other.request(incremental=True)
        answers = [a for a in (await layouts_until(asker, 5))[1:] if a[0] == 1]
        while len(answers) < 4:
            answers = [a for a in (await layouts_until(asker, len(asker.layouts) + 1))[1:] if a[0] == 1]
        assert [a[:2] for a in answers] == [(1, 0), (1, 3), (1, 0), (1, 0)]
        assert all(a[2:4] == (W + 40, H + 20) for a in answers)  # the refusal says the size now, too
        assert asker.layouts[-1][2:4] == (W + 40, H + 20)
        seen = await layouts_until(other, 2)
        assert seen[1][:4] == (2, 0, W + 40, H + 20)  # one change, by another client
        assert (other.width, other.height) == (W + 40, H + 20)
        await asker.close()
        await other.close()


async def test_a_resize_that_never_ends_does_not_stop_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A source whose resize never returns: the request is answered "out of resources" after the timeout,
    and the client's updates go on."""
    from pyvnc import session

    monkeypatch.setattr(session, "RESIZE_TIMEOUT", 0.5)
    source = ResizablePushSource(hang=True)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0, -308])
        client.request()
        await layouts_until(client, 1)
        client.set_desktop_size(W + 8, H, [(1, 0, 0, W + 8, H, 0)])
        client.request(incremental=True)
        answer = (await layouts_until(client, 2))[1]
        assert answer[:2] == (1, 2), answer  # this client, out of resources
        changed = frame_rgb(9)
        source.push(changed)
        await client.update_until(changed, tries=5)
        # a resize still running when its client leaves ends with the session, long before any timeout
        monkeypatch.setattr(session, "RESIZE_TIMEOUT", 60.0)
        source.cancelled.clear()
        client.set_desktop_size(W + 8, H, [(1, 0, 0, W + 8, H, 0)])
        await asyncio.sleep(0.1)
        await client.close()
        await asyncio.wait_for(source.cancelled.wait(), 5)


async def test_fences_after_set_desktop_size_wait_for_it_and_a_broken_source_is_answered() -> None:
    """A BlockBefore fence sent after SetDesktopSize requests is answered once they have taken effect (a
    resize of 0.3 s here), and what follows a BlockAfter fence is carried out without the client sending more.
    A source whose resize raises gets the request answered ("out of resources")."""
    for fail in (False, True):
        source = ResizablePushSource(delay=0.3, fail=fail)
        async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
            client = await RFBClient.connect("127.0.0.1", server.port)
            client.set_encodings([0, -308, -312])
            client.request()
            await layouts_until(client, 1)
            start = asyncio.get_running_loop().time()
            client.set_desktop_size(W + 8, H, [(1, 0, 0, W + 8, H, 0)])
            client.fence(0b001, b"bb")  # BlockBefore
            client.fence(0b010, b"ba")  # BlockAfter, then one more request behind it
            client.set_desktop_size(W + 8, H, [(4, 0, 0, W + 8, H, 0)])
            client.request(incremental=True)
            answers = [a for a in (await layouts_until(client, 3))[1:] if a[0] == 1]
            while len(answers) < 2:
                answers = [a for a in (await layouts_until(client, len(client.layouts) + 1))[1:] if a[0] == 1]
            assert [f[1] for f in client.fence_answers] == [b"bb", b"ba"]
            assert client.fence_answers[0][2] - start >= 0.25  # after the resize, not at once
            if fail:
                assert answers[0][:4] == (1, 2, W, H)  # out of resources, the size as it is
            else:
                assert answers == [
                    (1, 0, W + 8, H, [(1, 0, 0, W + 8, H, 0)]),
                    (1, 0, W + 8, H, [(4, 0, 0, W + 8, H, 0)]),
                ]
            await client.close()


async def test_an_empty_request_is_answered_with_pseudo_rectangles_only(
    served: tuple[Server, PushSource, np.ndarray],
) -> None:
    """rfbproto: "an empty area can still solicit a FramebufferUpdate even though that update will only
    contain pseudo-encodings": a 0×0 request gets the next desktop name change."""
    server, source, _rgb = served
    client = await RFBClient.connect("127.0.0.1", server.port)
    client.set_encodings([0, -307])
    client.request()
    await client.read_update()
    client.request(incremental=True, x=0, y=0, w=0, h=0)
    await asyncio.sleep(0.1)
    source.set_name("renamed")
    update = await asyncio.wait_for(client.read_update(), 5)
    assert [r[4] for r in update.rects] == [-307] and client.name == "renamed"
    # an empty request asks for no pixels: it does not keep the source grabbing frames
    client.request(incremental=True, x=0, y=0, w=0, h=0)
    source.push(frame_rgb(4))
    await asyncio.sleep(0.2)
    assert server.hub is not None and not server.hub.wants_frames()
    await client.close()


async def test_a_client_that_cannot_resize_gets_its_whole_framebuffer_back() -> None:
    """No DesktopSize: the client keeps the size ServerInit gave it. Shrunk, it gets the part that fits;
    grown back, the whole of its framebuffer again (not the smallest size seen); grown past it, the part that
    fits, and then only changes."""
    source = PushSource(width=W, height=H)
    source.push(frame_rgb(1))
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0])
        client.request()
        await client.read_update()
        source.push(frame_rgb(2, h=H // 2, w=W // 2))
        client.request(incremental=True)
        update = await asyncio.wait_for(client.read_update(), 10)
        assert max(x + w for x, _y, w, _h, _e in update.rects) <= W // 2
        final = frame_rgb(3)
        source.push(final)
        client.request(incremental=True)
        await asyncio.wait_for(client.read_update(), 10)
        assert (client.width, client.height) == (W, H)
        assert np.array_equal(client.fb, final)
        # grown past it: what fits, once; then only changes (not the whole framebuffer on every request)
        bigger = frame_rgb(4, h=H + 30, w=W + 30)
        source.push(bigger)
        client.request(incremental=True)
        await asyncio.wait_for(client.read_update(), 5)
        assert np.array_equal(client.fb, bigger[:H, :W])
        client.request(incremental=True)
        with pytest.raises(TimeoutError):  # nothing changed: nothing is sent
            await asyncio.wait_for(client.read_update(), 0.5)
        changed = bigger.copy()
        changed[3:7, 3:7] = 0
        source.push(changed, rects=[(3, 3, 4, 4)])
        update = await asyncio.wait_for(client.read_update(), 5)
        assert [r[2] * r[3] for r in update.rects] == [16]
        await client.close()


async def test_a_client_that_stops_resizing_keeps_the_size_it_was_told() -> None:
    """The client was told a smaller desktop (ExtendedDesktopSize), then drops the size pseudo-encodings, and
    the desktop grows: no rectangle reaches outside the framebuffer it was told of (rfbproto: updates stay
    within it). Listing DesktopSize again, it is told the size now and gets the whole desktop."""
    source = PushSource(width=W, height=H)
    source.push(frame_rgb(1))
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0, -308])
        client.request()
        await client.read_update()
        small = frame_rgb(2, h=H // 2, w=W // 2)
        source.push(small)
        await client.update_until(small)
        assert (client.width, client.height) == (W // 2, H // 2)
        client.set_encodings([0])
        grown = frame_rgb(3)
        source.push(grown)
        client.request(incremental=True)
        update = await asyncio.wait_for(client.read_update(), 10)
        assert update.rects and all(x + w <= W // 2 and y + h <= H // 2 for x, y, w, h, _e in update.rects)
        assert np.array_equal(client.fb, grown[: H // 2, : W // 2])
        client.set_encodings([0, -223])
        await client.update_until(grown)
        assert (client.width, client.height) == (W, H)
        await client.close()


async def test_exclusive_client_disconnects_others_but_view_only_never_does() -> None:
    source = PushSource(width=W, height=H)
    source.push(frame_rgb())
    config = ServerConfig(port=0, web_port=0, password="full", view_only_password="view")
    async with Server(config, source=source) as server:
        first = await RFBClient.connect("127.0.0.1", server.port, password="full")
        viewer = await RFBClient.connect("127.0.0.1", server.port, password="view", shared=False)
        first.request()
        await first.read_update()  # still connected
        second = await RFBClient.connect("127.0.0.1", server.port, password="full", shared=False)
        assert await asyncio.wait_for(first.reader.read(), 5) == b""  # the exclusive client closed it
        second.request()
        await second.read_update()
        for c in (viewer, second):
            await c.close()


async def test_bad_client_is_dropped_and_others_keep_working(
    served: tuple[Server, PushSource, np.ndarray],
) -> None:
    server, _source, rgb = served
    good = await RFBClient.connect("127.0.0.1", server.port)
    bad = await RFBClient.connect("127.0.0.1", server.port)
    bad.writer.write(b"\x63garbage")  # unknown message type 99
    assert await asyncio.wait_for(bad.reader.read(), 5) == b""
    good.request()
    await good.read_update()
    assert np.array_equal(good.fb, rgb)
    await good.close()


async def test_handshake_timeout_and_pending_cap() -> None:
    source = PushSource(width=8, height=8)
    config = ServerConfig(port=0, web_port=0, handshake_timeout=0.5, max_pending_handshakes=2)
    async with Server(config, source=source) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        for reader, _w in idle:
            assert await reader.readexactly(12) == b"RFB 003.008\n"
        # a third connection while two are in handshake is closed at once
        r3, _w3 = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(r3.read(), 5) == b""
        # the idle ones are dropped after the handshake timeout
        for reader, _w in idle:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        client = await RFBClient.connect("127.0.0.1", server.port)
        await client.close()


async def test_max_clients_refused_with_reason() -> None:
    source = PushSource(width=8, height=8)
    async with Server(ServerConfig(port=0, web_port=0, max_clients=1), source=source) as server:
        first = await RFBClient.connect("127.0.0.1", server.port)
        with pytest.raises(AuthError, match="too many clients"):
            await RFBClient.connect("127.0.0.1", server.port)
        await first.close()


async def test_input_and_release_on_disconnect() -> None:
    rec = RecordingSource.make(W, H)
    keys, pointer, clip = rec.keys, rec.pointer, rec.clipboard
    async with Server(ServerConfig(port=0, web_port=0), source=rec.source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.key(0xFFE1, True)  # Shift held
        client.key(0x01000000 + 0x263A, True)  # a Unicode keysym
        client.pointer(12, 34, 0b101)
        client.cut_text("grüße".encode("latin-1"))
        await client.writer.drain()
        await asyncio.sleep(0.2)
        await client.close()
        for _ in range(50):
            if pointer and pointer[-1][2] == 0:
                break
            await asyncio.sleep(0.05)
    assert (0xFFE1, True) in keys and (0x0100263A, True) in keys
    assert (0xFFE1, False) in keys and (0x0100263A, False) in keys  # released when the client left
    assert pointer[0] == (12, 34, 5) and pointer[-1] == (12, 34, 0)
    assert clip == ["grüße"]


async def test_ipv4_and_ipv6_listeners_share_one_port() -> None:
    source = PushSource(width=8, height=8)
    async with Server(ServerConfig(listen=["127.0.0.1", "::1"], port=0, web_port=0), source=source) as server:
        hosts = {h for h, _p in server.sockets_addresses}
        assert hosts == {"127.0.0.1", "::1"}
        for host in ("127.0.0.1", "::1"):
            client = await RFBClient.connect(host, server.port)
            assert (client.width, client.height) == (8, 8)
            await client.close()


async def test_shutdown_closes_clients_and_stops_listening() -> None:
    source = PushSource(width=8, height=8)
    server = Server(ServerConfig(port=0, web_port=0), source=source)
    await server.start()
    port = server.port
    client = await RFBClient.connect("127.0.0.1", port)
    await asyncio.wait_for(server.close_and_wait(), 10)
    assert await asyncio.wait_for(client.reader.read(), 5) == b""
    assert server.sessions == []
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


def test_split_rects_covers_exactly() -> None:
    from pyvnc.encoders.select import split_rects
    from pyvnc.region import Rect, Region

    rects = [Rect(0, 0, 1920, 1080), Rect(5, 5, 3, 3)]
    groups = split_rects(rects, 2)
    assert len(groups) == 2
    pieces = [r for g in groups for r in g]
    assert sum(r.area for r in pieces) == sum(r.area for r in rects)
    assert Region(pieces).area == 1920 * 1080  # no overlaps, nothing lost
    loads = [sum(r.area for r in g) for g in groups]
    assert max(loads) <= 0.6 * sum(loads)


async def test_big_update_split_across_cores_is_exact() -> None:
    """An update encoded in bands on two threads (Hextile on busy content) arrives whole over a socket; Raw,
    a copy, is sent in one piece. (The other splits are decoded by noVNC in tests/encoders.)"""
    source = PushSource(width=1280, height=720)
    rgb = frame_rgb(12, h=720, w=1280)
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        for encodings, pieces in (([5, 0], 2), ([0], 1)):
            client = await RFBClient.connect("127.0.0.1", server.port)
            client.set_encodings(encodings)
            client.request()
            update = await client.read_update()
            assert len(update.rects) == pieces
            assert np.array_equal(client.fb, rgb)
            await client.close()


async def test_stalled_client_does_not_slow_the_others() -> None:
    """A client that stops reading fills only its own buffers; another keeps getting every change promptly."""
    source = PushSource(width=640, height=480)
    source.push(frame_rgb(20, h=480, w=640))
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        slow = await RFBClient.connect("127.0.0.1", server.port)
        fast = await RFBClient.connect("127.0.0.1", server.port)
        fast.request()
        await fast.read_update()
        loop = asyncio.get_running_loop()
        delays = []
        for i in range(30):
            # the slow client asks for whole frames and never reads them: its socket and buffers fill up
            slow.request(incremental=False)
            rgb = frame_rgb(100 + i, h=480, w=640)
            source.push(rgb)
            t0 = loop.time()
            fast.request(incremental=True)
            while not np.array_equal(fast.fb, rgb):
                await asyncio.wait_for(fast.read_update(), 5)
                fast.request(incremental=True)
            delays.append(loop.time() - t0)
        assert max(delays) < 1.0, delays
        counts = sorted(s.updates_sent for s in server.sessions)
        assert counts[0] < 30 <= counts[1]  # the stalled one fell behind, alone
        await fast.close()
        await slow.close()


async def test_view_only_client_cannot_set_the_clipboard_or_type() -> None:
    """A view-only client's cut text, keys and pointer are dropped; a full client's reach the source. Both
    still receive the desktop's clipboard."""
    clips: list[str] = []
    keys: list[int] = []
    source = PushSource(width=W, height=H, on_clipboard=clips.append, on_key=lambda k, d: keys.append(k))
    source.push(frame_rgb())
    config = ServerConfig(port=0, web_port=0, password="full", view_only_password="view")
    async with Server(config, source=source) as server:
        viewer = await RFBClient.connect("127.0.0.1", server.port, password="view")
        full = await RFBClient.connect("127.0.0.1", server.port, password="full")
        viewer.cut_text(b"from the viewer")
        viewer.key(ord("v"), True)
        full.cut_text(b"from the full client")
        full.key(ord("f"), True)
        for c in (viewer, full):
            await c.writer.drain()
        for _ in range(50):
            if clips and keys:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # time for anything of the viewer's to arrive too
        assert clips == ["from the full client"]
        assert keys == [ord("f")]
        assert server.hub is not None
        server.hub.set_clipboard("from the desktop")
        for c in (viewer, full):
            c.request(incremental=True)
            while not c.cut_texts:
                await asyncio.wait_for(c.read_message(), 5)
            assert c.cut_texts == [b"from the desktop"]
        for c in (viewer, full):
            await c.close()


async def test_desktop_name_changes_reach_clients_that_ask() -> None:
    """DesktopName (-307): a client that lists it gets the new name in its next update; others do not."""
    source = PushSource(width=W, height=H, name="before")
    source.push(frame_rgb())
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        asker = await RFBClient.connect("127.0.0.1", server.port)
        plain = await RFBClient.connect("127.0.0.1", server.port)
        assert asker.name == plain.name == "before"
        asker.set_encodings([0, -307])
        plain.set_encodings([0])
        for c in (asker, plain):
            c.request()
            await c.read_update()
        source.set_name("après ✓")
        source.push(frame_rgb(), rects=[(0, 0, 4, 4)])
        for c in (asker, plain):
            c.request(incremental=True)
            update = await asyncio.wait_for(c.read_update(), 5)
            assert (-307 in [r[4] for r in update.rects]) == (c is asker)
        assert asker.name == "après ✓" and plain.name == "before"
        for c in (asker, plain):
            await c.close()


async def test_painted_cursor_follows_what_is_under_it() -> None:
    """A client that draws no cursor gets it painted over each full update. The painted rectangle may be
    reused for a still screen, but never once the pixels under it, the cursor or the pointer change."""
    from pyvnc.capture.cursor import CursorImage, paint_cursor

    rng = np.random.default_rng(21)
    arrow = CursorImage(9, 12, 1, 1, 0, rng.integers(0, 256, (12, 9, 4), dtype=np.uint8))
    block = CursorImage(5, 5, 2, 2, 0, np.full((5, 5, 4), (0, 0, 255, 255), dtype=np.uint8))
    source = PushSource(width=W, height=H)
    rgb = frame_rgb(30)
    source.push(rgb)

    def painted(rgb: np.ndarray, cursor: CursorImage, x: int, y: int) -> np.ndarray:
        bgrx = np.zeros((*rgb.shape[:2], 4), np.uint8)
        bgrx[..., :3] = rgb[..., ::-1]
        return paint_cursor(bgrx, cursor, x, y)[..., 2::-1]

    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        assert server.hub is not None
        server.hub.set_cursor(arrow)
        server.hub.set_pointer(40, 30)
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0])  # Raw, no cursor pseudo-encoding: the server paints it (a stateless encoding)
        steps = [
            (rgb, arrow, (40, 30)),  # the first update
            (rgb, arrow, (40, 30)),  # the same again
            (frame_rgb(31), arrow, (40, 30)),  # new pixels under a cursor that stays put
            (frame_rgb(31), block, (40, 30)),  # another cursor
            (frame_rgb(31), block, (90, 60)),  # the pointer moves
        ]
        for picture, cursor, pointer in steps:
            if picture is not rgb:
                source.push(picture)
                rgb = picture
                await asyncio.sleep(0.1)
            server.hub.set_cursor(cursor)
            server.hub.set_pointer(*pointer)
            client.request(incremental=False)
            await client.read_update()
            assert np.array_equal(client.fb, painted(picture, cursor, *pointer)), (cursor.width, pointer)
        await client.close()


async def test_encode_threads_setting_applies_to_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``encode_threads`` sets how many threads big updates are spread over once the server starts; the
    server still serves."""
    from pyvnc.encoders import parallel

    monkeypatch.setattr(parallel, "_cores", 2)
    monkeypatch.setattr(parallel, "_pool", None)
    source = PushSource(width=W, height=H)
    rgb = frame_rgb()
    source.push(rgb)
    async with Server(ServerConfig(port=0, web_port=0, encode_threads=1), source=source) as server:
        assert parallel.cores() == 1
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_pixel_format(FORMATS[0])
        client.set_encodings([0])
        client.request(incremental=False)
        await client.read_update()
        assert np.array_equal(client.fb, rgb)
        await client.close()


async def read_encoded_update(client: RFBClient) -> list[bytes]:
    """One FramebufferUpdate of Zlib / ZRLE rectangles, each as header + length + data (for RefDecoder)."""
    assert (await client.read(1))[0] == 0, "a FramebufferUpdate was expected"
    (n,) = struct.unpack(">xH", await client.read(3))
    rects = []
    for _ in range(n):
        header = await client.read(12)
        enc = struct.unpack(">i", header[8:])[0]
        assert enc in (6, 16), enc
        length = await client.read(4)
        rects.append(header + length + await client.read(struct.unpack(">I", length)[0]))
    return rects


@pytest.mark.parametrize("encoding", [6, 16], ids=["zlib", "zrle"])
async def test_two_clients_big_updates_spread_at_once(monkeypatch: pytest.MonkeyPatch, encoding: int) -> None:
    """Two clients of one server ask for full 1280×720 updates at the same time, round after round, while the
    picture changes: both sessions' updates are spread over the one shared pool (deflate segments side by
    side, ZRLE bands), each on its own stream, and both clients decode every update exactly."""
    from encoders.refdecoders import RefDecoder

    from pyvnc.encoders import parallel

    monkeypatch.setattr(parallel, "_cores", 2)
    monkeypatch.setattr(parallel, "_pool", None)
    handed_over: list[int] = []
    original = parallel.pool

    def spy() -> object:
        handed_over.append(1)
        return original()

    monkeypatch.setattr(parallel, "pool", spy)
    w, h = 1280, 720
    pf = FORMATS[0]
    source = PushSource(width=w, height=h)
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        clients = [await RFBClient.connect("127.0.0.1", server.port) for _ in range(2)]
        decoders = [RefDecoder(pf, w, h) for _ in clients]
        for c in clients:
            c.set_pixel_format(pf)
            c.set_encodings([encoding])
        for round_ in range(3):
            rgb = frame_rgb(seed=round_, h=h, w=w) // 64 * 64  # few levels: compressible, yet busy
            source.push(rgb)  # on the loop's thread: published at once
            for c in clients:
                c.request(incremental=False)
            updates = await asyncio.gather(*(read_encoded_update(c) for c in clients))
            for dec, update in zip(decoders, updates, strict=True):
                dec.decode(b"".join(update))
                assert np.array_equal(dec.fb, rgb), round_
        for c in clients:
            await c.close()
    assert handed_over  # the work went to the pool


async def test_pseudo_rectangles_only_for_encodings_still_listed() -> None:
    """Confirmations queued for a SetEncodings the client replaced at once are not sent (rfbproto: only
    encodings the client listed); listed again, the pseudo-encodings are confirmed again."""
    source = PushSource(width=W, height=H)
    source.push(frame_rgb(5))
    async with Server(ServerConfig(port=0, web_port=0), source=source) as server:
        client = await RFBClient.connect("127.0.0.1", server.port)
        client.set_encodings([0, -258, -316])
        await client.writer.drain()
        await asyncio.sleep(0.1)  # the server has queued the confirmations
        client.set_encodings([0])
        client.request()
        await client.read_update()
        assert {r[4] for r in client.last.rects} == {0}, client.last.rects
        assert not client.confirmed
        client.set_encodings([0, -258, -316])
        client.request()
        await client.read_update()
        assert client.confirmed == {-258, -316}
        await client.close()
