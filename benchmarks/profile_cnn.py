"""Where tinynet's convnet training step spends its time, layer by layer, and how big its buffers get.

    python benchmarks/profile_cnn.py                 # 1 BLAS thread, real MNIST, median of 60 steps
    python benchmarks/profile_cnn.py --steps 100 --threads 2 --synthetic

The network and data are bench_cnn.py's (Keras's simple MNIST convnet, batch 128). After a plain
warm-up fit, one fit() over --steps batches runs with every layer's forward and backward wrapped in
timers, and inside them im2col, col2im and each Conv2D's linear part (forward_logits: cols @ W + b;
backward_logits: dW, db, dcols = dz @ W.T); the loss, the accuracy metric and the Adam step too.
Each line is the median over the steps of that part's time in one step (a layer's line includes the
lines indented under it; its "rest" is what the layer does outside them: the ReLU of a Conv2D, the
max and its mask for pooling). The medians need not add up to the median step exactly.

Then the memory: the im2col buffers a step makes at batch 128 (and at evaluate()'s default batch
of 1024), computed from the layer shapes; what the layers keep between steps (measured: their array
attributes); and the peak a step allocates (tracemalloc, which sees NumPy's allocations).
"""
from __future__ import annotations

import argparse
import collections
import math
import os
import statistics
import time
from typing import Any, Callable

import common


class StepTimers:
    """Wraps callables; records, per step, the time of each wrapped part, named after the innermost wrapped
    call it ran in ("conv2 backward / col2im"), inclusive and exclusive of the wrapped parts inside it."""

    def __init__(self) -> None:
        self.steps: list[dict[str, list[float]]] = []  # per step: label -> [inclusive s, exclusive s, calls]
        self._stack: list[list[Any]] = []              # open calls: [label, time in wrapped callees]
        self.order: list[str] = []                     # labels in the order first seen

    def wrap(self, func: Callable[..., Any], name: str, step: bool = False) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not step and not self._stack:
                return func(*args, **kwargs)  # outside a training step: not timed
            if step:
                self.steps.append(collections.defaultdict(lambda: [0.0, 0.0, 0]))
            parent = self._stack[-1][0] if self._stack else "step"
            label = name if step or parent == "step" else f"{parent} / {name}"
            if label not in self.order:
                self.order.append(label)
            self._stack.append([label, 0.0])
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                _, children = self._stack.pop()
                if self._stack:
                    self._stack[-1][1] += elapsed
                entry = self.steps[-1][label]
                entry[0] += elapsed
                entry[1] += elapsed - children
                entry[2] += 1
        return timed

    def median(self, label: str, exclusive: bool = False) -> float:
        return statistics.median(step[label][1 if exclusive else 0] if label in step else 0.0 for step in self.steps)

    def calls(self, label: str) -> float:
        return statistics.mean(step[label][2] if label in step else 0 for step in self.steps)


def friendly_names(model: Any) -> dict[Any, str]:
    """conv1, pool1, conv2, pool2, flatten, dropout, dense: each layer's place rather than its Keras name."""
    counts: dict[str, int] = collections.Counter()
    short = {"Conv2D": "conv", "MaxPooling2D": "pool", "AveragePooling2D": "avgpool"}
    names = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in short:
            counts[kind] += 1
            names[layer] = f"{short[kind]}{counts[kind]}"
        else:
            names[layer] = kind.lower()
    return names


def instrument(model: Any, timers: StepTimers) -> None:
    """Wrap every part of a training step of `model` (instances and module functions only)."""
    from tinynet import convolution, pooling, training
    from tinynet.engine import fast
    names = friendly_names(model)
    fused = model.fused_activation()
    for i, layer in enumerate(model.layers):
        name = names[layer]
        if fused and i == len(model.layers) - 1:  # the model calls its linear part; softmax is in the loss
            layer.forward_logits = timers.wrap(layer.forward_logits, f"{name} forward")
            layer.backward_logits = timers.wrap(layer.backward_logits, f"{name} backward")
            continue
        layer.forward = timers.wrap(layer.forward, f"{name} forward")
        layer.backward = timers.wrap(layer.backward, f"{name} backward")
        if type(layer).__name__ == "Conv2D":
            layer.forward_logits = timers.wrap(layer.forward_logits, "cols @ W + b (forward_logits)")
            layer.backward_logits = timers.wrap(layer.backward_logits, "dW, db, dcols = dz @ W.T (backward_logits)")
    # module functions are looked up at call time, so patching them is seen by the layers
    for module in (convolution, pooling):
        module.im2col = timers.wrap(module.im2col, "im2col")
        module.col2im = timers.wrap(module.col2im, "col2im")
    if fast.dropout_mask:
        fast.dropout_mask = timers.wrap(fast.dropout_mask, "mask (random bits)")
    model.loss.forward = timers.wrap(model.loss.forward, "loss forward (log-softmax, CE)")
    model.loss.backward = timers.wrap(model.loss.backward, "loss backward")
    training.metric_sums = timers.wrap(training.metric_sums, "accuracy (argmax, compare)")
    model.optimizer.step = timers.wrap(model.optimizer.step, "Adam step")
    training.train_batch = timers.wrap(training.train_batch, "step", step=True)


def print_time_table(timers: StepTimers, plain_step_s: float, floor_step_s: float) -> None:
    step = timers.median("step")
    print(f"{'part of one training step (median over ' + str(len(timers.steps)) + ' steps)':<62} {'ms':>7} "
          f"{'% step':>7} {'calls':>5}")
    print("-" * 84)
    top = [label for label in timers.order if label != "step" and " / " not in label]
    for label in top:
        _node(timers, label, step, 0)
    listed = sum(timers.median(label) for label in top)
    print("-" * 84)
    print(f"{'sum of the lines above':<62} {1e3 * listed:>7.2f} {100 * listed / step:>6.1f}%")
    print(f"{'step, instrumented (median)':<62} {1e3 * step:>7.2f}")
    print(f"{'step, plain fit without timers (epoch / steps, best of 2)':<62} {1e3 * plain_step_s:>7.2f}")
    print(f"{'the eight matrix products of a step alone (bench_cnn floor)':<62} {1e3 * floor_step_s:>7.2f} "
          f"{100 * floor_step_s / plain_step_s:>6.1f}% of the plain step")


def _node(timers: StepTimers, label: str, step: float, depth: int) -> None:
    """A part's line, then its parts' lines indented under it, then what it does outside them ("rest")."""
    _line(label.rsplit(" / ", 1)[-1], timers.median(label), step, depth, timers.calls(label))
    children = [c for c in timers.order if c.startswith(label + " / ") and " / " not in c[len(label) + 3:]]
    for child in children:
        _node(timers, child, step, depth + 1)
    if children:
        _line("rest (outside the parts above)", timers.median(label, exclusive=True), step, depth + 1, None)


def _line(text: str, seconds: float, step: float, depth: int, calls: float | None) -> None:
    print(f"{'   ' * depth + text:<62} {1e3 * seconds:>7.2f} {100 * seconds / step:>6.1f}% "
          f"{'' if calls is None else format(calls, '.3g'):>5}")


def buffer_table(batch: int) -> list[tuple[str, tuple[int, ...]]]:
    """The arrays im2col, col2im and the pooling windows make in one step at `batch`, from the layer shapes."""
    import bench_cnn as cnn
    s1, s2, p1, p2 = cnn.SIDE1, cnn.SIDE2, cnn.SIDE1 // 2, cnn.SIDE2 // 2
    return [
        ("conv1 cols = im2col(x)            (forward, kept for dW)", (batch * s1 * s1, cnn.K1)),
        ("conv1 dcols                        (not made: first layer, no dx)", (0,)),
        ("conv2 cols = im2col(pool1 out)     (forward, kept for dW)", (batch * s2 * s2, cnn.K2)),
        ("conv2 dcols = dz @ W.T             (backward, then col2im)", (batch * s2 * s2, cnn.K2)),
        ("conv2 col2im(dcols) -> dx          (backward)", (batch, p1, p1, cnn.FILTERS1)),
        ("pool1 windows (kept) / dwindows    (each)", (batch, p1, p1, 2, 2, cnn.FILTERS1)),
        ("pool1 col2im(dwindows) -> dx       (backward)", (batch, s1, s1, cnn.FILTERS1)),
        ("pool2 windows (kept) / dwindows    (each)", (batch, p2, p2, 2, 2, cnn.FILTERS2)),
        ("conv1 z, relu(z) (kept)            (each)", (batch, s1, s1, cnn.FILTERS1)),
        ("conv2 z, relu(z) (kept)            (each)", (batch, s2, s2, cnn.FILTERS2)),
    ]


def print_memory(model: Any, step: Callable[[], None], val_step: Callable[[], None],
                 eval_step: Callable[[], None]) -> None:
    import tracemalloc
    print(f"\n{'buffers of one step, float32 (computed from the shapes)':<62} {'shape':>24} {'MiB b128':>9} "
          f"{'MiB b1024':>9}")
    print("-" * 108)
    for (label, shape), (_, big) in zip(buffer_table(128), buffer_table(1024)):
        size = 4 * math.prod(shape) if shape != (0,) else 0
        print(f"{label:<62} {str(shape) if size else '-':>24} {size / 2**20:>9.2f} "
              f"{4 * math.prod(big) / 2**20 if size else 0:>9.2f}")
    held = collections.Counter()
    names = friendly_names(model)
    for layer in model.layers:
        for value in vars(layer).values():
            if hasattr(value, "nbytes") and hasattr(value, "shape") and value.ndim > 1 and value.size > 10000:
                held[names[layer]] += value.nbytes
    print("\nwhat the layers keep between steps (measured, arrays over 10,000 values): "
          + ", ".join(f"{name} {b / 2**20:.1f} MiB" for name, b in held.items())
          + f"; {sum(held.values()) / 2**20:.1f} MiB in all")
    for what, run in (("one training step, batch 128", step), ("one validation batch of 128 (fit's)", val_step),
                      ("one evaluate() batch of 1024 (its default)", eval_step)):
        run()  # once before, so that what a step keeps is already there
        tracemalloc.start()
        run()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak NumPy memory allocated during {what} (tracemalloc): {peak / 2**20:.1f} MiB")


def _seconds(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)")
    parser.add_argument("--steps", type=int, default=60, help="instrumented steps (batches of 128), default 60")
    common.add_data_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # This process has not loaded NumPy yet, so the thread variables still take effect here.
    os.environ.update(common.thread_env(args.threads))
    import bench_cnn
    common.use_checkout()
    common.resolve_data_dir(args)
    row = bench_cnn.TinynetRow("numpy", args)  # trains on the first --steps batches
    model, x, y = row.model, row.x_train, row.y_train
    print(common.describe(common.machine_info()))
    print(f"threads: {args.threads}; data: {'synthetic' if args.synthetic else args.data_dir}; "
          f"{args.steps} steps of batch {bench_cnn.BATCH}\n")
    busy, own, start = common.machine_busy_seconds(), common.own_cpu_seconds(), time.perf_counter()
    row.epoch()  # warm-up
    plain = min(row.epoch() for _ in range(2)) / args.steps
    floor = bench_cnn.FloorRow("numpy", args.steps * bench_cnn.BATCH)
    floor.epoch()
    floor_step = min(floor.epoch() for _ in range(2)) / args.steps
    products = [(label, statistics.median(_seconds(product) for _ in range(args.steps)))
                for label, product in floor.named_products(floor.buffers[bench_cnn.BATCH])]
    del floor
    timers = StepTimers()
    instrument(model, timers)
    model.fit(x, y, batch_size=bench_cnn.BATCH, epochs=1, verbose=0)
    print_time_table(timers, plain, floor_step)
    print("\nthe same products one at a time, standalone (median of as many runs as steps):")
    for label, seconds in products:
        print(f"   {label:<59} {1e3 * seconds:>7.2f}")
    if busy is not None:
        others = max(0.0, common.machine_busy_seconds() - busy - (common.own_cpu_seconds() - own))
        print(f"other processes meanwhile: {100 * others / (time.perf_counter() - start):.0f}% of one core")
    xb, yb = x[:bench_cnn.BATCH], y[:bench_cnn.BATCH]
    xv, yv = row.x_eval[:1024], row.y_eval[:1024]
    print_memory(model, lambda: model.train_on_batch(xb, yb),
                 lambda: model.evaluate(xv[:bench_cnn.BATCH], yv[:bench_cnn.BATCH], batch_size=bench_cnn.BATCH,
                                        verbose=0),
                 lambda: model.evaluate(xv, yv, batch_size=1024, verbose=0))
    print(f"peak RSS of this process: {common.peak_rss_bytes() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
