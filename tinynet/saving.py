"""One file per model: architecture (JSON), weights and optimizer state (arrays).

The file is a NumPy .npz archive (a zip of .npy arrays), read back with
allow_pickle=False so loading a file never runs code from it. It is written to
a temporary file first and renamed into place, so a crash never leaves half a
model on disk.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from tinynet import backend, layers, losses, optimizers

FORMAT = "tinynet-model"
VERSION = 1


def save_model(model: Any, path: str | os.PathLike) -> None:
    """Write `model` to `path` (any extension; `.tinynet` or `.npz` are good choices)."""
    model._require_built("save")
    config = {
        "format": FORMAT, "version": VERSION, "name": model.name, "input_shape": list(model.input_shape),
        "layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in model.layers],
        "compile": None if model.loss is None else {
            "loss": model.loss.get_config(), "optimizer": model.optimizer.get_config(), "metrics": model.metrics},
    }
    arrays = {"config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8),
              "params": backend.to_numpy(model.params)}
    if model.optimizer is not None:
        arrays.update({"optimizer." + k: v for k, v in model.optimizer.get_state().items()})
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-", suffix=".tinynet")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a saved model is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_model(path: str | os.PathLike) -> Any:
    """Rebuild a model saved with `model.save(path)`: same layers, weights, and optimizer state."""
    from tinynet.model import Sequential
    path = os.fspath(path)
    arrays, config = _read(path)
    try:
        with backend.using(dtype=arrays["params"].dtype):  # a float64 model comes back in float64
            model = Sequential(name=config["name"])
            for entry in config["layers"]:
                model.add(layers.LAYERS[entry["class"]](**entry["config"]))
            model.build(config["input_shape"])
            if model.params.shape != arrays["params"].shape:
                raise ValueError(f"{model.params.shape[0]} weights in the architecture, "
                                 f"{arrays['params'].shape[0]} stored")
            model.params[...] = backend.to_device(arrays["params"], model.params.dtype)
            if config["compile"]:
                c = config["compile"]
                model.compile(optimizer=optimizers.from_config(c["optimizer"]),
                              loss=losses.LOSSES[c["loss"]["name"]](from_logits=c["loss"]["from_logits"]),
                              metrics=c["metrics"])
                state = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("optimizer.")}
                for name, value in state.items():
                    if name != "iterations" and value.shape != arrays["params"].shape:
                        raise ValueError(f"optimizer state {name} has shape {value.shape}, "
                                         f"the weights {arrays['params'].shape}")
                model.optimizer.set_state(state)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a valid tinynet model file ({type(err).__name__}: {err})") from None
    return model


def _read(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """All arrays of the archive, and its JSON config; a clear ValueError for anything else."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:  # our handle: closed even on a bad zip
            if not isinstance(archive, np.lib.npyio.NpzFile) or "config" not in archive.files:
                raise ValueError("no tinynet config inside")
            arrays = {name: archive[name] for name in archive.files}
        config = json.loads(arrays.pop("config").tobytes().decode())
    except FileNotFoundError:
        raise
    except Exception as err:  # zip, npy, JSON and decode errors all mean: not a (complete) tinynet file
        raise ValueError(f"{path}: not a tinynet model file, or a truncated one ({type(err).__name__}: {err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tinynet model file (format {config.get('format')!r} is not {FORMAT!r})"
                         if isinstance(config, dict) else f"{path}: not a tinynet model file")
    return arrays, config
