"""The model file format: configuration (JSON), weights and optimizer state (arrays) in one file.

The file is a NumPy .npz archive (a zip of .npy arrays), read back with
allow_pickle=False so loading a file never runs code from it. It is written to
a temporary file first and renamed into place, so a crash never leaves half a
model on disk. This module knows the format, not the model: `Sequential.save`
and `tinynet.load_model` turn a model into these parts and back (`get_config` /
`from_config`).

    config          uint8 bytes of a JSON object: {"format": "tinynet-model", "version": 2,
                    "model": Sequential.get_config(), "compile": Sequential.get_compile_config()}
    params          the flat weight vector
    optimizer.NAME  the optimizer's state in Keras's form: "iterations", then its slots (Adam: m, v)
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from tinynet import backend

FORMAT = "tinynet-model"
VERSION = 2  # 1: tinynet 0.1 before the engine split, with Adam's moments stored as running sums
OPTIMIZER = "optimizer."  # prefix of the optimizer state's arrays


def write_model(path: str | os.PathLike, config: dict[str, Any], params: Any,
                optimizer_state: dict[str, np.ndarray] | None) -> None:
    """Write one model file: `config` (JSON: {"model": ..., "compile": ...}), the flat weights, the optimizer's state."""
    header = {"format": FORMAT, "version": VERSION, **config}
    arrays = {"config": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), "params": backend.to_numpy(params)}
    arrays.update({OPTIMIZER + name: value for name, value in (optimizer_state or {}).items()})
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


def read_model(path: str | os.PathLike) -> tuple[dict[str, Any], np.ndarray, dict[str, np.ndarray]]:
    """The config ({"model": ..., "compile": ...}), flat weights and optimizer state of a file, as version 2 has them."""
    path = os.fspath(path)
    arrays, header = _read(path)
    version = header.get("version")
    try:
        if version == 1:
            header, arrays = _upgrade_from_version_1(header, arrays)
        elif version != VERSION:
            raise ValueError(f"format version {version!r}; this tinynet reads versions 1 and {VERSION}")
        state = {name[len(OPTIMIZER):]: value for name, value in arrays.items() if name.startswith(OPTIMIZER)}
        return {"model": header["model"], "compile": header["compile"]}, arrays["params"], state
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a valid tinynet model file ({type(err).__name__}: {err})") from None


def _upgrade_from_version_1(header: dict[str, Any],
                            arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Version 1 kept the architecture at the top level, Adam's moments as m / (1 - beta_1) and v / (1 - beta_2)."""
    model = {"name": header["name"], "input_shape": header["input_shape"],
             "layers": [{"class_name": entry["class"], "config": entry["config"]} for entry in header["layers"]]}
    optimizer = (header["compile"] or {}).get("optimizer", {})
    if optimizer.get("name") == "adam":
        for old, new, beta in (("m_sum", "m", optimizer["beta_1"]), ("v_sum", "v", optimizer["beta_2"])):
            if OPTIMIZER + old in arrays:
                arrays[OPTIMIZER + new] = arrays.pop(OPTIMIZER + old) * (1 - beta)
    return {"model": model, "compile": header["compile"]}, arrays


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
