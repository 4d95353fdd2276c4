"""The model file format: configuration (JSON), weights and optimizer state (arrays) in one file.

The file is a NumPy .npz archive (a zip of .npy arrays). This module knows the format, not
the model: `Sequential.save` and `tinynet.load_model` turn a model into these parts and back
(`get_config` / `from_config`).

    config          uint8 bytes of a JSON object: {"format": "tinynet-model", "version": 2,
                    "model": Sequential.get_config(), "compile": Sequential.get_compile_config(),
                    "random_states": the generators of layers that have their own (Dropout(seed=...))}
    params          the flat weight vector
    optimizer.NAME  the optimizer's state in Keras's form: "iterations", then its slots (Adam: m, v)

Writing is atomic (tinynet/files.py): a crash never leaves half a model under the real name.
Reading trusts nothing in the file: no member is unpickled; the JSON is read only up to
CONFIG_LIMIT bytes; the architecture is checked, and its number of weights counted, before any
array is read; every array must declare exactly the shape that count gives (so none can be
larger than the model needs), and members the format does not have are refused unread.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Any, BinaryIO, Callable

import numpy as np

from tinynet import backend
from tinynet.files import atomic_write

FORMAT = "tinynet-model"
VERSION = 2  # 1: tinynet 0.1 before the engine split, with Adam's moments stored as running sums
OPTIMIZER = "optimizer."  # prefix of the optimizer state's arrays


CONFIG_LIMIT = 1 << 20  # bytes of JSON; a model's architecture takes a few kB


def write_model(path: str | os.PathLike, config: dict[str, Any], params: Any,
                optimizer_state: dict[str, np.ndarray] | None) -> None:
    """Write one model file: `config` (JSON: {"model": ..., "compile": ...}), the flat weights, the optimizer's state."""
    header = {"format": FORMAT, "version": VERSION, **config}
    arrays = {"config": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), "params": backend.to_numpy(params)}
    arrays.update({OPTIMIZER + name: value for name, value in (optimizer_state or {}).items()})
    with atomic_write(path, suffix=".tinynet-tmp") as f:
        np.savez(f, **arrays)


def read_model(path: str | os.PathLike, count_params: Callable[[dict[str, Any]], int],
               ) -> tuple[dict[str, Any], np.ndarray, dict[str, np.ndarray]]:
    """The config ({"model", "compile", "random_states"}), flat weights and optimizer state of a file, as version 2.

    `count_params(config["model"])` must say how many weights the architecture holds without
    creating them (raising ValueError for an architecture it refuses): every array is checked
    against that count before it is read.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            members = {info.filename: info for info in archive.infolist()}
            header = _read_header(archive, members)
            try:
                return _read_arrays(archive, members, header, count_params)
            except (KeyError, TypeError, ValueError, OverflowError) as err:
                raise _Invalid(f"{type(err).__name__}: {err}") from None
    except (FileNotFoundError, IsADirectoryError):
        raise
    except _Invalid as err:  # a tinynet file whose contents do not hold together
        raise ValueError(f"{path}: not a valid tinynet model file ({err})") from None
    except Exception as err:  # zip, npy, JSON and decode errors: not a (complete) tinynet file
        raise ValueError(f"{path}: not a tinynet model file, or a truncated one ({type(err).__name__}: {err})") from None


class _Invalid(Exception):
    pass


def _read_header(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, Any]:
    if "config.npy" not in members:
        raise ValueError("no tinynet config inside")
    with archive.open(members["config.npy"]) as f:
        raw = _read_npy(f, "config", lambda shape: len(shape) == 1 and shape[0] <= CONFIG_LIMIT,
                        f"a JSON text of at most {CONFIG_LIMIT} bytes", np.dtype(np.uint8))
    header = json.loads(raw.tobytes().decode())
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"format {found!r} is not {FORMAT!r}")
    return header


def _read_arrays(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], header: dict[str, Any],
                 count_params: Callable[[dict[str, Any]], int]) -> tuple[dict[str, Any], np.ndarray, dict]:
    version = header.get("version")
    if version is not VERSION and not (version == 1 and type(version) is int):
        raise ValueError(f"format version {version!r}; this tinynet reads versions 1 and {VERSION}")
    if version == 1:
        header = _upgrade_header_from_version_1(header)
    n = count_params(header["model"])
    arrays = {}
    for name, info in members.items():
        if name == "config.npy":
            continue
        key = name[:-len(".npy")]
        if not name.endswith(".npy") or not (key == "params" or key.startswith(OPTIMIZER)):
            raise ValueError(f"unexpected member {name!r} (a tinynet file holds config, params and optimizer.*)")
        scalar = key == OPTIMIZER + "iterations"
        label = "params (the weights)" if key == "params" else "optimizer state " + key[len(OPTIMIZER):]
        with archive.open(info) as f:
            arrays[key] = _read_npy(f, label, (lambda shape: shape == ()) if scalar else (lambda shape: shape == (n,)),
                                    "a single number" if scalar else f"{n} numbers, as many as the weights in the architecture")
    if "params" not in arrays:
        raise ValueError("no params (weights) inside")
    if version == 1:
        _upgrade_state_from_version_1(header, arrays)
    state = {key[len(OPTIMIZER):]: value for key, value in arrays.items() if key.startswith(OPTIMIZER)}
    config = {"model": header["model"], "compile": header["compile"], "random_states": header.get("random_states", {})}
    return config, arrays["params"], state


def _read_npy(f: BinaryIO, name: str, shape_ok: Callable[[tuple], bool], expected: str,
              dtype: np.dtype | None = None) -> np.ndarray:
    """One .npy member, read only after its header shows it is what the format expects (never a pickle)."""
    major, minor = np.lib.format.read_magic(f)
    if (major, minor) not in ((1, 0), (2, 0)):
        raise ValueError(f"{name} is in .npy format {major}.{minor}, which tinynet does not write")
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, found = read_header(f)  # numpy caps the header's size itself
    if found.hasobject or (dtype is not None and found != dtype) or found.kind not in "biuf":
        raise ValueError(f"{name} holds {found}, expected {dtype or 'numbers'}")
    if not shape_ok(shape):
        raise ValueError(f"{name} has shape {shape}, expected {expected}")
    size = math.prod(shape) * found.itemsize
    data = f.read(size)
    if len(data) != size:
        raise ValueError(f"{name} has {len(data)} of its {size} bytes (the file is cut short)")
    return np.frombuffer(data, found).reshape(shape).copy()


def _upgrade_header_from_version_1(header: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the architecture at the top level."""
    model = {"name": header["name"], "input_shape": header["input_shape"],
             "layers": [{"class_name": entry["class"], "config": entry["config"]} for entry in header["layers"]]}
    return {"model": model, "compile": header["compile"]}


def _upgrade_state_from_version_1(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Version 1 kept Adam's moments as running sums m / (1 - beta_1) and v / (1 - beta_2)."""
    optimizer = (header["compile"] or {}).get("optimizer", {})
    if optimizer.get("name") == "adam":
        for old, new, beta in (("m_sum", "m", optimizer["beta_1"]), ("v_sum", "v", optimizer["beta_2"])):
            if OPTIMIZER + old in arrays:
                arrays[OPTIMIZER + new] = arrays.pop(OPTIMIZER + old) * (1 - beta)
