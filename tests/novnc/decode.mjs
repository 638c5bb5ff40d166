// Decode a pyvnc server byte stream with noVNC's own decoders (tests only).
//
// Input (stdin, or the file named by the first argument):
//   "NVD1"            4 bytes magic
//   width, height     U16 big-endian each: the framebuffer size
//   flags             U8: bit 0 = write a snapshot after every FramebufferUpdate (else only at the end)
//   chunk             U32 big-endian: feed the stream to noVNC in pieces of this many bytes
//                     (0 = all at once); small pieces exercise the decoders' "wait for more data" paths
//   stream            the rest: server messages exactly as a server sends them after ServerInit —
//                     FramebufferUpdate messages (type 0, padding, U16 count, rectangles with 12-byte
//                     headers; LastRect ends a 0xFFFF-count update)
//
// Output (stdout): the framebuffer as RGBA bytes (width * height * 4), once per FramebufferUpdate when
// flag bit 0 is set, else once after the whole stream.
//
// The stream goes through noVNC's Websock receive queue (rQ) and the decoders are called with the same
// arguments noVNC's RFB class passes (x, y, w, h, sock, display, depth=24), one decoder object per encoding
// for the whole stream, so zlib stream state is carried across rectangles as in a real session.

// --- stubs noVNC's modules need under Node, defined before they are imported -------------------------
globalThis.window = globalThis;
globalThis.WebSocket = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 };

// the package exports only its RFB class, so import the decoder modules by file URL
const base = new URL("./node_modules/@novnc/novnc/core/", import.meta.url).href;
const { default: Websock } = await import(base + "websock.js");
const { default: RawDecoder } = await import(base + "decoders/raw.js");
const { default: CopyRectDecoder } = await import(base + "decoders/copyrect.js");
const { default: RREDecoder } = await import(base + "decoders/rre.js");
const { default: HextileDecoder } = await import(base + "decoders/hextile.js");
const { default: ZlibDecoder } = await import(base + "decoders/zlib.js");
const { default: ZRLEDecoder } = await import(base + "decoders/zrle.js");
const { default: TightDecoder } = await import(base + "decoders/tight.js");
const { default: TightPNGDecoder } = await import(base + "decoders/tightpng.js");
import { readFileSync, writeSync } from "node:fs";

const LAST_RECT = -224;

// --- a stand-in for noVNC's Display: an RGBA buffer ---------------------------------------------------
class BufferDisplay {
    constructor(width, height) {
        this.width = width;
        this.height = height;
        this.fb = new Uint8Array(width * height * 4);
    }

    _check(what, x, y, w, h) {
        if (x < 0 || y < 0 || w < 0 || h < 0 || x + w > this.width || y + h > this.height) {
            throw new Error(`${what} outside the framebuffer: ${x},${y} ${w}x${h}`);
        }
    }

    // like Display.fillRect: color is [r, g, b, ...] (canvas fillStyle rgb(r,g,b), opaque)
    fillRect(x, y, w, h, color) {
        this._check("fillRect", x, y, w, h);
        const fb = this.fb;
        for (let j = y; j < y + h; j++) {
            let p = (j * this.width + x) * 4;
            for (let i = 0; i < w; i++, p += 4) {
                fb[p] = color[0];
                fb[p + 1] = color[1];
                fb[p + 2] = color[2];
                fb[p + 3] = 255;
            }
        }
    }

    // like Display.blitImage (putImageData): RGBA rows from arr.buffer at arr.byteOffset + offset
    blitImage(x, y, w, h, arr, offset) {
        this._check("blitImage", x, y, w, h);
        const src = new Uint8Array(arr.buffer, arr.byteOffset + offset, w * h * 4);
        for (let j = 0; j < h; j++) {
            this.fb.set(src.subarray(j * w * 4, (j + 1) * w * 4), ((y + j) * this.width + x) * 4);
        }
    }

    // like Display.copyImage (drawImage of the backbuffer onto itself)
    copyImage(oldX, oldY, newX, newY, w, h) {
        this._check("copyImage source", oldX, oldY, w, h);
        this._check("copyImage target", newX, newY, w, h);
        const copy = new Uint8Array(w * h * 4);
        for (let j = 0; j < h; j++) {
            const s = ((oldY + j) * this.width + oldX) * 4;
            copy.set(this.fb.subarray(s, s + w * 4), j * w * 4);
        }
        this.blitImage(newX, newY, w, h, copy, 0);
    }

    imageRect() {
        throw new Error("imageRect (JPEG/PNG) needs a browser");
    }

    videoFrame() {
        throw new Error("videoFrame (H.264) needs a browser");
    }

    pending() {
        return false;
    }

    flip() {}
}

// --- input ----------------------------------------------------------------------------------------------
const input = new Uint8Array(process.argv[2] ? readFileSync(process.argv[2]) : readFileSync(0));
if (input.length < 13 || String.fromCharCode(...input.subarray(0, 4)) !== "NVD1") {
    throw new Error("bad input: expected the NVD1 header");
}
const view = new DataView(input.buffer, input.byteOffset, input.length);
const width = view.getUint16(4);
const height = view.getUint16(6);
const snapshotEach = (input[8] & 1) !== 0;
const chunk = view.getUint32(9);
const stream = input.subarray(13);

// --- the receive queue, fed through a fake raw channel as a WebSocket would ---------------------------
const channel = {
    send() {},
    close() {},
    binaryType: "arraybuffer",
    onerror: null,
    onmessage: null,
    onopen: null,
    protocol: "",
    readyState: WebSocket.OPEN,
};
const sock = new Websock();
sock.attach(channel);

const display = new BufferDisplay(width, height);
const decoders = {
    0: new RawDecoder(),
    1: new CopyRectDecoder(),
    2: new RREDecoder(),
    5: new HextileDecoder(),
    6: new ZlibDecoder(),
    7: new TightDecoder(),
    16: new ZRLEDecoder(),
    [-260]: new TightPNGDecoder(),
};

function writeAll(bytes) {
    let off = 0;
    while (off < bytes.length) {
        off += writeSync(1, bytes, off, bytes.length - off);
    }
}

// The message loop of noVNC's RFB (_normalMsg / _framebufferUpdate / _handleDataRect), reduced to
// FramebufferUpdate: each call consumes as much as it can and returns false when it needs more bytes.
const FBU = { rects: 0, x: 0, y: 0, width: 0, height: 0, encoding: null };
let updates = 0;

function framebufferUpdate() {
    if (FBU.rects === 0) {
        if (sock.rQwait("FBU header", 3)) {
            return false;
        }
        sock.rQskipBytes(1);
        FBU.rects = sock.rQshift16();
    }
    while (FBU.rects > 0) {
        if (FBU.encoding === null) {
            if (sock.rQwait("rect header", 12)) {
                return false;
            }
            FBU.x = sock.rQshift16();
            FBU.y = sock.rQshift16();
            FBU.width = sock.rQshift16();
            FBU.height = sock.rQshift16();
            FBU.encoding = sock.rQshift32() >> 0;
        }
        if (FBU.encoding === LAST_RECT) {
            FBU.rects = 1;
        } else {
            const decoder = decoders[FBU.encoding];
            if (!decoder) {
                throw new Error("unsupported encoding " + FBU.encoding);
            }
            if (!decoder.decodeRect(FBU.x, FBU.y, FBU.width, FBU.height, sock, display, 24)) {
                return false;
            }
        }
        FBU.rects--;
        FBU.encoding = null;
    }
    updates++;
    if (snapshotEach) {
        writeAll(display.fb);
    }
    return true;
}

let inMessage = false;
function handleMessages() {
    while (sock.rQlen() > 0) {
        if (!inMessage) {
            const type = sock.rQshift8();
            if (type !== 0) {
                throw new Error("unexpected server message type " + type);
            }
            inMessage = true;
        }
        if (!framebufferUpdate()) {
            return;
        }
        inMessage = false;
    }
}
sock.on("message", handleMessages);

const step = chunk > 0 ? chunk : Math.max(stream.length, 1);
for (let off = 0; off < stream.length; off += step) {
    // a fresh ArrayBuffer per message, as a WebSocket delivers it
    const piece = stream.slice(off, Math.min(off + step, stream.length));
    channel.onmessage({ data: piece.buffer });
}
if (inMessage || sock.rQlen() > 0) {
    throw new Error(`stream ended inside a message (${sock.rQlen()} bytes left, ${updates} updates done)`);
}
if (!snapshotEach) {
    writeAll(display.fb);
}
