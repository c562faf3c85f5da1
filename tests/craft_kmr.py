#!/usr/bin/env python3
"""craft_kmr.py DIR: write crafted .kmr recordings with valid CRCs that lie
in their content (docs/file-format.md), for tests/defects_test.py. Written
from the format spec, not from knotmat's code: CRC32C (Castagnoli,
reflected), uncompressed payloads (flag 0), little-endian.

Files (each one defect of ../shared/notes/defects-found.md):
  good.kmr          8x8, 200 frames at 100 Hz, closed: the control
  rate_neg.kmr      header rate_hz=-5                      (D26)
  rate_nan.kmr      header rate_hz=nan                     (D26)
  pitch_inf.kmr     header pitch_mm=inf                    (D26)
  pitch_tiny.kmr    header pitch_mm=1e-45                  (D9)
  rows_wrap.kmr     header rows=65537 (wraps to 1 in 16 bits) (D26)
  newer.kmr         header version=99                      (a newer format)
  ev_lie.kmr        an event block claiming 4294967295 events (D29)
  gap_lie.kmr       a gap block claiming 2^63 frames      (D29)
  two_hdr.kmr       two recordings joined                  (D29)
  t_back.kmr        frame 100's time goes back 5 s         (D26)
  t_jump.kmr        frames from 100 on are 1e18 ns later   (D10, D25)
  val_big.kmr       a cell at 1e17 kPa                     (D25)
  t_const.kmr       every frame at t = 0                   (D1)
  big1024.kmr       1024 x 1024, 4 frames                  (D18)
"""
import math, os, struct, sys

def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t
_T = _table()

def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

def block(btype, payload, serial=0):
    h = b"KMRB" + struct.pack("<BBHIIQ", btype, 0, 0, len(payload), len(payload), serial)
    body = h + payload
    return body + struct.pack("<I", crc32c(body))

def header(rows=8, cols=8, pitch="12.7", rate="100", version="1", extra=""):
    text = (f"format=knotmat-kmr\nversion={version}\nsoftware=craft\nrows={rows}\ncols={cols}\n"
            f"pitch_mm={pitch}\nrate_hz={rate}\nunits=kPa\ndevice_kind=craft\n"
            f"subject=S\nsession=X\nstart_utc=2026-01-01T00:00:00Z\nmono_base_ns=0\n{extra}")
    return block(1, text.encode())

def frames(rows, cols, frames_):
    """frames_: list of (seq, device_ns, kpa list); cells as deltas to the previous."""
    cells = rows * cols
    out = [struct.pack("<I", len(frames_))]
    prev = [0] * cells
    for seq, ns, kpa in frames_:
        out.append(struct.pack("<QqqIII", seq, ns, ns, 0, 0, 0))
        bits = [struct.unpack("<I", struct.pack("<f", v))[0] for v in kpa]
        out.append(struct.pack(f"<{cells}I", *[b ^ p for b, p in zip(bits, prev)]))
        out.append(bytes(2 * cells))  # raw counts: zero deltas
        out.append(bytes(cells))      # cell flags
        prev = bits
    return block(2, b"".join(out), frames_[0][0])

def events(n_claimed, real=1):
    body = struct.pack("<I", n_claimed)
    for i in range(real):
        body += struct.pack("<I7dI", 4, 0.5 + i, 1.0, 2.0, 50.0, 0.9, 0.1, 0.6, 1)
    return block(3, body)

def gap(first, count):
    return block(4, struct.pack("<QQI", first, count, 1), first)

END = block(5, b"")

def pattern(i, cells):
    return [float((i * 7 + c * 3) % 50) for c in range(cells)]

def session(rows=8, cols=8, n=200, t=lambda i: i * 10_000_000, kpa=pattern, per_block=50, **hk):
    parts = [header(rows, cols, **hk)]
    for b0 in range(0, n, per_block):
        parts.append(frames(rows, cols, [(i, t(i), kpa(i, rows * cols))
                                         for i in range(b0, min(n, b0 + per_block))]))
    return parts

def write(d, name, parts, end=True):
    with open(os.path.join(d, name), "wb") as f:
        for p in parts:
            f.write(p)
        if end:
            f.write(END)

def main(d):
    os.makedirs(d, exist_ok=True)
    write(d, "good.kmr", session())
    write(d, "rate_neg.kmr", session(rate="-5"))
    write(d, "rate_nan.kmr", session(rate="nan"))
    write(d, "pitch_inf.kmr", session(pitch="inf"))
    write(d, "pitch_tiny.kmr", session(pitch="1e-45"))
    write(d, "rows_wrap.kmr", [header(rows=65537, cols=8)] + session()[1:])
    write(d, "newer.kmr", session(version="99"))
    write(d, "ev_lie.kmr", session() + [events(4294967295)])
    write(d, "gap_lie.kmr", session() + [gap(200, 1 << 63)])
    write(d, "two_hdr.kmr", session() + session())
    write(d, "t_back.kmr", session(t=lambda i: (i - 500 if i >= 100 else i) * 10_000_000))
    write(d, "t_jump.kmr", session(t=lambda i: i * 10_000_000 + (10**18 if i >= 100 else 0)))
    big = lambda i, cells: [1e17 if (i == 50 and c == 3) else 1.0 for c in range(cells)]
    write(d, "val_big.kmr", session(kpa=big))
    write(d, "t_const.kmr", session(t=lambda i: 0))
    flat = lambda i, cells: [0.0] * cells
    write(d, "big1024.kmr", session(rows=1024, cols=1024, n=4, kpa=flat, per_block=4, pitch="5"))

if __name__ == "__main__":
    main(sys.argv[1])
