"""Where arrays live: NumPy on the CPU or CuPy on an NVIDIA GPU.

This module is the only place that knows NumPy from CuPy. Layers, losses and
optimizers ask it for the array module (`xp()`) and write `xp.maximum(...)`,
`xp.exp(...)`, so the same code runs on both. Pick the backend with
`set_backend("numpy" | "cupy" | "auto")` or the environment variable
`TINYNET_BACKEND` (default "numpy"). Setting it also binds the engine's fast
twins for that backend (see tinynet/engine), as it binds `xp`.
"""
from __future__ import annotations

import contextlib
import math
import os
from types import ModuleType
from typing import Any, Iterator

import numpy as np

from tinynet import engine

BACKENDS = ("numpy", "cupy", "auto")
CUPY_INSTALL_HINT = (
    "install CuPy's package for your CUDA version, `pip install cupy-cuda12x` (or cupy-cuda13x), "
    "or from a tinynet checkout `pip install \".[cuda12]\"`, and make sure an NVIDIA GPU and driver are visible"
)

_name = "numpy"
_xp: ModuleType = np
_floatx = np.dtype(np.float32)
_rng = np.random.default_rng()


def _import_cupy() -> ModuleType:
    """Import CuPy and check it sees a GPU; one clear error otherwise."""
    try:
        import cupy
    except ImportError as err:
        raise ValueError(f"backend 'cupy' needs CuPy, which is not installed: {CUPY_INSTALL_HINT}") from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA raises its own error types when no driver is present
        raise ValueError(f"backend 'cupy': CuPy is installed but sees no CUDA device ({err}); {CUPY_INSTALL_HINT}") from err
    if count < 1:
        raise ValueError(f"backend 'cupy': CuPy is installed but sees no CUDA device; {CUPY_INSTALL_HINT}")
    return cupy


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
    except ValueError:
        return False
    return True


def set_backend(name: str) -> str:
    """Select "numpy", "cupy" or "auto" (cupy when it imports and sees a GPU). Returns the chosen name."""
    global _name, _xp
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends are {', '.join(BACKENDS)}")
    if name == "auto":
        name = "cupy" if cupy_available() else "numpy"
    _xp = _import_cupy() if name == "cupy" else np
    _name = name
    engine.bind(name)
    return name


def get_backend() -> str:
    """The name of the active backend: "numpy" or "cupy"."""
    return _name


def xp() -> ModuleType:
    """The array module of the active backend (numpy or cupy)."""
    return _xp


def erf(x: Any) -> Any:
    """The error function, element by element: CuPy has it (in cupyx.scipy.special), NumPy does not.

    On NumPy each element goes through Python's math.erf: exact, and slow (about 0.1 us an element),
    which is fine for the lessons that use it (GELU); a GPU computes it in one kernel.
    """
    if _name == "cupy":
        import cupyx.scipy.special  # noqa: F401 - imported here: only GPU machines have it
        return cupyx.scipy.special.erf(x)
    x = np.asarray(x)
    return _erf_each(x).astype(x.dtype if x.dtype.kind == "f" else np.float64)


_erf_each = np.frompyfunc(math.erf, 1, 1)


def floatx() -> np.dtype:
    """The float dtype new parameters and inputs get (float32 unless changed)."""
    return _floatx


def set_floatx(dtype: str | np.dtype) -> None:
    """Use "float32" (default, fast) or "float64" (gradient checks) for new arrays."""
    global _floatx
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"floatx must be float32 or float64, got {dtype}")
    _floatx = dtype


@contextlib.contextmanager
def using(backend: str | None = None, dtype: str | np.dtype | None = None) -> Iterator[None]:
    """Temporarily switch backend and/or float dtype (tests and gradcheck use this)."""
    old_name, old_dtype = _name, _floatx
    try:
        if backend is not None:
            set_backend(backend)
        if dtype is not None:
            set_floatx(dtype)
        yield
    finally:
        set_backend(old_name)
        set_floatx(old_dtype)


def set_seed(seed: int) -> None:
    """Seed every random choice tinynet makes (initial weights, dropout, shuffling)."""
    global _rng
    _rng = np.random.default_rng(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with a fresh generator seeded with `seed`, then restore the old one.

    Entering twice with the same seed replays the same random numbers (gradcheck
    relies on this to see the same dropout mask in every forward pass).
    """
    global _rng
    old = _rng
    _rng = np.random.default_rng(seed)
    try:
        yield
    finally:
        _rng = old


def rng() -> np.random.Generator:
    """The global host-side random generator (weights are drawn on the host, then moved)."""
    return _rng


def make_rng(seed: int | None) -> np.random.Generator:
    """A private generator for `seed`, or the global one when seed is None."""
    return _rng if seed is None else np.random.default_rng(seed)


def to_device(a: Any, dtype: Any = None) -> Any:
    """Move `a` to the active backend (no copy when it is already there with that dtype)."""
    return _xp.asarray(to_numpy(a) if _name == "numpy" else a, dtype=dtype)


def to_numpy(a: Any) -> np.ndarray:
    """Bring an array back to the host as a NumPy array (a GPU array too, whichever backend is active)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


set_backend(os.environ.get("TINYNET_BACKEND") or "numpy")
