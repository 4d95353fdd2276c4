"""Fashion-MNIST: MNIST's machinery with its own folder, variable, mirrors and SHA-256 of the .gz files.

No test touches the network: tiny fake files are written by the tests, with a matching checksum table,
and downloads come from the local HTTP server of test_mnist_loader.
"""
import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

import test_mnist_loader
from test_mnist_loader import NAMES, closed_port_url, idx_bytes
from tinynet import datasets
from tinynet.datasets import fashion_mnist

server = test_mnist_loader.server  # the fixture: a local HTTP server, stopped after the test


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test away from the real cache, the variables and the default mirrors."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.delenv(fashion_mnist.VARIABLE, raising=False)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", [closed_port_url()])


@pytest.fixture
def fake():
    """Tiny Fashion-MNIST lookalike: arrays, their .gz files as 'published', and the SHA-256 of those."""
    rng = np.random.default_rng(1)
    arrays = dict(zip(NAMES, (rng.integers(0, 256, (3, 28, 28)), np.array([9, 0, 3]),
                              rng.integers(0, 256, (2, 28, 28)), np.array([8, 1]))))
    packed = {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}
    checksums = {name: hashlib.sha256(data).hexdigest() for name, data in packed.items()}
    return arrays, packed, checksums


def write(directory: Path, packed: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in packed.items():
        (directory / f"{name}.gz").write_bytes(data)
    return directory


def assert_loaded(result, arrays) -> None:
    for got, name in zip((*result[0], *result[1]), NAMES):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[name])


def test_exposed_with_keras_s_class_names():
    assert datasets.fashion_mnist is fashion_mnist
    assert fashion_mnist.CLASS_NAMES == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert all(len(digest) == 64 for digest in fashion_mnist.CHECKSUMS.values())
    assert fashion_mnist.MIRRORS != []  # the fixture's closed port; the real table starts with Keras's mirror


def test_loads_from_a_folder_then_from_the_parsed_cache(tmp_path, fake):
    arrays, packed, checksums = fake
    folder = write(tmp_path / "fashion", packed)
    for _ in range(2):
        assert_loaded(fashion_mnist.load_data(folder, checksums=checksums), arrays)
    assert len(list((tmp_path / "cache" / "tinynet" / "fashion-mnist").glob("parsed-*.npz"))) == 1


def test_its_own_variable_is_used_and_mnist_s_is_not(tmp_path, fake, monkeypatch):
    arrays, packed, checksums = fake
    monkeypatch.setenv("TINYNET_DATA", str(write(tmp_path / "mnist-folder", packed)))
    with pytest.raises(fashion_mnist.mnist.DatasetDownloadError):
        fashion_mnist.load_data(checksums=checksums)
    monkeypatch.setenv("TINYNET_FASHION_MNIST_DATA", str(tmp_path / "mnist-folder"))
    assert_loaded(fashion_mnist.load_data(checksums=checksums), arrays)


def test_offline_failure_names_the_four_files_and_the_folder(tmp_path):
    dead = [closed_port_url(), closed_port_url()]
    start = time.perf_counter()
    with pytest.raises(OSError) as err:
        fashion_mnist.load_data(mirrors=dead)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert message.startswith("Fashion-MNIST: ")
    assert str(tmp_path / "cache" / "tinynet" / "fashion-mnist") in message
    assert all(f"{name}.gz" in message for name in NAMES)
    assert all(url in message for url in dead) and "TINYNET_FASHION_MNIST_DATA" in message


@pytest.mark.parametrize("damage", [
    lambda data, raw: gzip.compress(raw, compresslevel=1, mtime=0),  # same content, other .gz bytes
    lambda data, raw: gzip.compress(raw[:-1] + b"\x07", mtime=0),  # a label changed
])
def test_checksum_mismatch_is_refused(tmp_path, fake, damage):
    arrays, packed, checksums = fake
    name = fashion_mnist.TEST_LABELS
    raw = gzip.decompress(packed[name])
    folder = write(tmp_path / "fashion", dict(packed, **{name: damage(packed[name], raw)}))
    with pytest.raises(ValueError, match=rf"{name}\.gz: checksum mismatch, expected sha256 {checksums[name]} "
                                         r"of the \.gz file as published"):
        fashion_mnist.load_data(folder, checksums=checksums)


def test_gunzipped_files_are_not_used(tmp_path, fake):
    _, packed, checksums = fake
    folder = tmp_path / "fashion"
    folder.mkdir()
    for name, data in packed.items():
        (folder / name).write_bytes(gzip.decompress(data))
    with pytest.raises(fashion_mnist.mnist.DatasetDownloadError, match="gzipped, as published"):
        fashion_mnist.load_data(folder, checksums=checksums)


def test_download_into_the_cache_falling_back_to_the_next_mirror(tmp_path, fake, server):
    arrays, packed, checksums = fake
    good = server.serve("good", {f"{name}.gz": data for name, data in packed.items()})
    mirrors = [closed_port_url(), server.url + "/empty/", good]
    assert_loaded(fashion_mnist.load_data(mirrors=mirrors, checksums=checksums), arrays)
    cached = tmp_path / "cache" / "tinynet" / "fashion-mnist"
    assert sorted(p.name for p in cached.glob("*.gz")) == sorted(f"{name}.gz" for name in NAMES)
    assert all((cached / f"{name}.gz").read_bytes() == data for name, data in packed.items())


def test_a_download_with_the_wrong_bytes_is_refused_and_not_kept(tmp_path, fake, server):
    _, packed, checksums = fake
    files = {f"{name}.gz": gzip.compress(gzip.decompress(data), compresslevel=1) for name, data in packed.items()}
    with pytest.raises(fashion_mnist.mnist.DatasetDownloadError, match="checksum mismatch, expected sha256"):
        fashion_mnist.load_data(tmp_path, mirrors=[server.serve("recompressed", files)], checksums=checksums)
    assert list(tmp_path.glob("*-ubyte*")) == []
