"""The model file format: configuration (JSON), weights and optimizer state (arrays) in one file.

The file is a NumPy .npz archive (a zip of .npy arrays). This module knows the format, not
the model: `Sequential.save` and `tinynet.load_model` turn a model into these parts and back
(`get_config` / `from_config`).

    config          uint8 bytes of a JSON object: {"format": "tinynet-model", "version": 2,
                    "model": Sequential.get_config(), "compile": Sequential.get_compile_config(),
                    "random_states": the generators of layers that have their own (Dropout(seed=...))}
    params          the flat weight vector
    non_trainable   the flat vector of what layers keep without training it (BatchNormalization's
                    moving mean and variance), when the model has any
    optimizer.NAME  the optimizer's state in Keras's form: "iterations", then its slots (Adam: m, v)

Writing is atomic (tinynet/files.py): a crash never leaves half a model under the real name.
Reading trusts nothing in the file: no member is unpickled; the JSON is read only up to
CONFIG_LIMIT bytes; the architecture is checked, and its number of weights counted, before any
array is read; every array must declare exactly the shape that count gives (so none can be
larger than the model needs), and members the format does not have are refused unread.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

from tinynet import backend
from tinynet.files import atomic_write

FORMAT = "tinynet-model"
VERSION = 2  # 1: tinynet 0.1 before the engine split, with Adam's moments stored as running sums
OPTIMIZER = "optimizer."  # prefix of the optimizer state's arrays


_custom_objects: dict[str, Any] = {}  # what the load_model running now was given (see custom_object_scope)


@contextlib.contextmanager
def custom_object_scope(objects: dict[str, Any] | None) -> Iterator[None]:
    """While it lasts, names in a model's configuration may also mean your own objects (as in Keras):
    layer classes, activation functions, Loss classes, metric functions. load_model uses it for custom_objects."""
    if objects is not None and not isinstance(objects, dict):
        raise TypeError(f"custom_objects must be a dict {{'Name': object}}, got {type(objects).__name__}")
    saved = dict(_custom_objects)
    _custom_objects.update(objects or {})
    try:
        yield
    finally:
        _custom_objects.clear()
        _custom_objects.update(saved)


def get_custom_object(name: str) -> Any:
    """The object called `name` in the current custom_object_scope, or None."""
    return _custom_objects.get(name)


def from_class_and_config(identifier: dict[str, Any], base: type, classes: dict[str, type], owner: str) -> Any:
    """The object a {"class_name", "config"} dict describes: one of `classes`, a subclass of `base` defined so
    far (your own, found by its name), or one named in load_model's custom_objects."""
    kind = base.__name__.lower()
    if set(identifier) != {"class_name", "config"}:
        raise ValueError(f"{owner}: {'an' if kind[0] in 'aeiou' else 'a'} {kind} dict needs exactly the keys 'class_name' and 'config' "
                         f"(as serialize() writes it), got keys {sorted(identifier)}")
    name = identifier["class_name"]
    cls = classes.get(name) or _subclasses(base).get(name) or get_custom_object(name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{owner}: unknown {kind} class {name!r}; valid classes are {', '.join(classes)} "
                         f"or a subclass of {base.__module__}.{base.__name__} defined before loading")
    return cls.from_config(identifier["config"])


def _subclasses(base: type) -> dict[str, type]:
    """Every subclass of `base` defined so far, by class name."""
    found, todo = {}, [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            todo.append(sub)
    return found


KERAS_EXTENSIONS = (".keras", ".h5", ".hdf5")


def check_extension(path: str | os.PathLike, what: str) -> None:
    """Refuse Keras's file names: a .keras or .h5 file that Keras cannot read would mislead."""
    name = os.fspath(path)
    if name.lower().endswith(KERAS_EXTENSIONS):
        stem = name[:name.rfind(".")]
        raise ValueError(f"{what}: {name!r} is a Keras file name, but tinynet writes its own format, which Keras "
                         f"cannot read; name the file {stem}.tinynet")


CONFIG_LIMIT = 1 << 20  # bytes of JSON; a model's architecture takes a few kB
HEADER_LIMIT = 1 << 16  # bytes of an .npy member's magic and header; NumPy writes about a hundred


def write_model(path: str | os.PathLike, config: dict[str, Any], params: Any,
                optimizer_state: dict[str, np.ndarray] | None, non_trainable: Any = None) -> None:
    """Write one model file: `config` (JSON: {"model": ..., "compile": ...}), the flat weights, the optimizer's
    state, and the layers' non-trainable vector where it is not empty."""
    header = {"format": FORMAT, "version": VERSION, **config}
    arrays = {"config": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), "params": backend.to_numpy(params)}
    if non_trainable is not None and non_trainable.size:
        arrays["non_trainable"] = backend.to_numpy(non_trainable)
    arrays.update({OPTIMIZER + name: value for name, value in (optimizer_state or {}).items()})
    with atomic_write(path, suffix=".tinynet-tmp") as f:
        np.savez(f, **arrays)


def read_model(path: str | os.PathLike, expected_arrays: Callable[[dict[str, Any]], dict[str, tuple[int, ...]]],
               ) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """The config ({"model", "compile", "random_states"}), flat weights, non-trainable vector (None where the
    model has none) and optimizer state of a file, as version 2.

    `expected_arrays({"model": ..., "compile": ...})` must name the arrays the configuration calls
    for and their shapes ("params", "optimizer.iterations", "optimizer.m", ...), worked out without
    creating them and raising ValueError for a configuration it refuses. Only those members are
    read, each only after its header shows exactly that shape.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            members = {}
            for info in archive.infolist():
                if info.filename in members:
                    raise _Invalid(f"member {info.filename!r} appears twice")
                members[info.filename] = info
            header = _read_header(archive, members)
            try:
                return _read_arrays(archive, members, header, expected_arrays)
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
        raw = _read_npy(f, "config", (CONFIG_LIMIT,), f"a JSON text of at most {CONFIG_LIMIT} bytes", np.uint8)
    header = json.loads(raw.tobytes().decode())
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"format {found!r} is not {FORMAT!r}")
    return header


V1_NAMES = {OPTIMIZER + "m_sum": OPTIMIZER + "m", OPTIMIZER + "v_sum": OPTIMIZER + "v"}  # and rescaled, below


def _read_arrays(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], header: dict[str, Any],
                 expected_arrays: Callable[[dict[str, Any]], dict[str, tuple[int, ...]]],
                 ) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None, dict]:
    version = header.get("version")
    if type(version) is not int or version not in (1, VERSION):  # not "1", 1.0 or True
        raise ValueError(f"format version {version!r}; this tinynet reads versions 1 and {VERSION}")
    if version == 1:
        header = _upgrade_header_from_version_1(header)
    expected = expected_arrays({"model": header["model"], "compile": header["compile"]})
    arrays = {}
    for name, info in members.items():
        if name == "config.npy":
            continue
        key = name[:-len(".npy")] if name.endswith(".npy") else name
        key = V1_NAMES.get(key, key) if version == 1 else key
        if key not in expected or key in arrays:
            raise ValueError(f"unexpected member {name!r} (this model's file holds config and "
                             f"{', '.join(expected)})")
        label = {"params": "params (the weights)", "non_trainable": "non_trainable (the layers' moving statistics)"
                 }.get(key, "optimizer state " + key[len(OPTIMIZER):])
        shape = expected[key]
        with archive.open(info) as f:
            arrays[key] = _read_npy(f, label, shape, "a single number" if shape == () else
                                    f"{shape[0]} numbers, as many as the architecture holds")
    missing = [name for name in ("params", "non_trainable") if name in expected and name not in arrays]
    if missing:
        raise ValueError(f"no {missing[0]} inside")
    if version == 1:
        _upgrade_state_from_version_1(header, arrays)
    state = {key[len(OPTIMIZER):]: value for key, value in arrays.items() if key.startswith(OPTIMIZER)}
    random_states = header.get("random_states", {})
    if not isinstance(random_states, dict):
        raise ValueError(f"random_states must map layer names to generator states, got {type(random_states).__name__}")
    return ({"model": header["model"], "compile": header["compile"], "random_states": random_states},
            arrays["params"], arrays.get("non_trainable"), state)


class _Budget:
    """A stream that refuses to read more than `limit` bytes in all: a header cannot claim gigabytes."""

    def __init__(self, stream: BinaryIO, limit: int, name: str) -> None:
        self.stream, self.left, self.name = stream, limit, name

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            raise ValueError(f"{self.name} has a header longer than the {HEADER_LIMIT} bytes an .npy header needs")
        self.left -= size
        return self.stream.read(size)


def _read_npy(f: BinaryIO, name: str, shape: tuple[int, ...], expected: str, dtype: Any = None) -> np.ndarray:
    """One .npy member, read only after its header shows the `shape` the format expects (never a pickle).

    The config's shape is an upper bound: a JSON text of up to CONFIG_LIMIT bytes.
    """
    head = _Budget(f, HEADER_LIMIT, name)
    major, minor = np.lib.format.read_magic(head)
    if (major, minor) not in ((1, 0), (2, 0)):
        raise ValueError(f"{name} is in .npy format {major}.{minor}, which tinynet does not write")
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    found_shape, _, found = read_header(head)
    if found.hasobject or (dtype is not None and found != np.dtype(dtype)) or found.kind not in "biuf":
        raise ValueError(f"{name} holds {found}, expected {np.dtype(dtype) if dtype is not None else 'numbers'}")
    fits = (len(found_shape) == 1 and found_shape[0] <= shape[0]) if name == "config" else found_shape == shape
    if not fits:
        raise ValueError(f"{name} has shape {found_shape}, expected {expected}")
    size = math.prod(found_shape) * found.itemsize
    data = np.empty(found_shape, found)
    if size and f.readinto(memoryview(data.reshape(-1)).cast("B")) != size:
        raise ValueError(f"{name} is cut short: fewer than its {size} bytes")
    return data


def _upgrade_header_from_version_1(header: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the architecture at the top level."""
    model = {"name": header["name"], "input_shape": header["input_shape"],
             "layers": [{"class_name": entry["class"], "config": entry["config"]} for entry in header["layers"]]}
    return {"model": model, "compile": header["compile"]}


def _upgrade_state_from_version_1(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Version 1 kept Adam's moments as running sums m / (1 - beta_1) and v / (1 - beta_2) (read in as m and v)."""
    optimizer = (header["compile"] or {}).get("optimizer", {})
    if optimizer.get("name") == "adam":
        for key, beta in ((OPTIMIZER + "m", optimizer["beta_1"]), (OPTIMIZER + "v", optimizer["beta_2"])):
            if key in arrays:
                arrays[key] = arrays[key] * (1 - beta)
