"""Scaling sweep: tinynet's training time per sample against batch size and against hidden width.

    python benchmarks/sweep.py                  # numpy at 1 thread and all threads; cupy too when a GPU is present
    python benchmarks/sweep.py --threads 1 --target-s 0.5

Two sweeps of the tutorial network (784-w-w-10, ReLU, Dropout 0.2, softmax, Adam), synthetic data:
batch sizes 32...4096 at width 512, and hidden widths 128...4096 at batch 128. Each point times a
few short fit() calls (at least 5 steps each, after 2 warm-up steps) rather than whole epochs, and
reports the median time per training sample. Writes a JSON and benchmarks/sweep.png: time per
sample against batch and against width (log-log) per backend, and the GPU/CPU speedup.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import common

N_FEATURES, N_CLASSES, DROPOUT, SEED = 784, 10, 0.2, 0
BATCHES = [2 ** k for k in range(5, 13)]   # 32 ... 4096, at width 512
WIDTHS = [2 ** k for k in range(7, 13)]    # 128 ... 4096, at batch 128
FIXED_WIDTH, FIXED_BATCH = 512, 128
POOL_ROWS = 65536  # synthetic samples made once per worker; a point uses its first steps * batch rows
WARMUP_STEPS, MIN_STEPS = 2, 5
DEFAULT_PNG = common.BENCH_DIR / "sweep.png"


# ---- worker: all points of one backend at one thread count -------------------------------------
def flops_per_sample(width: int) -> int:
    """Multiply-adds x 2 of one training sample: forward, dW of all layers, dx of layers 2 and 3."""
    forward = N_FEATURES * width + width * width + width * N_CLASSES
    return 2 * (2 * forward + width * width + width * N_CLASSES)


class PointTimer:
    """Times tinynet's fit() on the first rows of a synthetic pool already on the backend."""

    def __init__(self, backend: str) -> None:
        import numpy as np
        import tinynet
        from tinynet.utils import to_categorical
        tinynet.set_backend(backend)
        tinynet.set_seed(SEED)
        self.tinynet, self.xp = tinynet, tinynet.backend.xp()
        rng = np.random.default_rng(SEED)
        self.x = tinynet.backend.to_device(rng.random((POOL_ROWS, N_FEATURES), dtype=np.float32))
        self.y = tinynet.backend.to_device(to_categorical(rng.integers(0, N_CLASSES, POOL_ROWS), N_CLASSES))

    def build(self, width: int) -> Any:
        from tinynet.layers import Activation, Dense, Dropout
        from tinynet.optimizers import Adam
        model = self.tinynet.Sequential([
            Dense(width, input_shape=(N_FEATURES,)), Activation("relu"), Dropout(DROPOUT),
            Dense(width), Activation("relu"), Dropout(DROPOUT),
            Dense(N_CLASSES), Activation("softmax")])
        adam = Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
        model.compile(optimizer=adam, loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def sync(self) -> None:
        if self.xp.__name__ == "cupy":
            self.xp.cuda.Device().synchronize()

    def fit_seconds(self, model: Any, batch: int, steps: int) -> float:
        rows = batch * steps
        self.sync()
        start = time.perf_counter()
        model.fit(self.x[:rows], self.y[:rows], batch_size=batch, epochs=1, verbose=0)
        self.sync()
        return time.perf_counter() - start

    def measure(self, batch: int, width: int, target_s: float, repeats: int) -> dict[str, Any]:
        """Median seconds per sample over `repeats` fits sized to take about target_s in all."""
        model = self.build(width)
        self.fit_seconds(model, batch, WARMUP_STEPS)
        step_s = self.fit_seconds(model, batch, WARMUP_STEPS) / WARMUP_STEPS  # an estimate, to size the fits
        steps = min(max(MIN_STEPS, math.ceil(target_s / repeats / step_s)), POOL_ROWS // batch)
        times = [self.fit_seconds(model, batch, steps) for _ in range(repeats)]
        per_sample = statistics.median(times) / (steps * batch)
        return {"batch": batch, "width": width, "steps": steps, "fit_s": times, "s_per_sample": per_sample,
                "samples_per_s": 1 / per_sample, "gflops": flops_per_sample(width) / per_sample / 1e9}


def worker_main(args: argparse.Namespace) -> None:
    common.use_checkout()
    timer = PointTimer(args.worker)
    points = ([("batch", b, FIXED_WIDTH) for b in BATCHES] + [("width", FIXED_BATCH, w) for w in WIDTHS])
    results = []
    for sweep, batch, width in points:
        point = {"sweep": sweep, **timer.measure(batch, width, args.target_s, args.repeats)}
        results.append(point)
        print(f"  {args.worker} x{args.worker_threads} sweep={sweep:<5} batch {batch:>4} width {width:>4}: "
              f"{point['s_per_sample'] * 1e6:8.2f} us/sample", file=sys.stderr, flush=True)
    common.send({"backend": args.worker, "threads": args.worker_threads, "points": results,
                 "peak_rss_bytes": common.peak_rss_bytes(), "thread_report": common.thread_report()})


# ---- parent: run the workers, print, save, plot ----------------------------------------------------
def run_backend(backend: str, threads: int, args: argparse.Namespace) -> dict[str, Any] | None:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--worker-threads", str(threads),
            "--target-s", str(args.target_s), "--repeats", str(args.repeats)]
    meter = common.LoadMeter()
    try:
        run = common.run_once(argv, common.thread_env(threads), f"{backend} x{threads}")
    except common.WorkerError as err:
        print(f"{backend} with {threads} thread(s) failed: {err}")
        return None
    run["load"] = meter.stop()
    print(f"{backend} x{threads}: {common.describe_load(run['load'])}")
    return run


def label(run: dict[str, Any]) -> str:
    if run["backend"] == "cupy":
        return "cupy (GPU)"
    return f"numpy, {run['threads']} thread{'s' if run['threads'] > 1 else ''}"


def format_table(runs: list[dict[str, Any]]) -> str:
    header = (f"{'backend':<18} {'sweep':<6} {'batch':>5} {'width':>5} {'steps':>5} {'us/sample':>10} "
              f"{'samples/s':>10} {'GFLOP/s':>8}")
    lines = [header, "-" * len(header)]
    for run in runs:
        for p in run["points"]:
            lines.append(f"{label(run):<18} {p['sweep']:<6} {p['batch']:>5} {p['width']:>5} {p['steps']:>5} "
                         f"{p['s_per_sample'] * 1e6:>10.2f} {p['samples_per_s']:>10,.0f} {p['gflops']:>8.1f}")
    return "\n".join(lines)


def curve(run: dict[str, Any], sweep: str) -> tuple[list[int], list[float]]:
    """x values (batch or width) and microseconds per sample of one sweep of one run."""
    points = [p for p in run["points"] if p["sweep"] == sweep]
    return [p[sweep] for p in points], [p["s_per_sample"] * 1e6 for p in points]


def plot(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, sweep, fixed in ((axes[0], "batch", f"width {FIXED_WIDTH}"), (axes[1], "width", f"batch {FIXED_BATCH}")):
        for run in runs:
            xs, ys = curve(run, sweep)
            ax.plot(xs, ys, "o-", label=label(run))
        ax.set(xscale="log", yscale="log", xlabel="batch size" if sweep == "batch" else "hidden width (both layers)",
               ylabel="training time per sample (µs)", title=f"time per sample vs {sweep} ({fixed})")
        plain_log_axes(ax, BATCHES if sweep == "batch" else WIDTHS)
        ax.legend()
    plot_speedup(axes[2], runs)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"Wrote {path}")


def plot_speedup(ax: Any, runs: list[dict[str, Any]]) -> None:
    """CPU time / GPU time, the CPU being numpy at its largest thread count; > 1 means the GPU is faster."""
    gpu = next((r for r in runs if r["backend"] == "cupy"), None)
    cpus = [r for r in runs if r["backend"] == "numpy"]
    ax.set_title("GPU / CPU speedup")
    if gpu is None or not cpus:
        ax.text(0.5, 0.5, "GPU: not measured on this machine", ha="center", va="center", fontsize=12,
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    cpu = max(cpus, key=lambda r: r["threads"])
    for sweep, style in (("batch", "o-"), ("width", "s--")):
        xs, cpu_us = curve(cpu, sweep)
        _, gpu_us = curve(gpu, sweep)
        speedup = [c / g for c, g in zip(cpu_us, gpu_us)]
        ahead = next((x for x, s in zip(xs, speedup) if s > 1), None)
        where = "CPU ahead throughout" if ahead is None else f"GPU ahead from {ahead}"
        ax.plot(xs, speedup, style,
                label=f"vs {'batch size (width 512)' if sweep == 'batch' else 'width (batch 128)'}: {where}")
    ax.axhline(1.0, color="gray", lw=1)
    ax.text(0.02, 0.02, "above 1: the GPU is faster", transform=ax.transAxes, fontsize=8, color="gray")
    ax.set(xscale="log", yscale="log", xlabel="batch size or hidden width",
           ylabel=f"{label(cpu)} time / GPU time")
    plain_log_axes(ax, sorted(set(BATCHES) | set(WIDTHS)))
    ax.legend()


def plain_log_axes(ax: Any, xticks: list[int]) -> None:
    """Log axes labelled 32, 64, ... and 10, 20, 50 rather than 2^5 and 10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_xticks(xticks)
    ax.set_xticklabels([str(x) for x in xticks], fontsize=8)
    ax.xaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    dense = high / low < 20  # under about a decade, label 20, 30, 40 ... as well
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 3, 4, 5, 6, 8) if dense else (1, 2, 5)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default=None,
                        help="numpy BLAS threads, e.g. 1 or 1,16 (default: 1 and all logical cores)")
    parser.add_argument("--backends", default="numpy,cupy", help="numpy, cupy or both (cupy only with a GPU)")
    parser.add_argument("--target-s", type=float, default=1.0, help="timed seconds per point, all repeats together")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per point; the median is kept")
    parser.add_argument("--json", default=None, help="default benchmarks/results/sweep-<host>-<date>.json")
    parser.add_argument("--png", default=str(DEFAULT_PNG), help=f"default {DEFAULT_PNG.relative_to(common.REPO_ROOT)}")
    parser.add_argument("--worker", choices=("numpy", "cupy"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.target_s <= 0:
        parser.error("--repeats must be >= 1 and --target-s > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        common.serve_worker(worker_main, args)
        return
    thread_counts = common.parse_threads(args.threads)
    machine = common.probe_machine(thread_counts[0])
    print(common.describe(machine) + "\n")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    jobs = [("numpy", t) for t in thread_counts] if "numpy" in backends else []
    if "cupy" in backends:
        if machine["gpu_paths"]["cupy_gpu"]:
            jobs.append(("cupy", max(thread_counts)))  # host threads hardly matter to the GPU run
        else:
            print("skipping cupy: CuPy with a visible GPU not found (the plot says GPU: not measured)")
    runs = [run for backend, threads in jobs if (run := run_backend(backend, threads, args)) is not None]
    print("\n" + format_table(runs) + "\n")
    report = {**common.run_header(sys.argv), "machine": machine,
              "settings": {"batches": BATCHES, "widths": WIDTHS, "fixed_width": FIXED_WIDTH, "fixed_batch": FIXED_BATCH,
                           "target_s": args.target_s, "repeats": args.repeats, "warmup_steps": WARMUP_STEPS,
                           "min_steps": MIN_STEPS},
              "runs": runs}
    common.write_json(args.json or common.default_json_path("sweep"), report)
    blas = machine["blas"]
    plot(runs, Path(args.png), f"tinynet 784-w-w-10 MLP, synthetic data; {machine['cpu']} ({machine['logical_cores']} "
         f"logical cores), OpenBLAS {blas['architecture']} kernels; {report['date'][:10]}")


if __name__ == "__main__":
    main()
