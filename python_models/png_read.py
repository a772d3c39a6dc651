"""Minimal PNG reader with the standard library (no imaging package needed):
8-bit grayscale/RGB/RGBA, non-interlaced.

Malformed files raise ValueError. The image's size is checked against a
limit from the IHDR header before anything is decompressed, and the IDAT
stream is inflated chunk by chunk with an output bound: a small file whose
data inflates to more than its header declares (a decompression bomb) is
refused without the excess ever being produced.
"""
import struct
import zlib

import torch

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 6: 4}  # PNG colour type -> channels
MAX_BYTES = 1 << 26  # decoded samples: 4096 x 4096 RGBA (the float tensor takes 4 times that)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _chunks(data, path):
    """(kind, body) of each chunk after the signature, up to IEND, CRCs checked."""
    pos = len(_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise ValueError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"{path}: truncated PNG ({kind!r} chunk runs past the end)")
        body = data[pos + 8:end - 4]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4:end])[0]:
            raise ValueError(f"{path}: corrupt PNG ({kind!r} chunk fails its CRC)")
        if kind == b"IEND":
            return
        yield kind, body
        pos = end


def read_png(path, max_bytes=MAX_BYTES):
    """8-bit non-interlaced PNG -> float tensor (C, H, W) in [0, 1]. Refuses
    (ValueError) images of more than `max_bytes` samples (H * W * C)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != _SIGNATURE:
        raise ValueError(f"{path} is not a PNG file")
    chunks = _chunks(data, path)
    kind, body = next(chunks, (None, None))
    if kind != b"IHDR" or len(body) != 13:
        got = f"a {len(body)}-byte {kind!r} chunk" if kind else "no chunk"
        raise ValueError(f"{path}: malformed PNG: the first chunk must be a 13-byte IHDR, got "
                         f"{got}")
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"{path}: only 8-bit gray/RGB/RGBA non-interlaced PNGs are supported")
    c = _CHANNELS[colour]
    if not w or not h:
        raise ValueError(f"{path}: malformed PNG: IHDR declares an empty {w}x{h} image")
    if w * h * c > max_bytes:
        raise ValueError(f"{path}: a {w}x{h} image of {c} channels is more than max_bytes="
                         f"{max_bytes} samples")
    stride = w * c
    size = h * (stride + 1)  # each row: its filter type byte, then its samples
    inflate, raw = zlib.decompressobj(), bytearray()
    for kind, body in chunks:
        if kind == b"IHDR":
            raise ValueError(f"{path}: malformed PNG: a second IHDR chunk")
        if kind != b"IDAT":
            continue
        try:  # at most one byte past `size`: enough to tell that there is too much
            raw += inflate.decompress(body, size + 1 - len(raw))
        except zlib.error as e:
            raise ValueError(f"{path}: corrupt PNG image data ({e})") from None
        if len(raw) > size:
            raise ValueError(f"{path}: malformed PNG: the image data inflate to more than the "
                             f"{size} bytes that IHDR's {w}x{h}x{c} declares")
    if len(raw) < size:
        raise ValueError(f"{path}: truncated PNG image data ({len(raw)} of {size} bytes)")
    if not inflate.eof:
        raise ValueError(f"{path}: truncated PNG image data (the zlib stream does not end)")
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        if kind > 4:
            raise ValueError(f"{path}: malformed PNG: filter type {kind} in row {y}")
        for i in range(stride):
            a = line[i - c] if i >= c else 0
            b, d = prev[i], (prev[i - c] if i >= c else 0)
            line[i] = (line[i] + (0, a, b, (a + b) // 2, _paeth(a, b, d))[kind]) & 0xFF
        out += line
        prev = line
    return torch.frombuffer(out, dtype=torch.uint8).view(h, w, c).permute(2, 0, 1).float() / 255
