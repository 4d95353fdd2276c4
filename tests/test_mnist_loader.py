"""IDX parsing, integrity checks, caching and downloading of MNIST, without the internet.

Downloads are served by a real HTTP server on 127.0.0.1 that each test starts and stops;
the data are tiny fake MNIST files written by the tests, with a matching checksum table.
"""
import gzip
import hashlib
import http.server
import io
import os
import socket
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy

from tinynet.datasets import mnist
from tinynet.datasets.idx import read_bytes, read_idx

REAL_DATA = os.environ.get("TINYNET_DATA") or str(mnist.SHIPPED)  # read before the fixture below hides them
NAMES = [mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, mnist.TEST_IMAGES, mnist.TEST_LABELS]


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def closed_port_url() -> str:
    """A URL on which nothing listens: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test away from the real cache, $TINYNET_DATA and the default mirrors."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setattr(mnist, "SHIPPED", tmp_path / "no-shipped-copy")
    monkeypatch.setattr(mnist, "MIRRORS", [closed_port_url()])


@pytest.fixture
def fake():
    """Tiny MNIST lookalike: decompressed contents and their checksum table."""
    rng = np.random.default_rng(0)
    arrays = {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (3, 28, 28)), mnist.TRAIN_LABELS: np.array([5, 0, 9]),
        mnist.TEST_IMAGES: rng.integers(0, 256, (2, 28, 28)), mnist.TEST_LABELS: np.array([7, 2]),
    }
    raw = {name: idx_bytes(a) for name, a in arrays.items()}
    checksums = {name: hashlib.md5(data).hexdigest() for name, data in raw.items()}
    return arrays, raw, checksums


def write_files(directory: Path, raw: dict, compress: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in raw.items():
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


def assert_loaded(result, arrays) -> None:
    (x_train, y_train), (x_test, y_test) = result
    for got, name in zip((x_train, y_train, x_test, y_test), NAMES):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[name])


class Server:
    """HTTP server in a thread; routes map a URL path to (kind, body), kind in ok/cut."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if self.path not in outer.routes:
                    self.send_error(404)
                    return
                kind, body = outer.routes[self.path]
                if kind == "slow-headers":  # a status line, then one header byte every 0.1 s, 60 of them
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                        for _ in range(60):
                            self.wfile.write(b"a")
                            self.wfile.flush()
                            time.sleep(0.1)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                self.send_response(200)
                if kind in ("ok", "cut", "announces-too-much"):
                    self.send_header("Content-Length", str(len(body) if kind == "ok" else
                                                           2 * len(body) if kind == "cut" else 1 << 30))
                self.end_headers()
                try:
                    if kind == "flood":  # no length announced, then far more than the file could be
                        for _ in range(64):
                            self.wfile.write(bytes(1 << 16))
                    elif kind == "trickle":  # one byte every 0.1 s, 60 of them: slower than any deadline below
                        for byte in body[:60]:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.1)
                    elif kind != "announces-too-much":
                        self.wfile.write(body)  # for "cut", half of what was announced, then close
                except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
                    pass
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, prefix: str, files: dict[str, bytes], kind: str = "ok") -> str:
        for name, body in files.items():
            self.routes[f"/{prefix}/{name}"] = (kind, body)
        return f"{self.url}/{prefix}/"


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(5)


def gz_files(raw: dict) -> dict[str, bytes]:
    return {f"{name}.gz": gzip.compress(data) for name, data in raw.items()}


@pytest.fixture
def data(tmp_path) -> Path:
    """An empty data directory (tmp_path itself also holds the test's cache)."""
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---- IDX parsing ------------------------------------------------------------------------------

def test_idx_plain_and_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain.gz").write_bytes(idx_bytes(a))  # misleading name, plain content
    (tmp_path / "packed").write_bytes(gzip.compress(idx_bytes(a)))  # no .gz, gzip content
    for name in ("plain.gz", "packed"):
        got = read_idx(tmp_path / name)
        assert got.shape == (2, 3, 4) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, a)
    assert read_idx(tmp_path / "packed", ndim=3).flags.writeable


@pytest.mark.parametrize("data, message", [
    (bytes([0, 0, 0x0A, 3]) + bytes(12), "bad magic number 0x00000a03, expected 0x0803"),
    (bytes([1, 2, 8, 3]) + bytes(12), "bad magic number 0x01020803"),
    (bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes(4), "bad magic number 0x00000801, expected 0x0803"),
    (bytes([0, 0, 0x0D, 3]) + bytes(12), "unsupported IDX data type 0x0d (float32)"),
    (bytes([0, 0, 8]), "too short"),
    (bytes([0, 0, 8, 3]) + bytes(5), "truncated header"),
    (idx_bytes(np.zeros((2, 28, 28)))[:1000], "truncated, header says 1568 data bytes (shape 2x28x28), file holds 984"),
    (idx_bytes(np.zeros((2, 28, 28))) + b"xyz", "3 trailing bytes after the 1568 data bytes"),
])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_errors_name_the_file_and_the_problem(tmp_path, data, message, compress):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz") as err:
        read_idx(path, ndim=3)
    assert message in str(err.value)


@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_corrupt_gzip_is_a_value_error_naming_the_file(tmp_path, damage):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint32).astype(np.uint8))))
    if damage == "flip":
        packed[len(packed) // 2] ^= 0xFF
    else:
        packed = packed[: len(packed) // 2]
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt gzip data"):
        read_idx(path)


# ---- local files: integrity, shapes, cache ----------------------------------------------------

def test_loads_gzipped_and_plain_files(tmp_path, fake):
    arrays, raw, checksums = fake
    write_files(tmp_path / "gz", raw)
    write_files(tmp_path / "plain", raw, compress=False)
    assert_loaded(mnist.load_data(tmp_path / "gz", checksums=checksums), arrays)
    assert_loaded(mnist.load_data(str(tmp_path / "plain"), checksums=checksums), arrays)


def test_tinynet_data_variable_is_used(tmp_path, fake, monkeypatch):
    arrays, raw, checksums = fake
    write_files(tmp_path / "shared", raw)
    monkeypatch.setenv("TINYNET_DATA", str(tmp_path / "shared"))
    assert_loaded(mnist.load_data(checksums=checksums), arrays)


def test_the_shipped_copy_comes_after_path_and_variable_and_before_the_cache(tmp_path, fake, monkeypatch):
    arrays, raw, checksums = fake
    shipped = tmp_path / "repo" / "data" / "mnist"
    write_files(shipped, raw)
    monkeypatch.setattr(mnist, "SHIPPED", shipped)
    # no path, no variable: the shipped copy, and nothing goes to the cache folder (its mirror is a closed port)
    assert_loaded(mnist.load_data(checksums=checksums), arrays)
    assert not (tmp_path / "cache" / "tinynet" / "mnist").exists() or \
        not any((tmp_path / "cache" / "tinynet" / "mnist").glob("*.gz"))
    other = {name: a.copy() for name, a in arrays.items()}
    other[mnist.TRAIN_LABELS] = np.array([1, 2, 3])
    other_raw = {name: idx_bytes(a) for name, a in other.items()}
    other_checksums = {name: hashlib.md5(data).hexdigest() for name, data in other_raw.items()}
    write_files(tmp_path / "elsewhere", other_raw)
    monkeypatch.setenv("TINYNET_DATA", str(tmp_path / "elsewhere"))
    assert_loaded(mnist.load_data(checksums=other_checksums), other)  # the variable wins over the shipped copy
    monkeypatch.delenv("TINYNET_DATA")
    assert_loaded(mnist.load_data(tmp_path / "elsewhere", checksums=other_checksums), other)  # and so does a path


def test_checksum_mismatch_names_the_file(tmp_path, fake):
    arrays, raw, checksums = fake
    raw = dict(raw, **{mnist.TEST_LABELS: idx_bytes(np.array([7, 3]))})  # valid IDX, wrong content
    write_files(tmp_path, raw)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch") as err:
        mnist.load_data(tmp_path, checksums=checksums)
    assert checksums[mnist.TEST_LABELS] in str(err.value)


def test_recompressed_identical_file_is_accepted(tmp_path, fake):
    arrays, raw, checksums = fake
    write_files(tmp_path, raw)
    path = tmp_path / f"{mnist.TRAIN_IMAGES}.gz"
    before = path.read_bytes()
    path.write_bytes(gzip.compress(raw[mnist.TRAIN_IMAGES], compresslevel=1, mtime=12345))
    assert path.read_bytes() != before
    assert_loaded(mnist.load_data(tmp_path, checksums=checksums), arrays)


@pytest.mark.parametrize("labels, message", [
    (np.array([5, 0]), r"shape \(3, 28, 28\) and .* shape \(2,\)"),
    (np.array([5, 0, 10]), "label 10, expected digits 0..9"),
])
def test_inconsistent_shapes_or_labels_are_reported(tmp_path, fake, labels, message):
    arrays, raw, checksums = fake
    raw = dict(raw, **{mnist.TRAIN_LABELS: idx_bytes(labels)})
    checksums = dict(checksums, **{mnist.TRAIN_LABELS: hashlib.md5(raw[mnist.TRAIN_LABELS]).hexdigest()})
    write_files(tmp_path, raw)
    with pytest.raises(ValueError, match=message):
        mnist.load_data(tmp_path, checksums=checksums)


def test_cache_is_used_and_invalidated_when_a_file_changes(tmp_path, fake):
    arrays, raw, checksums = fake
    write_files(tmp_path / "data", raw)
    assert_loaded(mnist.load_data(tmp_path / "data", checksums=checksums), arrays)
    cached = list((tmp_path / "cache" / "tinynet" / "mnist").glob("*.npz"))
    assert len(cached) == 1
    assert [p for p in cached[0].parent.iterdir() if p.suffix != ".npz"] == []  # no temp files left
    # A file replaced by a corrupt one (new size and mtime) must not be hidden by the cache.
    label_file = tmp_path / "data" / f"{mnist.TEST_LABELS}.gz"
    label_file.write_bytes(gzip.compress(idx_bytes(np.array([1, 1, 1]))))
    with pytest.raises(ValueError, match="checksum mismatch"):
        mnist.load_data(tmp_path / "data", checksums=checksums)


def test_unwritable_cache_dir_is_not_an_error(tmp_path, fake, monkeypatch):
    arrays, raw, checksums = fake
    write_files(tmp_path / "data", raw)
    (tmp_path / "not-a-dir").write_text("x")  # a file: nothing can be created below it, even as root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-dir"))
    for _ in range(2):
        assert_loaded(mnist.load_data(tmp_path / "data", checksums=checksums), arrays)


def test_explicit_missing_directory_lists_the_expected_files(tmp_path, server):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(FileNotFoundError) as err:
        mnist.load_data(missing, mirrors=[server.url + "/"])
    message = str(err.value)
    assert str(missing) in message
    assert all(f"{name}.gz" in message for name in NAMES)
    assert server.requests == [] and not missing.exists()


# ---- downloads from a local server ------------------------------------------------------------

def test_download_then_reuse_without_new_requests(data, fake, server, capsys):
    arrays, raw, checksums = fake
    mirror = server.serve("good", gz_files(raw))
    assert_loaded(mnist.load_data(data, mirrors=[mirror], checksums=checksums), arrays)
    assert leftovers(data) == sorted(f"{name}.gz" for name in NAMES)
    assert len(server.requests) == 4
    assert "Downloading " + mirror in capsys.readouterr().err
    assert_loaded(mnist.load_data(data, mirrors=[mirror], checksums=checksums), arrays)
    assert len(server.requests) == 4


def test_default_cache_dir_is_created_and_filled(tmp_path, fake, server):
    arrays, raw, checksums = fake
    mirror = server.serve("good", gz_files(raw))
    assert_loaded(mnist.load_data(mirrors=[mirror], checksums=checksums), arrays)
    assert len(list((tmp_path / "cache" / "tinynet" / "mnist").glob("*-ubyte.gz"))) == 4


def test_corrupted_download_leaves_nothing_behind(data, fake, server):
    arrays, raw, checksums = fake
    files = gz_files(raw)
    bad = f"{mnist.TRAIN_IMAGES}.gz"  # the first file fetched
    files[bad] = gzip.compress(idx_bytes(np.ones((3, 28, 28))))  # well-formed, wrong content
    mirror = server.serve("bad", files)
    with pytest.raises(mnist.DatasetDownloadError) as err:
        mnist.load_data(data, mirrors=[mirror], checksums=checksums)
    message = str(err.value)
    assert "checksum mismatch" in message and bad in message and str(data) in message
    assert leftovers(data) == []  # neither the bad file nor its temp file


def test_connection_cut_mid_file_leaves_nothing_behind(data, fake, server):
    arrays, raw, checksums = fake
    mirror = server.serve("cut", gz_files(raw), kind="cut")
    with pytest.raises(mnist.DatasetDownloadError, match="connection closed after") as err:
        mnist.load_data(data, mirrors=[mirror], checksums=checksums)
    assert f"{mnist.TRAIN_IMAGES}.gz" in str(err.value)
    assert leftovers(data) == []


def test_falls_back_to_the_next_mirror(data, fake, server):
    arrays, raw, checksums = fake
    good = server.serve("good", gz_files(raw))
    cut = server.serve("cut", gz_files(raw), kind="cut")
    mirrors = [closed_port_url(), server.url + "/empty/", cut, good]  # refused, 404, cut, fine
    assert_loaded(mnist.load_data(data, mirrors=mirrors, checksums=checksums), arrays)
    assert leftovers(data) == sorted(f"{name}.gz" for name in NAMES)


def test_no_reachable_mirror_fails_fast_listing_the_files(tmp_path):
    dead = [closed_port_url(), closed_port_url()]
    start = time.perf_counter()
    with pytest.raises(mnist.DatasetDownloadError) as err:
        mnist.load_data(mirrors=dead)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert str(tmp_path / "cache" / "tinynet" / "mnist") in message
    assert all(f"{name}.gz" in message for name in NAMES)
    assert all(url in message for url in dead)
    assert isinstance(err.value, OSError)


# ---- the real MNIST -------------------------------------------------------------------------

def test_real_mnist(tmp_path):
    missing = [n for n in NAMES if not any((Path(REAL_DATA) / f).is_file() for f in (n, n + ".gz"))]
    if missing:
        pytest.skip(f"{REAL_DATA} lacks {', '.join(missing)} (the repository ships them in data/mnist)")
    (x_train, y_train), (x_test, y_test) = mnist.load_data(REAL_DATA, mirrors=[])
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_train, minlength=10).tolist() == counts
    start = time.perf_counter()
    (x2, y2), _ = mnist.load_data(REAL_DATA, mirrors=[])
    assert time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(x2, x_train)
    np.testing.assert_array_equal(y2, y_train)


@pytest.mark.parametrize("damage, message", [
    (lambda data: b"\x00\x00\x0a\x03" + data[4:], "bad magic number"),
    (lambda data: data[:-100], "truncated"),
])
def test_a_damaged_data_file_says_what_is_wrong_not_only_checksum_mismatch(tmp_path, fake, damage, message):
    arrays, raw, checksums = fake
    write_files(tmp_path, dict(raw, **{mnist.TRAIN_IMAGES: damage(raw[mnist.TRAIN_IMAGES])}))
    with pytest.raises(ValueError, match=rf"train-images-idx3-ubyte\.gz.*{message}"):
        mnist.load_data(tmp_path, checksums=checksums)


# ---- bounded resources -------------------------------------------------------------------------------------
def _bomb(size: int) -> bytes:
    """A few kB of gzip that inflate to `size` bytes."""
    return gzip.compress(bytes(size), compresslevel=9)


def test_a_gzip_bomb_in_the_data_folder_stops_at_the_file_s_known_size(data, fake):
    arrays, raw, checksums = fake
    write_files(data, raw)
    bomb = _bomb(64 << 20)  # 64 MB of zeros, 64 kB on disk, named as the 60 kB labels file
    (data / f"{mnist.TRAIN_LABELS}.gz").write_bytes(bomb)
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=rf"{mnist.TRAIN_LABELS}.gz: decompresses to more than 60008 bytes"):
            mnist.load_data(data, checksums=checksums)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes were allocated for a bomb that should stop at 60 kB"


def test_read_bytes_limits_plain_and_gzipped_files(tmp_path):
    (tmp_path / "plain").write_bytes(bytes(1000))
    (tmp_path / "packed").write_bytes(gzip.compress(bytes(1000)))
    assert read_bytes(tmp_path / "plain", limit=1000) == bytes(1000)
    assert read_bytes(tmp_path / "packed", limit=1000) == bytes(1000)
    for name, verb in (("plain", "holds"), ("packed", "decompresses to")):
        with pytest.raises(ValueError, match=rf"{name}: {verb} more than 999 bytes"):
            read_bytes(tmp_path / name, limit=999)


def test_a_download_is_capped_in_bytes_whether_announced_or_not(data, fake, server):
    _, raw, checksums = fake
    flood = server.serve("flood", gz_files(raw), kind="flood")
    announced = server.serve("big", gz_files(raw), kind="announces-too-much")
    for mirror, why in ((flood, "more than the 1000000 bytes allowed"), (announced, "announces 1073741824 bytes")):
        start = time.monotonic()
        with pytest.raises(mnist.DatasetDownloadError, match=why):
            mnist.load_data(data, mirrors=[mirror], checksums=checksums, max_download_bytes=1_000_000)
        assert time.monotonic() - start < 10
        assert leftovers(data) == []  # no part file left behind


@pytest.mark.parametrize("kind", ["trickle", "slow-headers"])  # a body, or even the headers, sent a byte at a time
def test_a_download_has_an_overall_deadline(data, fake, server, kind):
    _, raw, checksums = fake
    mirror = server.serve(kind, gz_files(raw), kind=kind)
    start = time.monotonic()
    with pytest.raises(mnist.DatasetDownloadError, match=r"not done after 0.5 s"):
        mnist.load_data(data, mirrors=[mirror], checksums=checksums, download_deadline_s=0.5)
    assert time.monotonic() - start < 5
    assert leftovers(data) == []


def test_a_killed_download_s_part_file_is_removed_by_the_next_one(data, fake, server, dead_pid):
    arrays, raw, checksums = fake
    from tinynet.files import HOST
    dead = dead_pid
    stale = data / f".{mnist.TRAIN_IMAGES}.gz.{HOST}-{dead}.00000000.part"
    stale.write_bytes(b"half a download")
    live = data / f".{mnist.TRAIN_IMAGES}.gz.{HOST}-{os.getpid()}.11111111.part"  # this process: still writing
    live.write_bytes(b"in progress")
    assert_loaded(mnist.load_data(data, mirrors=[server.serve("good", gz_files(raw))], checksums=checksums), arrays)
    assert not stale.exists() and live.exists()


def test_a_downloaded_gzip_bomb_is_refused_at_the_file_s_known_size(data, fake, server):
    _, raw, checksums = fake
    files = gz_files(raw)
    files[f"{mnist.TRAIN_LABELS}.gz"] = _bomb(64 << 20)  # 64 kB on the wire, 64 MB inflated, for a 60 kB file
    mirror = server.serve("bomb", files)
    with pytest.raises(mnist.DatasetDownloadError, match=r"decompresses to more than 60008 bytes"):
        mnist.load_data(data, mirrors=[mirror], checksums=checksums)
    assert not (data / f"{mnist.TRAIN_LABELS}.gz").exists() and not list(data.glob("*.part"))


# ---- Keras's mnist.npz ------------------------------------------------------------------------------------
SMALL = {"x_train": (3, 28, 28), "y_train": (3,), "x_test": (2, 28, 28), "y_test": (2,)}
UNPICKLED = []


def _unpickled() -> None:
    UNPICKLED.append(True)


class Trap:
    """An object that, if ever unpickled, says so: loading must never run pickle."""

    def __reduce__(self):
        return (_unpickled, ())


@pytest.fixture
def npz(fake, monkeypatch):
    """Keras-style arrays of small shapes (NPZ_SHAPES set to match), keyed by Keras's names."""
    arrays, _, _ = fake
    monkeypatch.setattr(mnist, "NPZ_SHAPES", SMALL)
    return {key: arrays[name].astype(np.uint8) for key, name in zip(SMALL, NAMES)}


def npy_member(header: dict, data: bytes = b"") -> bytes:
    out = io.BytesIO()
    npy.write_array_header_1_0(out, header)
    return out.getvalue() + data


def test_npz_round_trip(tmp_path, npz, server):
    np.savez(tmp_path / "mnist.npz", **npz)
    np.savez_compressed(tmp_path / "packed.npz", **{k: np.asfortranarray(a) for k, a in npz.items()})
    for path in (tmp_path / "mnist.npz", str(tmp_path / "packed.npz")):
        (x_train, y_train), (x_test, y_test) = mnist.load_data(path, mirrors=[server.url + "/"])
        for got, key in zip((x_train, y_train, x_test, y_test), SMALL):
            assert got.dtype == np.uint8 and got.flags.c_contiguous and got.flags.writeable
            np.testing.assert_array_equal(got, npz[key])
    assert server.requests == []


def test_npz_named_by_the_variable(tmp_path, npz, monkeypatch):
    np.savez(tmp_path / "mnist.npz", **npz)
    monkeypatch.setenv("TINYNET_DATA", str(tmp_path / "mnist.npz"))
    np.testing.assert_array_equal(mnist.load_data()[1][1], npz["y_test"])


def test_npz_with_keras_s_real_shapes(tmp_path):
    arrays = {key: np.zeros(shape, np.uint8) for key, shape in mnist.NPZ_SHAPES.items()}
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)  # 47 MB of zeros, about 100 kB on disk
    (x_train, y_train), (x_test, y_test) = mnist.load_data(tmp_path / "mnist.npz")
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)


@pytest.mark.parametrize("key, value, message", [
    ("x_train", lambda a: a.astype(np.uint16), r"array x_train: dtype uint16, expected uint8"),
    ("y_test", lambda a: a.astype(np.float32), r"array y_test: dtype float32, expected uint8"),
    ("x_test", lambda a: a[:, :, :27], r"array x_test: shape \(2, 28, 27\), expected \(2, 28, 28\)"),
    ("y_train", lambda a: a[:2], r"array y_train: shape \(2,\), expected \(3,\)"),
    ("y_train", lambda a: np.array([5, 0, 10], np.uint8), "array y_train holds label 10, expected digits 0..9"),
])
def test_npz_wrong_array_names_file_array_expected_and_received(tmp_path, npz, key, value, message):
    np.savez(tmp_path / "mnist.npz", **dict(npz, **{key: value(npz[key])}))
    with pytest.raises(ValueError, match=rf"mnist.npz: {message}"):
        mnist.load_data(tmp_path / "mnist.npz")


def test_npz_with_an_array_missing_or_one_too_many(tmp_path, npz):
    np.savez(tmp_path / "missing.npz", **{k: a for k, a in npz.items() if k != "y_test"})
    with pytest.raises(ValueError, match=r"missing.npz: no array y_test; expected the arrays x_train, y_train"):
        mnist.load_data(tmp_path / "missing.npz")
    np.savez(tmp_path / "extra.npz", extra=np.zeros(1), **npz)
    with pytest.raises(ValueError, match=r"extra.npz: unexpected members extra.npy"):
        mnist.load_data(tmp_path / "extra.npz")


def test_a_pickled_object_array_is_refused_without_unpickling(tmp_path, npz):
    np.savez(tmp_path / "mnist.npz", **dict(npz, x_train=np.array([Trap()], dtype=object)))
    with pytest.raises(ValueError, match="array x_train: dtype object, expected uint8"):
        mnist.load_data(tmp_path / "mnist.npz")
    assert UNPICKLED == []


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    path = tmp_path / "mnist.npz"
    huge = {"descr": "|u1", "fortran_order": False, "shape": (10 ** 6, 10 ** 6)}  # a terabyte, claimed in 128 bytes
    with zipfile.ZipFile(path, "w") as archive:
        for key, shape in mnist.NPZ_SHAPES.items():  # Keras's real table: nothing patched
            archive.writestr(f"{key}.npy", npy_member(huge if key == "x_train" else dict(huge, shape=shape)))
    assert path.stat().st_size < 2000
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(ValueError, match=r"array x_train: shape \(1000000, 1000000\), expected \(60000, 28, 28\)"):
            mnist.load_data(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1 and peak < 1 << 20


@pytest.mark.parametrize("member, message", [
    (lambda h: npy_member(h, bytes(100)), r"truncated, 100 of the 2352 data bytes"),
    (lambda h: npy_member(h, bytes(2352 + 5)), r"more bytes than the 2352 its header announces"),
    (lambda h: npy_member(h, bytes(2352 + mnist.NPY_HEADER_MAX)), r"bytes, expected at most"),
    (lambda h: b"\x93NUMPY\x03\x00" + bytes(20), r"not a valid .npy array \(.npy format version 3.0"),
    (lambda h: b"not an npy file at all", r"not a valid .npy array"),
])
def test_a_damaged_npz_member_says_what_is_wrong(tmp_path, npz, member, message):
    path = tmp_path / "mnist.npz"
    np.savez(path, **{k: a for k, a in npz.items() if k != "x_train"})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("x_train.npy", member({"descr": "|u1", "fortran_order": False, "shape": (3, 28, 28)}))
    with pytest.raises(ValueError, match=rf"mnist.npz: array x_train: .*{message}"):
        mnist.load_data(path)


def test_a_file_that_is_not_an_npz_or_is_missing(tmp_path, server):
    (tmp_path / "mnist.npz").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match=r"mnist.npz: not a readable .npz file"):
        mnist.load_data(tmp_path / "mnist.npz")
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        mnist.load_data(tmp_path / "nowhere.npz", mirrors=[server.url + "/"])
    assert server.requests == [] and not (tmp_path / "nowhere.npz").exists()
