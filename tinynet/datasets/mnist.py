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

`load_data(path="…/mnist.npz")` reads Keras's cached copy instead (the file
`keras.datasets.mnist.load_data()` keeps in ~/.keras/datasets): its four arrays must be exactly
what Keras's file holds, shapes in NPZ_SHAPES and dtype uint8, checked in each array's .npy header
before any data is read, so a small file that claims a huge array costs nothing.

The machinery here (lookup order, downloads with limits, checksums, the parsed-array cache) serves
any dataset of four IDX files described by a `Source`; `tinynet.datasets.fashion_mnist` is another.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import json
import math
import os
import socket
import sys
import threading
import time
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.lib import format as npy

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
VARIABLE = "TINYNET_DATA"  # names a folder that holds the four MNIST files
TIMEOUT = 10  # seconds of silence before one read gives up: without network, fail in seconds
MAX_DOWNLOAD_BYTES = 32 << 20  # for one file; MNIST's largest is about 10 MB gzipped, Fashion-MNIST's 26 MB
DOWNLOAD_DEADLINE_S = 600.0  # for one file, however slowly a server trickles it
# What each file decompresses to, so that no file is inflated past it (a gzip bomb stops there).
# Fashion-MNIST's files have the same names and shapes, hence the same sizes.
SIZES = {TRAIN_IMAGES: 47040016, TRAIN_LABELS: 60008, TEST_IMAGES: 7840016, TEST_LABELS: 10008}
CHUNK = 1 << 16
# Keras's mnist.npz: exactly these arrays, uint8, these shapes (a test may patch the table to small shapes).
NPZ_SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
NPY_HEADER_MAX = 1 << 16  # bytes an .npy member may hold beyond its data: magic and header

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # Keras's return value


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one download may take: bytes and seconds."""

    max_bytes: int = MAX_DOWNLOAD_BYTES
    deadline_s: float = DOWNLOAD_DEADLINE_S


@dataclasses.dataclass(frozen=True)
class Source:
    """One dataset of four IDX files: what it is called, where it is looked for, how it is checked."""

    title: str  # in messages: "MNIST"
    folder: str  # its folder below cache_root(): "mnist"
    variable: str  # the environment variable that may name a folder holding the files
    checksums: dict[str, str]  # file name (without .gz) -> hex digest
    mirrors: list[str]
    shipped: Path | None = None  # a copy in the repository, used when complete
    algorithm: str = "md5"  # a hashlib name
    # "content": the digest of the decompressed bytes (a recompressed file passes);
    # "file": of the .gz file as published (it must stay gzipped, byte for byte).
    hashed: Literal["content", "file"] = "content"
    labels: str = "digits"  # what the labels 0..9 are, in messages
    hint: str = ""  # added to the advice on where to put the files


class DatasetDownloadError(OSError):
    """The files were missing and no mirror could provide them."""


def cache_root() -> Path:
    """Per-user cache directory: $XDG_CACHE_HOME/tinynet or ~/.cache/tinynet."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinynet"


def source(checksums: dict[str, str] | None = None, mirrors: list[str] | None = None) -> Source:
    """MNIST's Source, read from this module's tables at each call (tests replace them)."""
    return Source("MNIST", "mnist", VARIABLE, CHECKSUMS if checksums is None else checksums,
                  MIRRORS if mirrors is None else mirrors, SHIPPED,
                  hint=" (or give load_data(path=...) the path of Keras's mnist.npz)")


def _expected_files(directory: Path, src: Source) -> str:
    names = ", ".join(f"{name}.gz" for name in src.checksums)
    how = "gzipped or not" if src.hashed == "content" else "gzipped, as published"
    return (f"put the four {src.title} files in {directory} ({names}; {how}), or point load_data(path=...) "
            f"or ${src.variable} at a directory that holds them{src.hint}")


def _digest(path: str | os.PathLike, name: str, src: Source, content: bytes | None) -> tuple[str, int]:
    """The digest `src` publishes for this file, and how many bytes it covers."""
    if src.hashed == "file":  # a chunk at a time: memory stays small however large the file
        digest, size = hashlib.new(src.algorithm), 0
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size
    if content is None:
        content = read_bytes(path, SIZES.get(name, MAX_BYTES))
    return hashlib.new(src.algorithm, content).hexdigest(), len(content)


def _verify(path: str | os.PathLike, name: str, src: Source, label: str, content: bytes | None = None) -> None:
    """Compare the file's digest with src.checksums[name]; `content`, when given, is its decompressed bytes."""
    expected = src.checksums[name]
    got, size = _digest(path, name, src, content)
    if got != expected:
        what = "decompressed content" if src.hashed == "content" else ".gz file as published"
        raise ValueError(f"{label}: checksum mismatch, expected {src.algorithm} {expected} of the {what}, "
                         f"got {got} ({size} bytes); the file is corrupt or not the {src.title} file")


def _download(url: str, target: Path, src: Source, limits: Limits) -> None:
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
            _receive(response, out, url, limits, start)
            _verify(out.name, target.name.removesuffix(".gz"), src, url)
    except (OSError, http.client.HTTPException):
        _check_deadline(start, limits)  # a connection the watchdog shut: say so, not "connection reset"
        raise
    finally:
        watchdog.cancel()


def _receive(response: Any, out: Any, url: str, limits: Limits, start: float) -> None:
    """Copy the response's body into `out`, within the limits, with a progress bar."""
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


def fetch(name: str, directory: str | os.PathLike, src: Source, limits: Limits | None = None) -> Path:
    """Download `name`.gz into directory from the first of src.mirrors that serves a file with the right digest."""
    target, reasons, limits = Path(directory) / f"{name}.gz", [], limits or Limits()
    for mirror in src.mirrors:
        url = mirror.rstrip("/") + "/" + target.name
        try:
            _download(url, target, src, limits)
            return target
        except (OSError, ValueError, http.client.HTTPException) as err:  # URLError, timeouts are OSErrors
            reasons.append(f"  {url}: {err}")
    raise DatasetDownloadError(f"could not download {target.name}:\n" + "\n".join(reasons or ["  no mirrors given"]))


def ensure_files(directory: str | os.PathLike, src: Source | None = None,
                 limits: Limits | None = None) -> dict[str, Path]:
    """Path of each file of `src` (MNIST by default) inside directory, downloading missing ones.

    A file may be gzipped or not when its digest is of the content; only gzipped when it is of the .gz file.
    """
    directory, src = Path(directory), src or source()
    files = {}
    for name in src.checksums:
        candidates = (directory / f"{name}.gz", directory / name)[: 2 if src.hashed == "content" else 1]
        found = [p for p in candidates if p.is_file()]
        if found:
            files[name] = found[0]
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
            files[name] = fetch(name, directory, src, limits)
        except OSError as err:  # includes DatasetDownloadError and a read-only directory
            raise DatasetDownloadError(f"{src.title}: {name}.gz is missing and could not be downloaded; "
                                       f"{_expected_files(directory, src)}.\n{err}") from err
    return files


def _cache_file(files: dict[str, Path], src: Source) -> tuple[Path, str]:
    """Where the parsed arrays for these files are cached, and the key that must match."""
    sources = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files.values()]
    key = json.dumps({"files": sources, src.algorithm: src.checksums}, sort_keys=True)
    folder = hashlib.sha256(str(Path(sources[0][0]).parent).encode()).hexdigest()[:16]
    return cache_root() / src.folder / f"parsed-{folder}.npz", key


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


def _check_shapes(arrays: dict[str, np.ndarray], src: Source) -> None:
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        x, y = arrays[images], arrays[labels]
        if x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{src.title}: {images} has shape {x.shape} and {labels} has shape {y.shape}, "
                             "expected (N, 28, 28) images and (N,) labels with the same N")
        _check_labels(y, f"{src.title}: {labels}", src)


def _check_labels(y: np.ndarray, where: str, src: Source) -> None:
    if y.size and y.max() > 9:
        raise ValueError(f"{where} holds label {y.max()}, expected {src.labels} 0..9")


def _read_verified(files: dict[str, Path], src: Source) -> dict[str, np.ndarray]:
    """Check each file's digest, parse it, and check that the four arrays fit together."""
    arrays = {}
    for name, file in files.items():
        data = read_bytes(file, SIZES.get(name, MAX_BYTES))
        # parse first: a bad header or a wrong size gets its own message, not just "checksum mismatch"
        arrays[name] = parse_idx(data, str(file), ndim=3 if "images" in name else 1)
        _verify(file, name, src, str(file), data)
    _check_shapes(arrays, src)
    return arrays


def _chosen(path: str | os.PathLike | None, variable: str) -> Path | None:
    """The place the caller named: `path`, else the environment variable, else None."""
    chosen = path if path is not None else os.environ.get(variable) or None
    return None if chosen is None else Path(chosen).expanduser()


def _directory(chosen: Path | None, src: Source) -> Path:
    """The folder to read (and download into): the one named, else the shipped copy, else the cache."""
    if chosen is not None:
        if not chosen.is_dir():  # a mistyped path should not silently become a new download folder
            raise FileNotFoundError(f"{src.title}: {chosen} is not a directory; {_expected_files(chosen, src)}")
        return chosen
    if src.shipped is not None and all((src.shipped / f"{name}.gz").is_file() for name in src.checksums):
        return src.shipped
    return cache_root() / src.folder


def _split(arrays: dict[str, np.ndarray]) -> Split:
    return (arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]), (arrays[TEST_IMAGES], arrays[TEST_LABELS])


def load_idx_dataset(path: str | os.PathLike | None, src: Source, limits: Limits | None = None) -> Split:
    """(x_train, y_train), (x_test, y_test) of the dataset `src` describes, looked for as the module says."""
    files = ensure_files(_directory(_chosen(path, src.variable), src), src, limits)
    cache, key = _cache_file(files, src)
    arrays = _read_cache(cache, key)
    if arrays is None:  # first use of these files: verify, parse, and remember the result
        arrays = _read_verified(files, src)
        _write_cache(cache, key, arrays)
    return _split(arrays)


# ---- Keras's mnist.npz ----------------------------------------------------------------------------------

def _npy_header(f: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype that an .npy stream's header declares; nothing past the header is read."""
    try:
        version = npy.read_magic(f)
        readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f".npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
        return readers[version](f)
    except (ValueError, TypeError, EOFError) as err:  # bad magic, a cut or malformed header, an unknown dtype
        raise ValueError(f"{where}: not a valid .npy array ({err})") from err


def _read_member(archive: zipfile.ZipFile, key: str, file: Path) -> np.ndarray:
    """Array `key` of the archive, refused before any data is read unless its header declares uint8, NPZ_SHAPES[key]."""
    where, shape = f"{file}: array {key}", NPZ_SHAPES[key]
    info, size = archive.getinfo(f"{key}.npy"), math.prod(shape)
    if info.file_size > size + NPY_HEADER_MAX:
        raise ValueError(f"{where}: {info.file_size} bytes, expected at most {size + NPY_HEADER_MAX} "
                         f"for shape {shape} uint8")
    with archive.open(info) as f:
        declared, fortran, dtype = _npy_header(f, where)
        if dtype != np.uint8:
            raise ValueError(f"{where}: dtype {dtype}, expected uint8")
        if tuple(declared) != shape:
            raise ValueError(f"{where}: shape {tuple(declared)}, expected {shape}")
        data, extra = f.read(size), f.read(1)  # reading to the end also checks the member's CRC
    if len(data) != size:
        raise ValueError(f"{where}: truncated, {len(data)} of the {size} data bytes its header announces")
    if extra:
        raise ValueError(f"{where}: more bytes than the {size} its header announces")
    return np.frombuffer(data, np.uint8).reshape(shape, order="F" if fortran else "C").copy(order="C")


def _check_members(archive: zipfile.ZipFile, file: Path) -> None:
    """Exactly the four arrays of Keras's mnist.npz: a missing one or any other member is refused."""
    names, wanted = set(archive.namelist()), {f"{key}.npy" for key in NPZ_SHAPES}
    expected = ", ".join(NPZ_SHAPES)
    if wanted - names:
        missing = ", ".join(sorted(name.removesuffix(".npy") for name in wanted - names))
        raise ValueError(f"{file}: no array {missing}; expected the arrays {expected} (Keras's mnist.npz)")
    if names - wanted:
        raise ValueError(f"{file}: unexpected members {', '.join(sorted(names - wanted))}; "
                         f"expected only the arrays {expected} (Keras's mnist.npz)")


def load_npz(file: str | os.PathLike) -> Split:
    """(x_train, y_train), (x_test, y_test) from Keras's mnist.npz, every array checked before it is read."""
    file = Path(file)
    if not file.is_file():  # Keras would download to this path; a mistyped one should not become a download
        raise FileNotFoundError(f"MNIST: {file} does not exist; a path ending in .npz is read as Keras's mnist.npz")
    try:
        with zipfile.ZipFile(file) as archive:
            _check_members(archive, file)
            arrays = {key: _read_member(archive, key, file) for key in NPZ_SHAPES}
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # not a zip, or a damaged one
        raise ValueError(f"{file}: not a readable .npz file ({err})") from err
    for key in ("y_train", "y_test"):
        _check_labels(arrays[key], f"{file}: array {key}", source())
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def load_data(path: str | os.PathLike | None = None, *, mirrors: list[str] | None = None,
              checksums: dict[str, str] | None = None, max_download_bytes: int = MAX_DOWNLOAD_BYTES,
              download_deadline_s: float = DOWNLOAD_DEADLINE_S) -> Split:
    """Return (x_train, y_train), (x_test, y_test) as uint8 arrays, downloading the files if needed.

    `path` is a folder holding the four IDX files, or Keras's mnist.npz (a file whose name ends in .npz).
    `mirrors` replaces MIRRORS and `checksums` replaces CHECKSUMS (tests use tiny fake files).
    A download stops with an error past `max_download_bytes` bytes or `download_deadline_s`
    seconds for one file; no file is decompressed past its known size (SIZES).
    """
    chosen = _chosen(path, VARIABLE)
    if chosen is not None and chosen.suffix == ".npz" and not chosen.is_dir():
        return load_npz(chosen)
    return load_idx_dataset(chosen, source(checksums, mirrors), Limits(max_download_bytes, download_deadline_s))
