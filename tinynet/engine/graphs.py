"""CUDA graphs: fit()'s training step recorded once and replayed, instead of launching every kernel from Python.

A replay launches a handful of recorded graphs; the Python that built them does not
run again. So a step may be recorded only if it
  - is given the same arrays at every call (their contents may change),
  - never reads a device value on the host,
  - does its matrix products through `matmul` below (CuPy refuses cuBLAS calls while a
    stream is being recorded, so the recording is cut at each product, which then runs
    between the graphs at every replay: graph, product, graph, ..., graph),
  - and keeps what it allocates only until its next call.
Dropout masks drawn inside a recording take their random stream from a counter in GPU
memory that every replay advances (see `replay_counter`), so each replay gets fresh masks.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import cupy
import numpy as np

_recording: CapturedStep | None = None  # the step being recorded, if any
_counter: Any = None  # while a CapturedStep runs, its replay counter (a uint64 on the GPU)


def replay_counter() -> Any:
    """The running CapturedStep's replay counter, or None outside one."""
    return _counter


def matmul(a: Any, b: Any, out: Any = None) -> Any:
    """a @ b (into `out` when given); while a step is being recorded, the product is cut out of the graph."""
    if _recording is not None:
        return _recording.record_matmul(a, b, out)
    return cupy.matmul(a, b, out=out)


def _layout(arg: Any) -> Any:
    """What must not change between a recording and its replays: an array's memory and shape, or the object."""
    if isinstance(arg, cupy.ndarray):
        return arg.data.ptr, arg.shape, arg.strides, arg.dtype
    return id(arg)


class CapturedStep:
    """replayable(fn) on the GPU: fn runs once as usual, is recorded at its second call, and replayed after.

    The first call compiles every kernel and creates what fn makes lazily. A call with
    other arrays than the first (fit's last, smaller batch) runs fn as usual. The recording
    runs on a side stream (CUDA cannot record the legacy default stream) and allocates from
    a memory pool of its own: the graphs keep using the addresses of the temporaries they
    allocated, so no ordinary array may ever be given that memory. All recordings share the
    pool and it is never freed, so no memory goes back to CUDA (which would spoil a recording)
    while one runs. If a recording fails, a RuntimeWarning says why and fn runs as usual from then on.
    """

    def __init__(self, fn: Callable[..., None], settings: Callable[[], Any] = lambda: None) -> None:
        self.fn, self.settings = fn, settings
        self.settings_seen = settings()  # what the recording was made with (e.g. the learning rate)
        self.layout: list[Any] | None = None  # of the first call's arguments
        self.args: tuple[Any, ...] = ()  # kept alive: the recording uses these arrays' memory
        self.parts: list[Callable[[], Any]] | None = None  # graph launches and products, in order
        self.failed = False
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.counter = cupy.zeros((), dtype=np.uint64)

    def __call__(self, *args: Any) -> None:
        settings = self.settings()
        if settings != self.settings_seen:  # the recording holds the old settings as constants: record anew
            self.settings_seen, self.layout, self.parts, self.failed = settings, None, None, False
        layout = [_layout(a) for a in args]
        if self.layout is None:
            self.layout, self.args = layout, args
        elif layout == self.layout and self.parts is None and not self.failed:
            self.parts = self._record(args)
        if layout == self.layout and self.parts is not None:
            for part in self.parts:
                part()
        else:
            self._run_with_counter(args)

    def _run_with_counter(self, args: tuple[Any, ...]) -> None:
        """fn(*args) with dropout masks keyed to self.counter, which moves on first (fresh masks every call)."""
        global _counter
        _counter = self.counter
        try:
            self.counter += np.uint64(1)
            self.fn(*args)
        finally:
            _counter = None

    def _record(self, args: tuple[Any, ...]) -> list[Callable[[], Any]] | None:
        """The graphs and products of one call of fn, recorded without running; None (and a warning) on failure."""
        global _recording
        self.parts = []
        try:
            with self.stream, cupy.cuda.using_allocator(_graph_pool().malloc):
                self.stream.begin_capture()
                _recording = self
                try:
                    self._run_with_counter(args)
                except BaseException:
                    _end_capture_quietly(self.stream)
                    raise
                finally:
                    _recording = None
                self.parts.append(self.stream.end_capture().launch)
        except Exception as err:  # noqa: BLE001 - a graph is only a speed-up: train on without one
            self.parts, self.failed = None, True
            warnings.warn(f"CUDA graph: recording the training step failed ({type(err).__name__}: {err}); "
                          f"continuing without graphs (tinynet.engine.set_cuda_graphs(False) skips the attempt)",
                          RuntimeWarning, stacklevel=4)
            return None
        except BaseException:
            self.parts = None  # interrupted: the next call records again rather than replaying half a step
            raise
        return self.parts

    def record_matmul(self, a: Any, b: Any, out: Any) -> Any:
        """Close the graph so far, note the product a @ b for replays, and open the next graph."""
        self.parts.append(self.stream.end_capture().launch)
        if out is None:  # from the recordings' pool: later graphs read it at this address
            out = cupy.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a.dtype, b.dtype))
        self.parts.append(functools.partial(cupy.matmul, a, b, out=out))
        self.stream.begin_capture()
        return out


@functools.lru_cache(maxsize=None)
def _graph_pool() -> Any:
    return cupy.cuda.MemoryPool()


def _end_capture_quietly(stream: Any) -> None:
    """Leave capture mode after a failure, keeping the original error rather than CUDA's follow-up one."""
    try:
        stream.end_capture()
    except Exception:  # noqa: BLE001 - the capture is already invalid; the caller re-raises the real error
        pass
