"""tinynet: a small neural-network library with every forward and backward pass written out.

    from tinynet import Sequential
    from tinynet.layers import Dense, Activation, Dropout
"""
from tinynet import datasets, engine, gradcheck, layers, losses, optimizers, utils
from tinynet.backend import get_backend, set_backend, set_seed
from tinynet.model import Sequential, load_model
from tinynet.training import History

__version__ = "0.1.0"
__all__ = ["Sequential", "History", "load_model", "set_backend", "get_backend", "set_seed",
           "layers", "losses", "optimizers", "utils", "gradcheck", "datasets", "engine"]
