"""Train the tutorial MLP on MNIST with tinynet, PyTorch and the bare matrix products; print one table.

The network is the Keras tutorial's: 784-512-512-10, ReLU, Dropout 0.2, softmax with
categorical cross-entropy, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7), batch 128.

Rows (each in its own worker process, so thread variables and peak RSS are per row):
    tinynet-numpy   tinynet's fit() on the CPU
    tinynet-cupy    tinynet's fit() on the GPU (CuPy), step replayed as a CUDA graph   needs CuPy and a GPU
    tinynet-cupy-eager  the same with CUDA graphs off: every kernel launched from Python
    tinynet-numpy-textbook  tinynet-numpy with the engine's fast twins off (TINYNET_FAST=0)   not run by default
    before-numpy    tinynet-numpy from another checkout (--before PATH): a change side by side   not run by default
    torch-cpu       the same network in eager PyTorch, manual batching     needs torch
    torch-cuda      the same on the GPU                                    needs torch with CUDA
    floor-numpy     only the step's eight matrix products, x 469 steps: the matmul floor
    floor-cupy      the same through CuPy, synchronised                    needs CuPy and a GPU

    python benchmarks/bench_mlp.py                    # 1 thread and all threads, real MNIST
    python benchmarks/bench_mlp.py --threads 1 --epochs 5 --rows tinynet-numpy,floor-numpy
    python benchmarks/bench_mlp.py --synthetic        # random data of MNIST's shapes
    git worktree add /tmp/before HEAD~1 && python benchmarks/bench_mlp.py --threads 1 \
        --rows tinynet-numpy,before-numpy,floor-numpy --before /tmp/before     # before/after a change

Epochs of all rows of a table are interleaved (one epoch of each row in turn), so a slow
spell of a shared machine hits every row alike; medians are printed, raw times go to the JSON.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import common

BATCH = 128
N_TRAIN, N_TEST, N_FEATURES, N_CLASSES, HIDDEN = 60000, 10000, 784, 10, 512
STEPS = math.ceil(N_TRAIN / BATCH)  # 469: 468 full batches and one of 96 rows
LEARNING_RATE, BETA_1, BETA_2, EPSILON = 1e-3, 0.9, 0.999, 1e-7
DROPOUT = 0.2
EVAL_BATCH = 1024  # tinynet's evaluate() default; torch uses the same
WARMUP_EPOCHS = 1
LOADED = 0.1  # other processes using more than 10% of one core during an epoch: flag it
SEED = 0
DEFAULT_ROWS = ("tinynet-numpy", "torch-cpu", "floor-numpy", "tinynet-cupy", "tinynet-cupy-eager", "torch-cuda",
                "floor-cupy")
ROWS = DEFAULT_ROWS + ("tinynet-numpy-textbook", "before-numpy")
BASELINE = {"numpy": "tinynet-numpy", "numpy-textbook": "tinynet-numpy", "cpu": "tinynet-numpy",
            "cupy": "tinynet-cupy", "cupy-eager": "tinynet-cupy", "cuda": "tinynet-cupy"}


# =============================================================================================
# Worker side: one row, driven by "epoch" / "eval" / "finish" lines on stdin.
# =============================================================================================
def load_mnist(data_dir: str | None, synthetic: bool) -> tuple[Any, Any, Any, Any]:
    """x as float32 in [0, 1] of shape (n, 784), y as int64 labels: train then test."""
    import numpy as np
    if synthetic:
        rng = np.random.default_rng(SEED)
        x_train = rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8)
        y_train = rng.integers(0, N_CLASSES, N_TRAIN)
        x_test = rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8)
        y_test = rng.integers(0, N_CLASSES, N_TEST)
    else:
        from tinynet.datasets import mnist
        (x_train, y_train), (x_test, y_test) = mnist.load_data(path=data_dir)

    def prepare(x: Any) -> Any:
        return x.reshape(len(x), N_FEATURES).astype(np.float32) / np.float32(255)

    return prepare(x_train), y_train.astype(np.int64), prepare(x_test), y_test.astype(np.int64)


class TinynetRow:
    """tinynet's own fit() and evaluate(), data already on the backend (as torch's is)."""

    def __init__(self, backend: str, data: tuple[Any, Any, Any, Any]) -> None:
        import tinynet
        from tinynet.layers import Activation, Dense, Dropout
        from tinynet.optimizers import Adam
        from tinynet.utils import to_categorical
        backend, _, variant = backend.partition("-")
        tinynet.set_backend(backend)
        if variant == "eager":
            tinynet.engine.set_cuda_graphs(False)
        elif variant == "textbook":
            tinynet.engine.set_fast(False)
        tinynet.set_seed(SEED)
        self.xp = tinynet.backend.xp()
        x_train, y_train, x_test, y_test = data
        to_dev = tinynet.backend.to_device
        self.x_train, self.y_train = to_dev(x_train), to_dev(to_categorical(y_train, N_CLASSES))
        self.x_test, self.y_test = to_dev(x_test), to_dev(to_categorical(y_test, N_CLASSES))
        self.model = tinynet.Sequential([
            Dense(HIDDEN, input_shape=(N_FEATURES,)), Activation("relu"), Dropout(DROPOUT),
            Dense(HIDDEN), Activation("relu"), Dropout(DROPOUT),
            Dense(N_CLASSES), Activation("softmax")])
        adam = Adam(learning_rate=LEARNING_RATE, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON)
        self.model.compile(optimizer=adam, loss="categorical_crossentropy", metrics=["accuracy"])
        self.test_accuracy: float | None = None

    def sync(self) -> None:
        if self.xp.__name__ == "cupy":
            self.xp.cuda.Device().synchronize()

    def epoch(self) -> float:
        # One fit() call per epoch: its once-per-call input checks (a finiteness scan of x) are timed too, <1%.
        self.sync()
        start = time.perf_counter()
        self.model.fit(self.x_train, self.y_train, batch_size=BATCH, epochs=1, verbose=0)
        self.sync()
        return time.perf_counter() - start

    def evaluate(self) -> float:
        self.sync()
        start = time.perf_counter()
        _, self.test_accuracy = self.model.evaluate(self.x_test, self.y_test, batch_size=EVAL_BATCH, verbose=0)
        self.sync()
        return time.perf_counter() - start

    def gpu_pool_bytes(self) -> int | None:
        # CuPy's pool keeps freed blocks until free_all_blocks(), so its size now is its peak
        return int(self.xp.get_default_memory_pool().total_bytes()) if self.xp.__name__ == "cupy" else None


class TorchRow:
    """The fair eager baseline: same net and init, data preloaded on the device, manual batching."""

    def __init__(self, device: str, threads: int, data: tuple[Any, Any, Any, Any]) -> None:
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(SEED)
        self.torch, self.device = torch, torch.device(device)
        x_train, y_train, x_test, y_test = (torch.from_numpy(a).to(self.device) for a in data)
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.model = nn.Sequential(
            nn.Linear(N_FEATURES, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(HIDDEN, N_CLASSES)).to(self.device)  # softmax is fused into cross_entropy, as in tinynet
        for layer in self.model:
            if isinstance(layer, nn.Linear):  # Keras's and tinynet's init, not torch's default
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE, betas=(BETA_1, BETA_2),
                                          eps=EPSILON)
        self.test_accuracy: float | None = None

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def epoch(self) -> float:
        torch, functional = self.torch, self.torch.nn.functional
        self.model.train()
        self.sync()
        start = time.perf_counter()
        order = torch.randperm(N_TRAIN, device=self.device)
        # loss and accuracy are accumulated on the device, as tinynet's fit() does, without a sync per step
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for first in range(0, N_TRAIN, BATCH):
            idx = order[first:first + BATCH]
            xb, yb = self.x_train[idx], self.y_train[idx]
            logits = self.model(xb)
            loss = functional.cross_entropy(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
        loss_sum.item(), correct.item()  # the epoch ends when its results are on the host
        self.sync()
        return time.perf_counter() - start

    def evaluate(self) -> float:
        torch, functional = self.torch, self.torch.nn.functional
        self.model.eval()
        self.sync()
        start = time.perf_counter()
        with torch.no_grad():
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), dtype=torch.int64, device=self.device)
            for first in range(0, N_TEST, EVAL_BATCH):
                xb, yb = self.x_test[first:first + EVAL_BATCH], self.y_test[first:first + EVAL_BATCH]
                logits = self.model(xb)
                loss_sum += functional.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(1) == yb).sum()
            self.test_accuracy = correct.item() / N_TEST
        self.sync()
        return time.perf_counter() - start

    def gpu_pool_bytes(self) -> int | None:
        # torch's caching allocator is its memory pool; "reserved" is what it holds from the driver
        return int(self.torch.cuda.max_memory_reserved()) if self.device.type == "cuda" else None


class FloorRow:
    """Only the eight matrix products of a training step, at the step's shapes, 469 times per "epoch".

    forward:  x@W1, h1@W2, h2@W3;  backward: dW3 = h2.T@d3, dx3 = d3@W3.T, dW2 = h1.T@d2,
    dx2 = d2@W2.T, dW1 = x.T@d1 (the first layer's dx is never needed). Outputs go to preallocated
    buffers so nothing but the products is timed: no step can be faster than this.
    """

    def __init__(self, backend: str) -> None:
        import numpy as np
        if backend == "cupy":
            import cupy
            self.xp = cupy
        else:
            self.xp = np
        self.shapes = [BATCH] * (N_TRAIN // BATCH) + ([N_TRAIN % BATCH] if N_TRAIN % BATCH else [])
        self.buffers = {rows: self._buffers(rows) for rows in set(self.shapes)}
        self.test_accuracy = None

    def _buffers(self, rows: int) -> dict[str, Any]:
        import numpy as np
        xp, rng = self.xp, np.random.default_rng(SEED)
        sizes = {"x": (rows, N_FEATURES), "h1": (rows, HIDDEN), "h2": (rows, HIDDEN), "d1": (rows, HIDDEN),
                 "d2": (rows, HIDDEN), "d3": (rows, N_CLASSES), "W1": (N_FEATURES, HIDDEN),
                 "W2": (HIDDEN, HIDDEN), "W3": (HIDDEN, N_CLASSES)}
        arrays = {k: xp.asarray(rng.standard_normal(s, dtype=np.float32) * 0.1) for k, s in sizes.items()}
        outs = {"y1": (rows, HIDDEN), "y2": (rows, HIDDEN), "y3": (rows, N_CLASSES), "dx3": (rows, HIDDEN),
                "dx2": (rows, HIDDEN), "dW1": sizes["W1"], "dW2": sizes["W2"], "dW3": sizes["W3"]}
        arrays.update({k: xp.empty(s, dtype=xp.float32) for k, s in outs.items()})
        return arrays

    def sync(self) -> None:
        if self.xp.__name__ == "cupy":
            self.xp.cuda.Device().synchronize()

    def epoch(self) -> float:
        mm = self.xp.matmul
        self.sync()
        start = time.perf_counter()
        for rows in self.shapes:
            b = self.buffers[rows]
            mm(b["x"], b["W1"], out=b["y1"])
            mm(b["h1"], b["W2"], out=b["y2"])
            mm(b["h2"], b["W3"], out=b["y3"])
            mm(b["h2"].T, b["d3"], out=b["dW3"])
            mm(b["d3"], b["W3"].T, out=b["dx3"])
            mm(b["h1"].T, b["d2"], out=b["dW2"])
            mm(b["d2"], b["W2"].T, out=b["dx2"])
            mm(b["x"].T, b["d1"], out=b["dW1"])
        self.sync()
        return time.perf_counter() - start

    def evaluate(self) -> None:
        return None  # the floor has no model to evaluate

    def gpu_pool_bytes(self) -> int | None:
        return int(self.xp.get_default_memory_pool().total_bytes()) if self.xp.__name__ == "cupy" else None


def make_row(name: str, args: argparse.Namespace) -> Any:
    kind, backend = name.split("-", 1)
    if kind == "floor":
        return FloorRow(backend)
    data = load_mnist(args.data_dir, args.synthetic)
    if kind in ("tinynet", "before"):
        return TinynetRow(backend, data)
    return TorchRow(backend, args.worker_threads, data)


def worker_main(args: argparse.Namespace) -> None:
    """Serve one row: set up, then answer each command line from the parent with one message."""
    common.use_checkout(args.before if args.worker.startswith("before-") else None)
    start = time.perf_counter()
    row = make_row(args.worker, args)
    common.send({"ready": True, "setup_s": time.perf_counter() - start})
    for line in sys.stdin:
        command = line.strip()
        if command == "epoch":
            cpu = common.own_cpu_seconds()
            seconds = row.epoch()
            common.send({"epoch_s": seconds, "cpu_s": common.own_cpu_seconds() - cpu})
        elif command == "eval":
            common.send({"eval_s": row.evaluate()})
        elif command == "finish":
            common.send({"peak_rss_bytes": common.peak_rss_bytes(), "gpu_pool_bytes": row.gpu_pool_bytes(),
                         "test_accuracy": row.test_accuracy, "threads": common.thread_report()})
            return


# =============================================================================================
# Parent side: decide the rows, drive the workers in interleaved rounds, print and save.
# =============================================================================================
def available_rows(requested: list[str], machine: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The requested rows this machine can run; says why each skipped one is skipped."""
    reasons, paths = {}, machine["gpu_paths"]
    if not paths["cupy_gpu"]:
        reasons.update(dict.fromkeys(("tinynet-cupy", "tinynet-cupy-eager", "floor-cupy"),
                                     "CuPy with a visible GPU not found"))
    if machine["torch"] is None:
        reasons.update(dict.fromkeys(("torch-cpu", "torch-cuda"), "torch is not installed"))
    elif not paths["torch_cuda"]:
        reasons["torch-cuda"] = "torch sees no CUDA device"
    if not args.before:
        reasons["before-numpy"] = "no --before checkout given"
    for name in requested:
        if name in reasons:
            print(f"skipping {name}: {reasons[name]}")
    return [name for name in requested if name not in reasons]


def start_worker(name: str, threads: int, args: argparse.Namespace) -> common.Worker:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--worker-threads", str(threads)]
    if args.synthetic:
        argv.append("--synthetic")
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.before:
        argv += ["--before", args.before]
    return common.Worker(name, argv, common.thread_env(threads))


def measure_table(rows: list[str], threads: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Warm-up round, then args.epochs rounds of one epoch (and one evaluation) per row, in turn."""
    results: dict[str, dict[str, Any]] = {name: {"epoch_s": [], "eval_s": [], "warmup_s": [], "others_share": []}
                                          for name in rows}
    workers: dict[str, common.Worker] = {}
    for name in rows:  # start (and set up) one after another: setup loads data and is not timed
        try:
            workers[name] = start_worker(name, threads, args)
            results[name]["setup_s"] = workers[name].receive()["setup_s"]
        except common.WorkerError as err:
            _fail(results, workers, name, err)
    for round_no in range(WARMUP_EPOCHS + args.epochs):
        warm = round_no < WARMUP_EPOCHS
        print(f"  threads={threads} {'warm-up' if warm else 'epoch'} {round_no + 1 - (0 if warm else WARMUP_EPOCHS)}:",
              end="", flush=True)
        for name in list(workers):
            try:
                common.settle()
                seconds, others = timed_epoch(workers[name])
                results[name]["warmup_s" if warm else "epoch_s"].append(seconds)
                print(f" {name} {seconds:.2f}s" + ("" if others is None or others < LOADED else "(loaded)"),
                      end="", flush=True)
                if not warm:
                    results[name]["others_share"].append(others)
                    eval_s = workers[name].ask("eval")["eval_s"]
                    if eval_s is not None:
                        results[name]["eval_s"].append(eval_s)
            except common.WorkerError as err:
                _fail(results, workers, name, err)
        print()
    for name, worker in workers.items():
        try:
            results[name].update(worker.ask("finish"))
        except common.WorkerError as err:
            results[name]["error"] = str(err)
        worker.close()
    return results


def timed_epoch(worker: common.Worker) -> tuple[float, float | None]:
    """One epoch of a worker: its seconds, and the CPU other processes used meanwhile (share of one core)."""
    busy_before = common.machine_busy_seconds()
    reply = worker.ask("epoch")
    busy_after = common.machine_busy_seconds()
    if busy_before is None or busy_after is None:
        return reply["epoch_s"], None
    others = max(0.0, busy_after - busy_before - reply["cpu_s"])
    return reply["epoch_s"], others / reply["epoch_s"]


def _fail(results: dict[str, dict[str, Any]], workers: dict[str, common.Worker], name: str, err: Exception) -> None:
    print(f"\n  {name} failed: {err}", flush=True)
    results[name]["error"] = str(err)
    worker = workers.pop(name, None)
    if worker is not None:
        worker.close()


def summarise(results: dict[str, dict[str, Any]]) -> None:
    """Add medians, samples/s and the ratio to the tinynet row of the same backend."""
    for row in results.values():
        if row["epoch_s"]:
            row["median_epoch_s"] = statistics.median(row["epoch_s"])
            row["samples_per_s"] = N_TRAIN / row["median_epoch_s"]
        row["median_eval_s"] = statistics.median(row["eval_s"]) if row["eval_s"] else None
    for name, row in results.items():
        base = results.get(BASELINE[name.split("-", 1)[1]], {})
        if "median_epoch_s" in row and "median_epoch_s" in base:
            row["ratio_to_tinynet"] = row["median_epoch_s"] / base["median_epoch_s"]


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def _others(shares: list[float | None]) -> str:
    """The most CPU other processes took during one of the row's measured epochs, in % of one core."""
    known = [s for s in shares if s is not None]
    return "?" if not known else f"{100 * max(known):.0f}%" + ("!" if max(known) >= LOADED else "")


def format_table(results: dict[str, dict[str, Any]], threads: int) -> str:
    header = (f"{'row':<22} {'threads':>7} {'epoch s':>8} {'min-max s':>11} {'samples/s':>10} {'eval 10k s':>10} "
              f"{'test acc':>8} {'peak RSS MiB':>12} {'GPU pool MiB':>12} {'x tinynet':>9} {'others':>6}")
    lines = [header, "-" * len(header)]
    for name, row in results.items():
        if "median_epoch_s" not in row:
            lines.append(f"{name:<22} {threads:>7} failed: {row.get('error', 'no epochs measured')}")
            continue
        acc = "-" if row.get("test_accuracy") is None else f"{row['test_accuracy']:.4f}"
        eval_s = "-" if row["median_eval_s"] is None else f"{row['median_eval_s']:.3f}"
        ratio = f"{row['ratio_to_tinynet']:.2f}" if "ratio_to_tinynet" in row else "-"
        lines.append(f"{name:<22} {threads:>7} {row['median_epoch_s']:>8.3f} "
                     f"{min(row['epoch_s']):>5.2f}-{max(row['epoch_s']):<5.2f} {row['samples_per_s']:>10,.0f} "
                     f"{eval_s:>10} {acc:>8} {_mib(row.get('peak_rss_bytes')):>12} "
                     f"{_mib(row.get('gpu_pool_bytes')):>12} {ratio:>9} {_others(row['others_share']):>6}")
    return "\n".join(lines)


def resolve_data_dir(args: argparse.Namespace) -> None:
    """$TINYNET_DATA, else the copy shipped in data/mnist; stop early when the files are missing."""
    if args.synthetic:
        return
    args.data_dir = args.data_dir or os.environ.get("TINYNET_DATA") or str(common.REPO_ROOT / "data" / "mnist")
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    folder = Path(args.data_dir)
    missing = [n for n in names if not (folder / n).is_file() and not (folder / f"{n}.gz").is_file()]
    if missing:
        raise SystemExit(f"MNIST files missing in {folder}: {', '.join(missing)}. "
                         f"Set TINYNET_DATA (or --data-dir) to the folder that holds them, or pass --synthetic.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs per row, after one warm-up (default 3)")
    parser.add_argument("--threads", default=None,
                        help="BLAS/OpenMP threads, e.g. 1 or 1,4 (default: 1 and all logical cores, one table each)")
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--before", default=None,
                        help="another tinynet checkout (e.g. a git worktree of the previous commit) for the before-numpy row")
    parser.add_argument("--synthetic", action="store_true", help="random data of MNIST's shapes instead of MNIST")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default $TINYNET_DATA, else data/mnist)")
    parser.add_argument("--json", default=None,
                        help="where to write the results (default benchmarks/results/bench-<host>-<date>.json)")
    parser.add_argument("--worker", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        common.serve_worker(worker_main, args)
        return
    requested = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(requested) - set(ROWS))
    if unknown:
        raise SystemExit(f"--rows: unknown row(s) {', '.join(unknown)}; valid rows are {', '.join(ROWS)}")
    thread_counts = common.parse_threads(args.threads)
    resolve_data_dir(args)
    if args.epochs < 3:
        print(f"note: a median of {args.epochs} epoch(s) is noisy; 3 or more is better")
    machine = common.probe_machine(thread_counts[0])
    rows = available_rows([r for r in ROWS if r in requested], machine, args)
    if not rows:
        raise SystemExit("no row can run on this machine; see the reasons above")
    print(common.describe(machine))
    print(f"data: {'synthetic' if args.synthetic else args.data_dir}; batch {BATCH}, {STEPS} steps per epoch, "
          f"{WARMUP_EPOCHS} warm-up + {args.epochs} measured epochs per row\n")
    tables = []
    for threads in thread_counts:
        meter = common.LoadMeter()
        results = measure_table(rows, threads, args)
        summarise(results)
        tables.append({"threads": threads, "rows": results, "load": meter.stop()})
    print()
    for table in tables:
        print(format_table(table["rows"], table["threads"]))
        print(common.describe_load(table["load"]) + "\n")
    report = {**common.run_header(sys.argv), "machine": machine,
              "data": "synthetic" if args.synthetic else str(args.data_dir),
              "settings": {"batch": BATCH, "steps_per_epoch": STEPS, "warmup_epochs": WARMUP_EPOCHS,
                           "epochs": args.epochs, "rows": rows},
              "tables": tables}
    common.write_json(args.json or common.default_json_path("bench"), report)


if __name__ == "__main__":
    main()
