"""tinynet: a small neural-network library with every forward and backward pass written out.

    from tinynet import Sequential
    from tinynet.layers import Dense, Activation, Dropout
"""
from tinynet import (activations, callbacks, datasets, engine, gradcheck, initializers, layers, losses, metrics, optimizers,
                     regularizers, schedules, utils)
from tinynet.backend import get_backend, set_backend, set_seed
from tinynet.layers import Input
from tinynet.model import Sequential, load_model
from tinynet.callbacks import History

__version__ = "0.1.0"
__all__ = ["Sequential", "Input", "History", "load_model", "set_backend", "get_backend", "set_seed",
           "layers", "activations", "callbacks", "losses", "metrics", "optimizers", "schedules", "regularizers", "initializers",
           "utils", "gradcheck", "datasets", "engine"]
