"""Minimal PNG reader with the standard library (no imaging package needed):
8-bit grayscale/RGB/RGBA, non-interlaced."""
import struct
import zlib

import torch

_CHANNELS = {0: 1, 2: 3, 6: 4}  # PNG colour type -> channels


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def read_png(path):
    """8-bit non-interlaced PNG -> float tensor (C, H, W) in [0, 1]."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"{path}: only 8-bit gray/RGB/RGBA non-interlaced PNGs are supported")
    c = _CHANNELS[colour]
    raw, stride = zlib.decompress(idat), w * c
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - c] if i >= c else 0
            b, d = prev[i], (prev[i - c] if i >= c else 0)
            line[i] = (line[i] + (0, a, b, (a + b) // 2, _paeth(a, b, d))[kind]) & 0xFF
        out += line
        prev = line
    return torch.frombuffer(out, dtype=torch.uint8).view(h, w, c).permute(2, 0, 1).float() / 255
