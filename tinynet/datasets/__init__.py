"""Datasets with the Keras calling convention, e.g. `tinynet.datasets.mnist.load_data()`."""
from tinynet.datasets import mnist

__all__ = ["mnist"]
