"""Datasets with the Keras calling convention, e.g. `tinynet.datasets.mnist.load_data()`."""
from tinynet.datasets import fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist"]
