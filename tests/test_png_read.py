"""python_models.png_read on malformed and malicious files: a clear
ValueError, and no decompression past the size that IHDR declares."""
import struct
import time
import tracemalloc
import zlib

import pytest
import torch

from python_models.png import write_png
from python_models.png_read import read_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _ihdr(w, h, colour=2):
    return _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))


def _png(tmp_path, *chunks, name="x.png"):
    path = tmp_path / name
    path.write_bytes(SIGNATURE + b"".join(chunks) + _chunk(b"IEND", b""))
    return path


def _rows(w, h, c=3, filter_type=0):
    return b"".join(bytes([filter_type]) + bytes(range(y, y + w * c)) for y in range(h))


def test_reads_what_it_is_given_in_several_idat_chunks(tmp_path):
    data = zlib.compress(_rows(5, 4))
    path = _png(tmp_path, _ihdr(5, 4), _chunk(b"tEXt", b"a\0b"), _chunk(b"IDAT", data[:7]),
                _chunk(b"IDAT", data[7:]))
    want = torch.tensor([[[y + 3 * x + ch for x in range(5)] for y in range(4)] for ch in range(3)])
    torch.testing.assert_close(read_png(path), want / 255)
    image = torch.rand(3, 6, 7)
    write_png(tmp_path / "w.png", image)
    torch.testing.assert_close(read_png(tmp_path / "w.png"), image, atol=0.5 / 255 + 1e-6, rtol=0)


def test_decompression_bomb_is_refused_quickly(tmp_path):
    """A few KB of IDAT that inflate to 8 MiB, where IHDR declares 16 x 16
    RGB (784 bytes with the filter bytes): refused after inflating 785."""
    bomb = zlib.compress(bytes(8 << 20), 9)
    assert len(bomb) < 10_000
    path = _png(tmp_path, _ihdr(16, 16), _chunk(b"IDAT", bomb))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match="inflate to more than the 784 bytes that IHDR"):
            read_png(path)
        assert time.perf_counter() - start < 1.0
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


def test_size_limit_is_checked_before_decompressing(tmp_path):
    path = _png(tmp_path, _ihdr(100_000, 100_000), _chunk(b"IDAT", zlib.compress(b"\0" * 10)))
    with pytest.raises(ValueError, match="100000x100000 image of 3 channels is more than"):
        read_png(path)
    small = _png(tmp_path, _ihdr(4, 4), _chunk(b"IDAT", zlib.compress(_rows(4, 4))), name="s.png")
    assert read_png(small, max_bytes=48).shape == (3, 4, 4)
    with pytest.raises(ValueError, match="more than max_bytes=47 samples"):
        read_png(small, max_bytes=47)


def _malformed():
    """Each case's file and the ValueError message it must raise."""
    ihdr, iend = _ihdr(4, 3), _chunk(b"IEND", b"")
    idat = _chunk(b"IDAT", zlib.compress(_rows(4, 3)))  # 3 rows of 1 + 12 bytes
    first_ihdr = "the first chunk must be a 13-byte IHDR"
    return {
        "no_ihdr": (SIGNATURE + idat + iend, first_ihdr),
        "ihdr_after_idat": (SIGNATURE + idat + ihdr + iend, first_ihdr),
        "short_ihdr": (SIGNATURE + _chunk(b"IHDR", b"\0" * 12) + idat + iend, first_ihdr),
        "second_ihdr": (SIGNATURE + ihdr + ihdr + idat + iend, "a second IHDR"),
        "empty_image": (SIGNATURE + _ihdr(0, 3) + idat + iend, "empty 0x3 image"),
        "truncated_chunk": (SIGNATURE + ihdr + idat[:-9], "IDAT' chunk runs past the end"),
        "bad_crc": (SIGNATURE + ihdr + idat[:-1] + bytes([idat[-1] ^ 1]) + iend, "fails its CRC"),
        "no_iend": (SIGNATURE + ihdr + idat, r"no IEND chunk"),
        "corrupt_zlib": (SIGNATURE + ihdr + _chunk(b"IDAT", b"\x78\x9c\xff\xff") + iend,
                         "corrupt PNG image data"),
        "truncated_data": (SIGNATURE + ihdr + _chunk(b"IDAT", zlib.compress(_rows(4, 2))) + iend,
                           r"truncated PNG image data \(26 of 39 bytes\)"),
        "unfinished_stream": (SIGNATURE + ihdr + _chunk(b"IDAT", zlib.compress(_rows(4, 3))[:-4])
                              + iend, "the zlib stream does not end"),
        "bad_filter": (SIGNATURE + ihdr
                       + _chunk(b"IDAT", zlib.compress(_rows(4, 3, filter_type=7))) + iend,
                       "filter type 7 in row 0"),
        "not_png": (b"GIF89a" + bytes(40), "is not a PNG file"),
    }


@pytest.mark.parametrize("case", list(_malformed()))
def test_malformed_files_raise_value_error(tmp_path, case):
    body, message = _malformed()[case]
    path = tmp_path / "bad.png"
    path.write_bytes(body)
    with pytest.raises(ValueError, match=message):
        read_png(path)
