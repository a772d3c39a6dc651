"""Minimal PNG writer (no Pillow dependency) for the example entry points."""
import struct
import zlib

import torch


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, image):
    """image: (3, H, W) or (H, W, 3) uint8 tensor, or float in [0, 1] (clamped)."""
    if image.shape[0] == 3 and image.dim() == 3:
        image = image.permute(1, 2, 0)
    if image.dtype != torch.uint8:
        image = (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    h, w, c = image.shape
    if c != 3:
        raise ValueError(f"write_png expects an RGB image, got {c} channels")
    rows = image.contiguous().cpu().numpy().reshape(h, w * 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 per row
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(_chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(_chunk(b"IEND", b""))
