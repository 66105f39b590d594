"""Makes tests/fixtures/imread: small PNG and JPEG files of the kinds the detector's photos may be and the four
photos are not, each with the pixels OpenCV's imread (IMREAD_COLOR) gives for it, worked out here with numpy
from imread's rules, as NAME.npy ([h,w,3] uint8, RGB order):
  - PNG: an alpha channel or tRNS transparency dropped (the colour kept, nothing composited), 16-bit samples
    shifted right by 8, grey repeated in three channels (1, 2 and 4 bits scaled to 0..255), palettes looked up,
    gAMA ignored, Adam7 interlacing undone. The PNG files are written here byte by byte (zlib only), so that
    every case is exactly the one named.
  - JPEG: grey repeated in three channels; an EXIF orientation tag (1 to 8, little- and big-endian TIFF headers)
    applied as the EXIF specification says: 2 mirror left-right, 3 turn 180 degrees, 4 mirror top-bottom, 5
    transpose, 6 turn 90 degrees clockwise, 7 transpose and turn 180 degrees, 8 turn 90 degrees anticlockwise.
    The pixels before orientation are PIL's decoding of the same file (the same libjpeg-turbo).
usage: /usr/bin/python3 tests/py/mkimread.py OUTDIR
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

H, W = 13, 19   # odd sizes, not square: a transposition or a flip shows


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def pack_rows(samples, depth):
    """samples [h][n] of one row's sample values each -> the filtered (type 0) scanlines."""
    out = b""
    for row in samples:
        if depth == 16:
            body = b"".join(struct.pack(">H", int(v)) for v in row)
        elif depth == 8:
            body = bytes(int(v) for v in row)
        else:
            bits = "".join(format(int(v), "0%db" % depth) for v in row)
            bits += "0" * (-len(bits) % 8)
            body = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        out += b"\0" + body
    return out


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png(path, pix, ctype, depth, extra=b"", interlace=False):
    """pix [h][w][channels] of sample values; ctype 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA."""
    h, w = pix.shape[:2]
    flat = pix.reshape(h, w, -1)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = flat[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += pack_rows(sub.reshape(sub.shape[0], -1), depth)
    else:
        raw = pack_rows(flat.reshape(h, -1), depth)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def grey3(g):
    return np.repeat(g[:, :, None], 3, axis=2).astype(np.uint8)


def exif(orientation, big_endian):
    """An APP1 EXIF body: TIFF header, IFD0 with one entry, tag 0x0112 (SHORT, 1 value)."""
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    tiff += struct.pack(e + "H", 1) + struct.pack(e + "HHI", 0x0112, 3, 1) + struct.pack(e + "HH", orientation, 0)
    tiff += struct.pack(e + "I", 0)
    return b"Exif\0\0" + tiff


def oriented(a, o):
    return {1: a, 2: a[:, ::-1], 3: a[::-1, ::-1], 4: a[::-1], 5: a.transpose(1, 0, 2),
            6: np.rot90(a, -1), 7: a.transpose(1, 0, 2)[::-1, ::-1], 8: np.rot90(a, 1)}[o]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(20261202)
    cases = {}

    def save(name, expected):
        cases[name] = np.ascontiguousarray(expected, dtype=np.uint8)
        np.save(os.path.join(out, os.path.splitext(name)[0] + ".npy"), cases[name])

    rgb8 = rng.randint(0, 256, (H, W, 3))
    alpha8 = rng.randint(0, 256, (H, W, 1))
    png(os.path.join(out, "rgba8.png"), np.concatenate([rgb8, alpha8], 2), 6, 8)
    save("rgba8.png", rgb8)
    rgb16 = rng.randint(0, 65536, (H, W, 3))
    png(os.path.join(out, "rgb16.png"), rgb16, 2, 16)
    save("rgb16.png", rgb16 >> 8)
    alpha16 = rng.randint(0, 65536, (H, W, 1))
    png(os.path.join(out, "rgba16.png"), np.concatenate([rgb16, alpha16], 2), 6, 16)
    save("rgba16.png", rgb16 >> 8)
    g16 = rng.randint(0, 65536, (H, W))
    png(os.path.join(out, "grey16.png"), g16, 0, 16)
    save("grey16.png", grey3(g16 >> 8))
    g8 = rng.randint(0, 256, (H, W))
    png(os.path.join(out, "grey8.png"), g8, 0, 8)
    save("grey8.png", grey3(g8))
    png(os.path.join(out, "greyalpha8.png"), np.stack([g8, alpha8[:, :, 0]], 2), 4, 8)
    save("greyalpha8.png", grey3(g8))
    for bits in (1, 2, 4):
        g = rng.randint(0, 1 << bits, (H, W))
        png(os.path.join(out, "grey%d.png" % bits), g, 0, bits)
        save("grey%d.png" % bits, grey3(g * 255 // ((1 << bits) - 1)))
    # grey with a tRNS colour: transparency dropped
    png(os.path.join(out, "grey8-trns.png"), g8, 0, 8, chunk(b"tRNS", struct.pack(">H", int(g8[0, 0]))))
    save("grey8-trns.png", grey3(g8))
    # a palette of 7 colours, three of them (partly) transparent
    pal = rng.randint(0, 256, (7, 3))
    idx = rng.randint(0, 7, (H, W))
    png(os.path.join(out, "palette-trns.png"), idx, 3, 8,
        chunk(b"PLTE", bytes(int(v) for v in pal.ravel())) + chunk(b"tRNS", bytes([0, 128, 255])))
    save("palette-trns.png", pal[idx])
    # a 4-bit palette
    idx4 = rng.randint(0, 7, (H, W))
    png(os.path.join(out, "palette4.png"), idx4, 3, 4, chunk(b"PLTE", bytes(int(v) for v in pal.ravel())))
    save("palette4.png", pal[idx4])
    # gAMA 1.0 and a cHRM-less sBIT: the samples as stored
    png(os.path.join(out, "rgb-gamma.png"), rgb8, 2, 8, chunk(b"gAMA", struct.pack(">I", 100000)))
    save("rgb-gamma.png", rgb8)
    png(os.path.join(out, "rgb-adam7.png"), rgb8, 2, 8, interlace=True)
    save("rgb-adam7.png", rgb8)
    png(os.path.join(out, "rgba16-adam7.png"), np.concatenate([rgb16, alpha16], 2), 6, 16, interlace=True)
    save("rgba16-adam7.png", rgb16 >> 8)

    # JPEG: a picture with structure (a gradient and noise) so that orientation errors show
    yy, xx = np.mgrid[0:H * 2, 0:W * 2]
    pic = np.stack([xx * 255 // (W * 2), yy * 255 // (H * 2), (xx * yy) % 256], 2)
    pic = np.clip(pic + rng.randint(-20, 21, pic.shape), 0, 255).astype(np.uint8)
    base = Image.fromarray(pic, "RGB")
    Image.fromarray(pic[:, :, 1], "L").save(os.path.join(out, "grey.jpg"), quality=95)
    save("grey.jpg", grey3(np.asarray(Image.open(os.path.join(out, "grey.jpg")))))
    for o in range(1, 9):
        for big in ((False, True) if o in (6, 7) else (False,)):
            name = "orient%d%s.jpg" % (o, "-mm" if big else "")
            path = os.path.join(out, name)
            base.save(path, quality=95, exif=exif(o, big))
            assert exif(o, big) in open(path, "rb").read(), name
            decoded = np.asarray(Image.open(path).convert("RGB"))
            save(name, oriented(decoded, o))
    # an orientation outside 1..8 is ignored
    path = os.path.join(out, "orient9.jpg")
    base.save(path, quality=95, exif=exif(9, False))
    save("orient9.jpg", np.asarray(Image.open(path).convert("RGB")))
    with open(os.path.join(out, "CASES"), "w") as f:
        f.write("".join(n + "\n" for n in sorted(cases)))


if __name__ == "__main__":
    main()
