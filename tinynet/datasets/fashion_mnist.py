"""Fashion-MNIST: Zalando's article images, with the same contract as `keras.datasets.fashion_mnist.load_data()`.

    (x_train, y_train), (x_test, y_test) = load_data()

gives uint8 arrays of shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,); label i is CLASS_NAMES[i].

The four files have MNIST's names and format, so MNIST's machinery reads them (`mnist.Source`):
they are looked for, in this order, in the `path` argument; $TINYNET_FASHION_MNIST_DATA (a variable
of its own: $TINYNET_DATA names MNIST's folder); the per-user cache ($XDG_CACHE_HOME/tinynet/fashion-mnist
or ~/.cache/tinynet/fashion-mnist), where missing files are downloaded from the first mirror in MIRRORS
that works. The repository ships no copy.

Integrity: the SHA-256 of each .gz file must equal the published value. Unlike MNIST's, the published
checksums are of the .gz files themselves, so the files must stay gzipped, byte for byte as published.

| file | bytes (.gz) | SHA-256 of the .gz | bytes decompressed |
| --- | --- | --- | --- |
| train-images-idx3-ubyte.gz | 26421880 | 3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84 | 47040016 |
| train-labels-idx1-ubyte.gz | 29515 | a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845 | 60008 |
| t10k-images-idx3-ubyte.gz | 4422102 | 346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073 | 7840016 |
| t10k-labels-idx1-ubyte.gz | 5148 | 67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5 | 10008 |

(The same values are pinned by Keras's fashion_mnist.py and TensorFlow Datasets' checksum list, which
also gives the sizes; Zalando's README publishes the MD5s of the same files.)

Licence: the copyright of Fashion-MNIST is held by Zalando SE; it is available under the MIT licence.
"""
from __future__ import annotations

import os

from tinynet.datasets import mnist

TRAIN_IMAGES, TRAIN_LABELS = mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS
TEST_IMAGES, TEST_LABELS = mnist.TEST_IMAGES, mnist.TEST_LABELS

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# SHA-256 of the .gz files as published (sizes in the table above).
CHECKSUMS = {
    TRAIN_IMAGES: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    TRAIN_LABELS: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    TEST_IMAGES: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    TEST_LABELS: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras's
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]
VARIABLE = "TINYNET_FASHION_MNIST_DATA"  # names a folder that holds the four Fashion-MNIST files


def source(checksums: dict[str, str] | None = None, mirrors: list[str] | None = None) -> mnist.Source:
    """Fashion-MNIST's Source, read from this module's tables at each call (tests replace them)."""
    return mnist.Source("Fashion-MNIST", "fashion-mnist", VARIABLE, CHECKSUMS if checksums is None else checksums,
                        MIRRORS if mirrors is None else mirrors, algorithm="sha256", hashed="file", labels="classes")


def load_data(path: str | os.PathLike | None = None, *, mirrors: list[str] | None = None,
              checksums: dict[str, str] | None = None, max_download_bytes: int = mnist.MAX_DOWNLOAD_BYTES,
              download_deadline_s: float = mnist.DOWNLOAD_DEADLINE_S) -> mnist.Split:
    """Return (x_train, y_train), (x_test, y_test) as uint8 arrays, downloading the files if needed.

    `path` is a folder holding the four .gz files. `mirrors` replaces MIRRORS and `checksums` (SHA-256
    of the .gz files) replaces CHECKSUMS; the limits are those of `tinynet.datasets.mnist.load_data`.
    """
    limits = mnist.Limits(max_download_bytes, download_deadline_s)
    return mnist.load_idx_dataset(path, source(checksums, mirrors), limits)
