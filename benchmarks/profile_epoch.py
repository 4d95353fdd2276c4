"""Where a tinynet-numpy training epoch spends its time: one table of components, measured.

    python benchmarks/profile_epoch.py               # 1 BLAS thread, real MNIST
    python benchmarks/profile_epoch.py --threads 2 --cprofile

Each layer's forward/backward, the loss, the accuracy metric, the dropout masks and the
Adam step are wrapped with timers (exclusive time: a mask drawn inside Dropout.forward counts
as "dropout mask", not twice); "fit loop, other" is the epoch minus all of them (shuffling,
gathering each batch, adding up the batch totals, Python). For scale, the same epoch's eight matrix
products alone (the matmul floor of bench_mlp.py) and the batch gathering are timed standalone.
The wrappers cost about a microsecond per call, ~20 calls per step: under 1% of an epoch.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from typing import Any, Callable

import common


class ExclusiveTimers:
    """Wraps callables so that each label accumulates its own time, minus the time of wrapped callees."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self._children: list[float] = []  # per open call: time spent in wrapped callees

    def wrap(self, func: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._children.append(0.0)
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[label] += elapsed - self._children.pop()
                self.calls[label] += 1
                if self._children:
                    self._children[-1] += elapsed
        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def instrument(model: Any, timers: ExclusiveTimers) -> None:
    """Wrap every component of a training step of `model` (instances and module functions only)."""
    from tinynet import engine, training
    for layer in model.layers:
        kind = type(layer).__name__
        layer.forward = timers.wrap(layer.forward, f"{kind} forward")
        layer.backward = timers.wrap(layer.backward, f"{kind} backward")
    model.loss.forward = timers.wrap(model.loss.forward, "loss forward (log-softmax, CE, grad)")
    model.loss.backward = timers.wrap(model.loss.backward, "loss backward")
    model.optimizer.step = timers.wrap(model.optimizer.step, "Adam step")
    # looked up at call time, so patching these attributes is seen by the library
    if engine.fast.dropout_mask:  # with TINYNET_FAST=0 the mask is drawn inside Dropout.forward
        engine.fast.dropout_mask = timers.wrap(engine.fast.dropout_mask, "dropout mask (random bits)")
    training.metric_sums = timers.wrap(training.metric_sums, "accuracy (argmax, compare)")


def gather_seconds(x: Any, y: Any, batch: int) -> float:
    """One epoch of what fit() does to get its batches (training.Batches): a permutation, then each
    batch's rows gathered into two reused buffers."""
    from tinynet.training import Batches
    start = time.perf_counter()
    for _ in Batches(x, y, None, batch, shuffle=True):
        pass
    return time.perf_counter() - start


def print_table(timers: ExclusiveTimers, epoch_s: float, plain_s: float, floor_s: float, gather_s: float,
                epochs: int, steps: int) -> None:
    rows = sorted(((label, s / epochs) for label, s in timers.seconds.items()), key=lambda r: -r[1])
    rows.append(("fit loop, other (shuffle, gather, batch totals, Python)", epoch_s - sum(s for _, s in rows)))
    print(f"{'component (exclusive time)':<58} {'s/epoch':>8} {'% epoch':>8} {'us/step':>8} {'calls/step':>10}")
    print("-" * 96)
    for label, seconds in rows:
        calls = timers.calls.get(label, 0) / epochs / steps
        print(f"{label:<58} {seconds:>8.3f} {100 * seconds / epoch_s:>7.1f}% {1e6 * seconds / steps:>8.0f} "
              f"{calls if calls else '':>10}")
    print("-" * 96)
    print(f"{'instrumented epoch (mean)':<58} {epoch_s:>8.3f}")
    print(f"{'plain epoch, no timers (median)':<58} {plain_s:>8.3f}")
    dense = sum(s for label, s in timers.seconds.items() if label.startswith("Dense")) / epochs
    rest = (f"bias add, db sum and allocating outputs ~ {dense - floor_s:.3f} s" if dense >= floor_s else
            "less than the standalone floor: the machine's speed changed between the two timings")
    print(f"\nstandalone, for scale:\n"
          f"  the eight matmuls of every step (matmul floor)         {floor_s:8.3f} s/epoch "
          f"({100 * floor_s / epoch_s:.0f}% of the epoch)\n"
          f"  Dense forward + backward above                         {dense:8.3f} s/epoch ({rest})\n"
          f"  permutation + gathering every full batch's rows        {gather_s:8.3f} s/epoch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)")
    parser.add_argument("--epochs", type=int, default=2, help="instrumented epochs, after one plain warm-up epoch")
    common.add_data_options(parser)
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions for one epoch")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # This process has not loaded NumPy yet, so the thread variables still take effect here.
    os.environ.update(common.thread_env(args.threads))
    import bench_mlp
    common.use_checkout()
    common.resolve_data_dir(args)
    row = bench_mlp.TinynetRow("numpy", bench_mlp.load_mnist(args.data_dir, args.synthetic))
    machine = common.machine_info()
    print(common.describe(machine))
    print(f"threads: {args.threads}; data: {'synthetic' if args.synthetic else args.data_dir}\n")
    row.epoch()  # warm-up
    busy, own, start = common.machine_busy_seconds(), common.own_cpu_seconds(), time.perf_counter()
    plain = [row.epoch() for _ in range(args.epochs)]
    timers = ExclusiveTimers()
    instrument(row.model, timers)
    instrumented = [row.epoch() for _ in range(args.epochs)]
    floor = bench_mlp.FloorRow("numpy")
    floor_s = statistics.median(floor.epoch() for _ in range(args.epochs))
    gather_s = gather_seconds(row.x_train, row.y_train, bench_mlp.BATCH)
    print_table(timers, statistics.mean(instrumented), statistics.median(plain), floor_s, gather_s,
                args.epochs, bench_mlp.STEPS)
    if busy is not None:
        others = max(0.0, common.machine_busy_seconds() - busy - (common.own_cpu_seconds() - own))
        print(f"  other processes meanwhile: {100 * others / (time.perf_counter() - start):.0f}% of one core")
    if args.cprofile:
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        profiler.runcall(row.epoch)
        print("\ncProfile, one instrumented epoch, top 15 by own time:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
