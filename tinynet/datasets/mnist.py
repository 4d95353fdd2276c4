"""MNIST handwritten digits, with the same contract as `keras.datasets.mnist.load_data()`.

    (x_train, y_train), (x_test, y_test) = load_data()

gives uint8 arrays of shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

Where the four files are looked for, in this order: the `path` argument; $TINYNET_DATA;
the copy shipped in the repository (`data/mnist/` of a checkout, when tinynet runs from one);
the per-user cache ($XDG_CACHE_HOME/tinynet/mnist or ~/.cache/tinynet/mnist), where missing
files are downloaded from the first mirror in MIRRORS that works.

Integrity: the MD5 of each file's *decompressed* content must equal the published value,
so a file that was recompressed (different .gz bytes, same data) is still accepted while
a truncated or corrupted one is not. Checking and parsing ~55 MB takes about a second, so
the parsed arrays are kept in one uncompressed .npz in the per-user cache, keyed by the
source files' paths, sizes and modification times: later loads take a few milliseconds,
and replacing a file invalidates the cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.datasets.idx import MAX_BYTES, parse_idx, read_bytes
from tinynet.files import atomic_write
from tinynet.progress import Progbar

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"

# MD5 of the decompressed files (decompressed sizes: 47040016, 60008, 7840016, 10008 bytes).
CHECKSUMS = {
    TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
    TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
    TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
    TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
}
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
SHIPPED = Path(__file__).resolve().parents[2] / "data" / "mnist"  # in a checkout of the repository
TIMEOUT = 10  # seconds of silence before one read gives up: without network, fail in seconds
MAX_DOWNLOAD_BYTES = 32 << 20  # for one file; MNIST's largest is about 10 MB gzipped
DOWNLOAD_DEADLINE_S = 600.0  # for one file, however slowly a server trickles it
# What each file decompresses to, so that no file is inflated past it (a gzip bomb stops there).
SIZES = {TRAIN_IMAGES: 47040016, TRAIN_LABELS: 60008, TEST_IMAGES: 7840016, TEST_LABELS: 10008}
CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one download may take: bytes and seconds."""

    max_bytes: int = MAX_DOWNLOAD_BYTES
    deadline_s: float = DOWNLOAD_DEADLINE_S


class DatasetDownloadError(OSError):
    """The files were missing and no mirror could provide them."""


def cache_root() -> Path:
    """Per-user cache directory: $XDG_CACHE_HOME/tinynet or ~/.cache/tinynet."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinynet"


def _expected_files(directory: Path) -> str:
    names = ", ".join(f"{name}.gz" for name in CHECKSUMS)
    return (f"put the four MNIST files in {directory} ({names}; gzipped or not), "
            "or point load_data(path=...) or $TINYNET_DATA at a directory that holds them")


def _check_md5(data: bytes, name: str, md5: str) -> None:
    got = hashlib.md5(data).hexdigest()
    if got != md5:
        raise ValueError(f"{name}: checksum mismatch, expected md5 {md5} of the decompressed content, "
                         f"got {got} ({len(data)} bytes); the file is corrupt or not the MNIST file")


def _download(url: str, target: Path, md5: str, limits: Limits) -> None:
    """Download url into a temporary file beside target, renamed into place only once verified.

    The download stops with an error past `limits.max_bytes` bytes or `limits.deadline_s` seconds,
    headers included, however the server behaves: at the deadline a watchdog shuts the connection.
    Each read also gives up after TIMEOUT seconds of silence.
    """
    start, sockets = time.monotonic(), []
    watchdog = threading.Timer(limits.deadline_s, _shut, args=(sockets,))
    watchdog.daemon = True
    watchdog.start()
    try:
        with atomic_write(target, suffix=".part") as out, _opener(sockets).open(url, timeout=TIMEOUT) as response:
            size = response.headers.get("Content-Length")
            total = int(size) if size and size.isdigit() else None
            if total is not None and total > limits.max_bytes:
                raise ValueError(f"the server announces {total} bytes, more than the {limits.max_bytes} allowed")
            print(f"Downloading {url}", file=sys.stderr)
            bar, received = Progbar(total, unit="B", stream=sys.stderr), 0
            while chunk := response.read1(CHUNK):  # whatever has arrived: a trickle cannot outlast the deadline
                received += len(chunk)
                if received > limits.max_bytes:
                    raise ValueError(f"more than the {limits.max_bytes} bytes allowed for this file")
                out.write(chunk)
                bar.update(received)
            _check_deadline(start, limits)
            bar.update(received, finalize=True)
            if total is not None and received != total:
                raise ValueError(f"connection closed after {received} of {total} bytes")
            out.flush()
            _check_md5(read_bytes(out.name, SIZES.get(target.name.removesuffix(".gz"), MAX_BYTES)), url, md5)
    except (OSError, http.client.HTTPException):
        _check_deadline(start, limits)  # a connection the watchdog shut: say so, not "connection reset"
        raise
    finally:
        watchdog.cancel()


def _check_deadline(start: float, limits: Limits) -> None:
    if time.monotonic() - start >= limits.deadline_s:
        raise ValueError(f"not done after {limits.deadline_s:g} s, the most one download may take")


def _shut(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _opener(sockets: list[socket.socket]) -> urllib.request.OpenerDirector:
    """urllib's usual opener (proxies from the environment included) that lists each socket it connects."""
    class Watched:
        def connect(self) -> None:
            super().connect()  # type: ignore[misc]
            sockets.append(self.sock)  # type: ignore[attr-defined]

    class HTTP(Watched, http.client.HTTPConnection):
        pass

    class HTTPS(Watched, http.client.HTTPSConnection):
        pass

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(HTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(HTTPS, req, context=self._context)

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def fetch(name: str, directory: str | os.PathLike, mirrors: list[str], md5: str, limits: Limits | None = None) -> Path:
    """Download `name`.gz into directory from the first mirror that serves a file with the right MD5."""
    target, reasons, limits = Path(directory) / f"{name}.gz", [], limits or Limits()
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + target.name
        try:
            _download(url, target, md5, limits)
            return target
        except (OSError, ValueError, http.client.HTTPException) as err:  # URLError, timeouts are OSErrors
            reasons.append(f"  {url}: {err}")
    raise DatasetDownloadError(f"could not download {target.name}:\n" + "\n".join(reasons or ["  no mirrors given"]))


def ensure_files(directory: str | os.PathLike, mirrors: list[str] | None = None,
                 checksums: dict[str, str] | None = None, limits: Limits | None = None) -> dict[str, Path]:
    """Path of each file in `checksums` inside directory (plain or .gz), downloading missing ones."""
    directory, checksums = Path(directory), CHECKSUMS if checksums is None else checksums
    mirrors = MIRRORS if mirrors is None else mirrors
    files = {}
    for name, md5 in checksums.items():
        found = [p for p in (directory / f"{name}.gz", directory / name) if p.is_file()]
        if found:
            files[name] = found[0]
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
            files[name] = fetch(name, directory, mirrors, md5, limits)
        except OSError as err:  # includes DatasetDownloadError and a read-only directory
            raise DatasetDownloadError(f"MNIST: {name}.gz is missing and could not be downloaded; "
                                       f"{_expected_files(directory)}.\n{err}") from err
    return files


def _cache_file(files: dict[str, Path], checksums: dict[str, str]) -> tuple[Path, str]:
    """Where the parsed arrays for these files are cached, and the key that must match."""
    sources = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files.values()]
    key = json.dumps({"files": sources, "md5": checksums}, sort_keys=True)
    folder = hashlib.sha256(str(Path(sources[0][0]).parent).encode()).hexdigest()[:16]
    return cache_root() / "mnist" / f"parsed-{folder}.npz", key


def _read_cache(cache: Path, key: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(cache, allow_pickle=False) as npz:
            if str(npz["key"]) == key:
                return {name: npz[name] for name in npz.files if name != "key"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing or damaged: a miss
        pass
    return None


def _write_cache(cache: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Save atomically (temp file + rename); an unwritable cache only costs speed, so errors are ignored."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache) as f:
            np.savez(f, key=np.array(key), **arrays)
    except OSError:
        pass


def _check_shapes(arrays: dict[str, np.ndarray]) -> None:
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        x, y = arrays[images], arrays[labels]
        if x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"MNIST: {images} has shape {x.shape} and {labels} has shape {y.shape}, "
                             "expected (N, 28, 28) images and (N,) labels with the same N")
        if y.size and y.max() > 9:
            raise ValueError(f"MNIST: {labels} holds label {y.max()}, expected digits 0..9")


def _read_verified(files: dict[str, Path], checksums: dict[str, str]) -> dict[str, np.ndarray]:
    """Check each file's MD5, parse it, and check that the four arrays fit together."""
    arrays = {}
    for name, file in files.items():
        data = read_bytes(file, SIZES.get(name, MAX_BYTES))
        # parse first: a bad header or a wrong size gets its own message, not just "checksum mismatch"
        arrays[name] = parse_idx(data, str(file), ndim=3 if "images" in name else 1)
        _check_md5(data, str(file), checksums[name])
    _check_shapes(arrays)
    return arrays


def load_data(path: str | os.PathLike | None = None, *, mirrors: list[str] | None = None,
              checksums: dict[str, str] | None = None, max_download_bytes: int = MAX_DOWNLOAD_BYTES,
              download_deadline_s: float = DOWNLOAD_DEADLINE_S,
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return (x_train, y_train), (x_test, y_test) as uint8 arrays, downloading the files if needed.

    `mirrors` replaces MIRRORS and `checksums` replaces CHECKSUMS (tests use tiny fake files).
    A download stops with an error past `max_download_bytes` bytes or `download_deadline_s`
    seconds for one file; no file is decompressed past its known size (SIZES).
    """
    checksums = CHECKSUMS if checksums is None else checksums
    chosen = path if path is not None else os.environ.get("TINYNET_DATA") or None
    if chosen is not None:
        directory = Path(chosen).expanduser()
    elif all((SHIPPED / f"{name}.gz").is_file() for name in checksums):
        directory = SHIPPED
    else:
        directory = cache_root() / "mnist"
    if chosen is not None and not directory.is_dir():
        # A mistyped path should not silently become a new download folder.
        raise FileNotFoundError(f"MNIST: {directory} is not a directory; {_expected_files(directory)}")
    files = ensure_files(directory, mirrors, checksums, Limits(max_download_bytes, download_deadline_s))
    cache, key = _cache_file(files, checksums)
    arrays = _read_cache(cache, key)
    if arrays is None:  # first use of these files: verify, parse, and remember the result
        arrays = _read_verified(files, checksums)
        _write_cache(cache, key, arrays)
    return (arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]), (arrays[TEST_IMAGES], arrays[TEST_LABELS])
