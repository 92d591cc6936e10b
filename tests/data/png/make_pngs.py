#!/usr/bin/python3
"""Writes the PNG files of tests/data/png (run by hand; the files are committed). The well-formed ones hold
the pattern test_image.cpp recomputes: sample (y, x, c) = (31·y + 17·x + 101·c + 7) mod 2^depth, every
scanline filtered with type y mod 5, so all five filters are undone. The malformed ones are each one
defect. astronaut_crop.npy: pixels 96..103 × 120..127 of assets/images/astronaut.png as Pillow decodes
them (64 × 3 float32, values 0..255): a decoder other than ours."""
import os
import struct
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(tag, data, crc=None):
    crc = zlib.crc32(tag + data) if crc is None else crc
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def sample(y, x, c, depth):
    return (31 * y + 17 * x + 101 * c + 7) % (1 << depth)


def pack_row(values, depth):
    if depth == 8:
        return bytes(values)
    if depth == 16:
        return b"".join(struct.pack(">H", v) for v in values)
    out, acc, bits = bytearray(), 0, 0
    for v in values:
        acc = (acc << depth) | v
        bits += depth
        if bits == 8:
            out.append(acc)
            acc, bits = 0, 0
    if bits:
        out.append(acc << (8 - bits))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_rows(rows, bpp):
    out, prev = bytearray(), bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        t = y % 5
        f = bytearray()
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][t]
            f.append((v - pred) & 0xFF)
        out += bytes([t]) + f
        prev = row
    return bytes(out)


def image_data(width, height, colour, depth, interlace):
    ch = CHANNELS[colour]
    bpp = max(1, depth * ch // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        xs, ys = list(range(x0, width, dx)), list(range(y0, height, dy))
        if not xs or not ys:
            continue
        rows = [pack_row([sample(y, x, c, depth) for x in xs for c in range(ch)], depth) for y in ys]
        raw += filter_rows(rows, bpp)
    return raw


def png(width, height, colour, depth, interlace=0, palette=None, raw=None, ihdr=None):
    ihdr = ihdr or struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    body = chunk(b"IHDR", ihdr)
    if palette is not None:
        body += chunk(b"PLTE", palette)
    raw = image_data(width, height, colour, depth, interlace) if raw is None else raw
    z = zlib.compress(raw, 9)
    body += chunk(b"IDAT", z[: len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2:])  # split: two IDATs
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    # Well-formed: the pattern in every colour type, depths 1..16, plain and Adam7.
    write("gray1_13x7.png", png(13, 7, 0, 1))
    write("gray8_9x6.png", png(9, 6, 0, 8))
    write("gray16_5x4.png", png(5, 4, 0, 16))
    write("grayalpha8_6x5.png", png(6, 5, 4, 8))
    write("rgb8_11x7.png", png(11, 7, 2, 8))
    write("rgb16_4x3.png", png(4, 3, 2, 16))
    write("rgba8_7x6.png", png(7, 6, 6, 8))
    write("rgb8_adam7_19x11.png", png(19, 11, 2, 8, interlace=1))
    write("gray4_adam7_3x2.png", png(3, 2, 0, 4, interlace=1))
    # Palette: 16 entries, entry k = (16k, 255 − 16k, 7k); indices follow the pattern mod 16.
    palette = b"".join(bytes([16 * k, 255 - 16 * k, 7 * k]) for k in range(16))
    write("palette4_10x5.png", png(10, 5, 3, 4, palette=palette))
    # Malformed, one defect each.
    good = png(11, 7, 2, 8)
    write("bad_truncated.png", good[: len(good) - 30])
    bad_crc = bytearray(good)
    bad_crc[8 + 8 + 13] ^= 0x01  # the IHDR chunk's CRC
    write("bad_crc.png", bytes(bad_crc))
    write("bad_huge.png", png(1, 1, 2, 8, raw=b"\x00\x00\x00\x00", ihdr=struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)))
    raw = bytearray(image_data(11, 7, 2, 8, 0))
    raw[(11 * 3 + 1) * 2] = 9  # row 2's filter type
    write("bad_filter.png", png(11, 7, 2, 8, raw=bytes(raw)))
    write("bad_short_data.png", png(11, 7, 2, 8, raw=image_data(11, 6, 2, 8, 0)))
    write("bad_long_data.png", png(11, 7, 2, 8, raw=image_data(11, 8, 2, 8, 0)))
    write("bad_palette_index.png", png(10, 5, 3, 4, palette=palette[:3 * 4]))
    write("bad_depth.png", png(4, 3, 2, 4, raw=b"\x00" * 3 * 7))
    write("bad_signature.png", b"GIF89a" + good[6:])
    write("bad_no_idat.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""))
    write("bad_critical_chunk.png", good[:33] + chunk(b"ABCD", b"x") + good[33:])
    # A decoder other than ours, on a real photo.
    from PIL import Image
    astronaut = np.asarray(Image.open(os.path.join(HERE, "..", "..", "..", "assets", "images", "astronaut.png")).convert("RGB"))
    crop = astronaut[96:104, 120:128].reshape(64, 3).astype(np.float32)
    np.save(os.path.join(HERE, "astronaut_crop.npy"), crop)


if __name__ == "__main__":
    main()
