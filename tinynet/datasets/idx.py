"""Read IDX files, the simple binary format MNIST is distributed in.

An IDX file is a header followed by the raw array bytes:

    bytes 0-1   two zero bytes
    byte  2     data type code (0x08 = unsigned byte, the only one MNIST uses)
    byte  3     number of dimensions, n
    next 4*n    the size of each dimension, big-endian uint32
    the rest    the values, row-major; for uint8 exactly prod(sizes) bytes

Files are usually gzip-compressed. We recognise gzip by its first two bytes (1f 8b),
not by the ".gz" in the name, because files get renamed and recompressed in the wild.
Every check fails with a ValueError that names the file and says what was expected and
what was found, so a truncated download is reported as such rather than as a reshape error.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from typing import Any

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
UINT8 = 0x08
# The other IDX type codes, so we can say what a rejected file holds.
OTHER_TYPES = {0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


MAX_BYTES = 256 << 20  # the most a file may hold, decompressed, unless the caller says less (MNIST: its sizes)
CHUNK = 1 << 20


def read_bytes(path: str | os.PathLike, limit: int = MAX_BYTES) -> bytes:
    """The file's content, decompressed if it is gzip (checked by magic bytes), at most `limit` bytes.

    A file, or what it decompresses to, that is longer than `limit` is refused once `limit`
    bytes have been read: a few kB of gzip that inflate to gigabytes cost no more than that.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        if f.read(2) != GZIP_MAGIC:
            f.seek(0)
            return _read_capped(f, limit, f"{name}: holds")
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f) as unzipped:
                return _read_capped(unzipped, limit, f"{name}: decompresses to")
        except (OSError, EOFError, zlib.error) as err:  # bad header or CRC, cut stream, bad deflate data
            raise ValueError(f"{name}: corrupt gzip data ({err})") from err


def _read_capped(stream: Any, limit: int, what: str) -> bytes:
    """All of `stream`, a chunk at a time (memory follows what arrives, not the limit), or a ValueError past `limit`."""
    chunks, total = [], 0
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise ValueError(f"{what} more than {limit} bytes, the most this file may hold "
                             "(a gzip bomb, or not the file expected)")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_idx(data: bytes, name: str, ndim: int | None = None) -> np.ndarray:
    """Turn the (decompressed) bytes of an IDX uint8 file into an array; `name` is used in errors.

    `ndim`, when given, is the number of dimensions the caller expects (3 for MNIST images).
    """
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX header, {len(data)} bytes, expected at least 4")
    magic = int.from_bytes(data[:4], "big")
    zeros, type_code, dims_count = data[:2], data[2], data[3]
    wanted = f"0x08{ndim:02x} (IDX uint8, {ndim} dimensions)" if ndim else "0x08NN (IDX uint8, NN dimensions)"
    known_type = type_code == UINT8 or type_code in OTHER_TYPES
    if zeros != b"\0\0" or not known_type or dims_count == 0 or (ndim is not None and dims_count != ndim):
        raise ValueError(f"{name}: bad magic number 0x{magic:08x}, expected {wanted}")
    if type_code != UINT8:
        raise ValueError(f"{name}: unsupported IDX data type 0x{type_code:02x} ({OTHER_TYPES[type_code]}), "
                         "only 0x08 (uint8) is supported")
    header_size = 4 + 4 * dims_count
    if len(data) < header_size:
        raise ValueError(f"{name}: truncated header, {dims_count} dimensions need {header_size} bytes, "
                         f"file holds {len(data)}")
    shape = tuple(int.from_bytes(data[i:i + 4], "big") for i in range(4, header_size, 4))
    expected, received = math.prod(shape), len(data) - header_size
    if received < expected:
        raise ValueError(f"{name}: truncated, header says {expected} data bytes "
                         f"(shape {'x'.join(map(str, shape))}), file holds {received}")
    if received > expected:
        raise ValueError(f"{name}: {received - expected} trailing bytes after the {expected} data bytes "
                         f"the header announces (shape {'x'.join(map(str, shape))})")
    # frombuffer shares the read-only bytes; copy so callers get an ordinary, writable array.
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read a plain or gzipped IDX uint8 file into an array of the shape its header gives."""
    return parse_idx(read_bytes(path), os.fspath(path), ndim)
