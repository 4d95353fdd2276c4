"""Shared plumbing for the benchmark scripts: thread settings, worker processes, machine facts, and the
rows and interleaved tables that bench_mlp.py and bench_cnn.py both run.

Nothing here imports NumPy at module level. The parent process of a benchmark never loads
NumPy or torch: every measurement runs in a child process whose BLAS/OpenMP thread variables
were set in its environment before it started, because OpenBLAS, MKL and OpenMP read them
once, when the library loads.

    python benchmarks/common.py        # print this machine's facts as JSON (what the benchmarks record)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
MESSAGE_PREFIX = "@@bench "  # marks our JSON lines on a worker's stdout; libraries may print other lines
SETTLE_S = 0.2  # pause between workers: idle OpenBLAS/OpenMP threads spin for ~0.1 s after their last call


# ---- threads ----------------------------------------------------------------------
def use_checkout(root: str | Path | None = None) -> None:
    """Import tinynet from this checkout (or from the checkout at `root`), whatever is installed."""
    root = str(Path(root).resolve() if root else REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


def thread_env(threads: int) -> dict[str, str]:
    """The current environment with every BLAS/OpenMP thread variable set to `threads`.

    Only the thread counts change: OPENBLAS_CORETYPE and everything else the user set is
    passed through untouched, so the benchmark measures the user's kernels.
    """
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARS})
    return env


def parse_threads(text: str | None) -> list[int]:
    """"1,2" -> [1, 2]; None -> [1, all logical cores] (one entry when there is only one core)."""
    if text is None:
        return sorted({1, os.cpu_count() or 1})
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit(f"--threads: expected positive integers such as 1 or 1,{os.cpu_count()}, got {text!r}")
    return counts


def thread_report() -> dict[str, Any]:
    """What the thread pools loaded in *this* process actually use (checks the env vars took effect)."""
    report: dict[str, Any] = {name: os.environ.get(name) for name in THREAD_VARS}
    try:
        import threadpoolctl
    except ImportError:
        report["pools"] = "unknown (threadpoolctl not installed)"
        return report
    report["pools"] = [{k: pool.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
                       for pool in threadpoolctl.threadpool_info()]
    return report


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


# ---- worker processes ---------------------------------------------------------------
def send(message: dict[str, Any]) -> None:
    """Worker side: hand one JSON message to the parent."""
    sys.stdout.write(MESSAGE_PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def serve_worker(worker_main: Callable[[Any], None], args: Any) -> None:
    """Run a worker; on failure, tell the parent, which goes on with the other rows."""
    try:
        worker_main(args)
    except Exception as err:
        traceback.print_exc()
        send({"error": f"{type(err).__name__}: {err}"})


class Worker:
    """Parent side: a child process that answers one JSON message per command line it is sent."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        # stderr is inherited so a child's traceback or warning shows up directly on the console
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def receive(self) -> dict[str, Any]:
        """The next message; a worker that died or sent {"error": ...} raises WorkerError."""
        for line in self.proc.stdout:
            if line.startswith(MESSAGE_PREFIX):
                message = json.loads(line[len(MESSAGE_PREFIX):])
                if "error" in message:
                    raise WorkerError(f"{self.name}: {message['error']}")
                return message
        self.proc.wait()
        raise WorkerError(f"{self.name}: worker exited with status {self.proc.returncode} (see its traceback above)")

    def ask(self, command: str) -> dict[str, Any]:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class WorkerError(RuntimeError):
    """A benchmark worker failed; the row is reported as failed and the run goes on."""


def run_once(argv: list[str], env: dict[str, str], name: str) -> dict[str, Any]:
    """Start a worker that sends exactly one message and exits; return that message."""
    worker = Worker(name, argv, env)
    try:
        return worker.receive()
    finally:
        worker.close()


def settle() -> None:
    time.sleep(SETTLE_S)


# ---- how busy the machine was ------------------------------------------------------------------
def _machine_cpu_seconds() -> dict[str, float] | None:
    """Busy and steal CPU-seconds of the whole machine since boot (/proc/stat), None where unavailable."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return {"busy": (user + nice + system + irq + softirq) / tick, "steal": steal / tick}


def machine_busy_seconds() -> float | None:
    """Busy CPU-seconds of the whole machine since boot, all processes together."""
    times = _machine_cpu_seconds()
    return None if times is None else times["busy"]


def own_cpu_seconds() -> float:
    """CPU-seconds used by this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished, waited-for workers only
    return usage.ru_utime + usage.ru_stime


class LoadMeter:
    """CPU used by *other* processes while we measured: the machine's busy time minus our workers'.

    Start it, run workers that all finish (and are waited for), stop it. A few percent of one
    core is background noise; tens of percent means the numbers were taken on a loaded machine.
    """

    def __init__(self) -> None:
        self.start_machine = _machine_cpu_seconds()
        self.start_ours = _children_cpu_seconds()
        self.start_wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.start_wall
        report: dict[str, Any] = {"wall_s": wall, "our_cpu_s": _children_cpu_seconds() - self.start_ours,
                                  "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
        end = _machine_cpu_seconds()
        if self.start_machine is not None and end is not None:
            busy = end["busy"] - self.start_machine["busy"]
            report.update(machine_busy_cpu_s=busy, steal_s=end["steal"] - self.start_machine["steal"],
                          others_cpu_s=max(0.0, busy - report["our_cpu_s"]))
        return report


def describe_load(load: dict[str, Any]) -> str:
    if "others_cpu_s" not in load:
        return "machine load: unknown (no /proc/stat)"
    share = load["others_cpu_s"] / load["wall_s"]
    return (f"other processes used {load['others_cpu_s']:.1f} CPU-s in {load['wall_s']:.0f} s "
            f"({100 * share:.0f}% of one core), hypervisor steal {load['steal_s']:.1f} s"
            + ("  <- LOADED: compare only rows of this table" if share > 0.1 else ""))


# ---- the machine ------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags that decide which BLAS kernels make sense (avx512f, avx2, fma)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    except OSError:
        pass
    return []


def blas_info() -> dict[str, Any]:
    """NumPy's BLAS: name, version, and the kernel ("core type") OpenBLAS picked at load time."""
    import numpy as np
    info: dict[str, Any] = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
                            "architecture": "unknown (threadpoolctl not installed)"}
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info.update(name=config.get("name"), version=config.get("version"))
    except Exception:  # older NumPy: show_config has no dict mode
        info.update(name="unknown", version="unknown")
    try:
        import threadpoolctl
    except ImportError:
        return info
    blas = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
    if blas:
        info.update(architecture=blas[0].get("architecture") or "unknown",
                    internal_api=blas[0].get("internal_api"), library_version=blas[0].get("version"))
    return info


def _cuda_version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"  # CUDA encodes 12.4 as 12040


def gpu_info() -> dict[str, Any] | None:
    """Name, driver and CUDA runtime of GPU 0 as CuPy (else torch) sees them; None without a GPU."""
    info: dict[str, Any] = {}
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            props = cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"]
            info.update(name=name.decode() if isinstance(name, bytes) else name,
                        memory_bytes=int(props["totalGlobalMem"]),
                        cuda_driver_api=_cuda_version(cupy.cuda.runtime.driverGetVersion()),
                        cuda_runtime=_cuda_version(cupy.cuda.runtime.runtimeGetVersion()))
    except Exception:  # no CuPy, no driver, no device: all mean "no GPU through CuPy"
        pass
    try:
        import torch
        if torch.cuda.is_available():
            info.setdefault("name", torch.cuda.get_device_name(0))
            info["torch_cuda"] = torch.version.cuda
    except Exception:
        pass
    if info and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            info["driver"] = out.splitlines()[0] if out else "unknown"
        except (OSError, subprocess.SubprocessError):
            pass
    return info or None


def torch_cpu_info() -> dict[str, Any] | None:
    """torch's own BLAS (MKL is linked in statically, so threadpoolctl cannot see it) and SIMD level."""
    try:
        import torch
    except Exception:
        return None
    config = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")),
                "unknown")
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
    return {"blas": blas, "cpu_capability": capability}


def module_version(name: str) -> str | None:
    """The version of an importable module, or None when it is not installed (or fails to import)."""
    try:
        module = __import__(name)
    except Exception:
        return None
    return getattr(module, "__version__", "unknown")


def gpu_paths() -> dict[str, bool]:
    """Which GPU code paths can run here: tinynet's CuPy backend, torch's CUDA."""
    use_checkout()
    from tinynet.backend import cupy_available
    try:
        import torch
        torch_cuda = bool(torch.cuda.is_available())
    except Exception:
        torch_cuda = False
    return {"cupy_gpu": cupy_available(), "torch_cuda": torch_cuda}


def machine_info() -> dict[str, Any]:
    """Everything a result needs to be compared with another machine's. Imports NumPy, torch, CuPy."""
    use_checkout()
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": module_version("numpy"),
        "torch": module_version("torch"),
        "cupy": module_version("cupy"),
        "blas": blas_info(),
        "torch_cpu": torch_cpu_info(),
        "gpu": gpu_info(),
        "gpu_paths": gpu_paths(),
        "threads_env": {name: os.environ.get(name) for name in THREAD_VARS},
    }


def probe_machine(threads: int) -> dict[str, Any]:
    """machine_info() from a child process, so the parent never loads NumPy or torch."""
    return run_once([sys.executable, str(Path(__file__).resolve()), "--worker-probe"], thread_env(threads), "probe")


def describe(machine: dict[str, Any]) -> str:
    """One paragraph for the top of a printed table."""
    blas = machine["blas"]
    gpu = machine["gpu"]
    gpu_text = "none" if gpu is None else (f"{gpu.get('name')} (driver {gpu.get('driver', '?')}, "
                                           f"CUDA runtime {gpu.get('cuda_runtime', '?')})")
    return (f"CPU: {machine['cpu']}, {machine['logical_cores']} logical cores, flags {' '.join(machine['cpu_flags'])}\n"
            f"BLAS: {blas.get('name')} {blas.get('version')}, kernel (OpenBLAS architecture) {blas['architecture']}, "
            f"OPENBLAS_CORETYPE={blas['OPENBLAS_CORETYPE']}\n"
            + (f"torch CPU: BLAS {machine['torch_cpu']['blas']}, {machine['torch_cpu']['cpu_capability']} kernels\n"
               if machine.get("torch_cpu") else "")
            + f"GPU: {gpu_text}\n"
            f"python {machine['python']}, numpy {machine['numpy']}, torch {machine['torch'] or 'not installed'}, "
            f"cupy {machine['cupy'] or 'not installed'}")


# ---- what the training benchmarks share (bench_mlp.py, bench_cnn.py) ---------------------------------------------
# A row is a worker process: it sets up (loads the data, builds its model; not timed), then answers the parent's
# commands "epoch", "eval" and "finish" with one message each. The parent runs a warm-up round and then --epochs
# measured rounds, one epoch of each row in turn (interleaved), so a slow spell of a shared machine hits every
# row of a round alike; medians are printed, the raw times go to the JSON.
WARMUP_EPOCHS = 1
LOADED = 0.1  # other processes using more than 10% of one core during an epoch: flag it
SEED = 0
LEARNING_RATE, BETA_1, BETA_2, EPSILON = 1e-3, 0.9, 0.999, 1e-7  # Keras's Adam defaults, for every row
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_mnist_raw(data_dir: str | None, synthetic: bool) -> tuple[Any, Any, Any, Any]:
    """MNIST as the files hold it: uint8 images (n, 28, 28) and int64 labels, train then test.

    synthetic: random images and labels of the same shapes (60,000 and 10,000), from SEED.
    """
    import numpy as np
    if synthetic:
        rng = np.random.default_rng(SEED)
        x_train = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8)
        y_train = rng.integers(0, 10, 60000)
        x_test = rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8)
        y_test = rng.integers(0, 10, 10000)
    else:
        from tinynet.datasets import mnist
        (x_train, y_train), (x_test, y_test) = mnist.load_data(path=data_dir)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def resolve_data_dir(args: Any) -> None:
    """$TINYNET_DATA, else the copy shipped in data/mnist; stop early when the files are missing."""
    if args.synthetic:
        return
    args.data_dir = args.data_dir or os.environ.get("TINYNET_DATA") or str(REPO_ROOT / "data" / "mnist")
    folder = Path(args.data_dir)
    missing = [n for n in MNIST_FILES if not (folder / n).is_file() and not (folder / f"{n}.gz").is_file()]
    if missing:
        raise SystemExit(f"MNIST files missing in {folder}: {', '.join(missing)}. "
                         f"Set TINYNET_DATA (or --data-dir) to the folder that holds them, or pass --synthetic.")


class ArrayRow:
    """A row whose arrays live in self.xp, NumPy or CuPy: how it waits for the GPU and reports its memory."""

    xp: Any

    def sync(self) -> None:
        if self.xp.__name__ == "cupy":
            self.xp.cuda.Device().synchronize()

    def gpu_pool_bytes(self) -> int | None:
        # CuPy's pool keeps freed blocks until free_all_blocks(), so its size now is its peak
        return int(self.xp.get_default_memory_pool().total_bytes()) if self.xp.__name__ == "cupy" else None


class TinynetRow(ArrayRow):
    """tinynet's own fit() and evaluate(), data already on the backend (as torch's is).

    backend: "numpy", "cupy", "cupy-eager" (CUDA graphs off) or "numpy-textbook" (the engine's fast twins off).
    data: (x_train, y_train, x_eval, y_eval) as NumPy arrays, labels as integers; build_model() returns the
    uncompiled Sequential, called after the seed is set. One fit(epochs=1) call per epoch: its
    once-per-call input checks (a finiteness scan of x) are timed too.
    """

    def __init__(self, backend: str, data: tuple[Any, Any, Any, Any], build_model: Callable[[], Any],
                 batch: int, eval_batch: int, n_classes: int) -> None:
        import tinynet
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
        x_train, y_train, x_eval, y_eval = data
        to_dev = tinynet.backend.to_device
        self.x_train, self.y_train = to_dev(x_train), to_dev(to_categorical(y_train, n_classes))
        self.x_eval, self.y_eval = to_dev(x_eval), to_dev(to_categorical(y_eval, n_classes))
        self.batch, self.eval_batch = batch, eval_batch
        self.model = build_model()
        adam = Adam(learning_rate=LEARNING_RATE, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON)
        self.model.compile(optimizer=adam, loss="categorical_crossentropy", metrics=["accuracy"])
        self.eval_accuracy: float | None = None

    def epoch(self) -> float:
        self.sync()
        start = time.perf_counter()
        self.model.fit(self.x_train, self.y_train, batch_size=self.batch, epochs=1, verbose=0)
        self.sync()
        return time.perf_counter() - start

    def evaluate(self) -> float:
        self.sync()
        start = time.perf_counter()
        _, self.eval_accuracy = self.model.evaluate(self.x_eval, self.y_eval, batch_size=self.eval_batch, verbose=0)
        self.sync()
        return time.perf_counter() - start


class TorchRow:
    """The fair eager baseline: the same net and init, data preloaded on the device, manual batching.

    build_model(nn) returns an nn.Module that ends in logits (softmax is fused into cross_entropy, as in
    tinynet); its Linear and Conv2d layers get Glorot-uniform weights and zero biases, Keras's and tinynet's
    init rather than torch's default. Loss and accuracy are summed on the device, read once an epoch.
    """

    def __init__(self, device: str, threads: int, data: tuple[Any, Any, Any, Any], build_model: Callable[[Any], Any],
                 batch: int, eval_batch: int) -> None:
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(SEED)
        self.torch, self.device = torch, torch.device(device)
        self.x_train, self.y_train, self.x_eval, self.y_eval = (torch.from_numpy(a).to(self.device) for a in data)
        self.batch, self.eval_batch = batch, eval_batch
        self.model = build_model(nn).to(self.device)
        for layer in self.model.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE, betas=(BETA_1, BETA_2),
                                          eps=EPSILON)
        self.eval_accuracy: float | None = None

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def epoch(self) -> float:
        torch, functional = self.torch, self.torch.nn.functional
        self.model.train()
        self.sync()
        start = time.perf_counter()
        n = len(self.x_train)
        order = torch.randperm(n, device=self.device)
        # loss and accuracy are accumulated on the device, as tinynet's fit() does, without a sync per step
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for first in range(0, n, self.batch):
            idx = order[first:first + self.batch]
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
        n = len(self.x_eval)
        with torch.no_grad():
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), dtype=torch.int64, device=self.device)
            for first in range(0, n, self.eval_batch):
                xb, yb = self.x_eval[first:first + self.eval_batch], self.y_eval[first:first + self.eval_batch]
                logits = self.model(xb)
                loss_sum += functional.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(1) == yb).sum()
            self.eval_accuracy = correct.item() / n
        self.sync()
        return time.perf_counter() - start

    def gpu_pool_bytes(self) -> int | None:
        # torch's caching allocator is its memory pool; "reserved" is what it holds from the driver
        return int(self.torch.cuda.max_memory_reserved()) if self.device.type == "cuda" else None


class FloorRow(ArrayRow):
    """Only the matrix products of a training step, at the step's shapes, once per step of an epoch.

    A subclass says which arrays a step has (make_buffers, through arrays()) and which products it
    computes (products). Outputs go to preallocated buffers so nothing but the products is timed: no
    step can be faster than this.
    """

    def __init__(self, backend: str, shapes: list[int]) -> None:
        import numpy as np
        if backend == "cupy":
            import cupy
            self.xp = cupy
        else:
            self.xp = np
        self.shapes = shapes  # the batch size of each step of an epoch
        self.buffers = {rows: self.make_buffers(rows) for rows in set(shapes)}
        self.eval_accuracy = None

    def make_buffers(self, rows: int) -> dict[str, Any]:
        raise NotImplementedError

    def products(self, b: dict[str, Any]) -> None:
        raise NotImplementedError

    def arrays(self, inputs: dict[str, tuple[int, ...]], outputs: dict[str, tuple[int, ...]]) -> dict[str, Any]:
        """Random float32 inputs (drawn from SEED in their order) and empty float32 outputs, on the backend."""
        import numpy as np
        xp, rng = self.xp, np.random.default_rng(SEED)
        arrays = {k: xp.asarray(rng.standard_normal(s, dtype=np.float32) * 0.1) for k, s in inputs.items()}
        arrays.update({k: xp.empty(s, dtype=xp.float32) for k, s in outputs.items()})
        return arrays

    def epoch(self) -> float:
        self.sync()
        start = time.perf_counter()
        for rows in self.shapes:
            self.products(self.buffers[rows])
        self.sync()
        return time.perf_counter() - start

    def evaluate(self) -> None:
        return None  # the floor has no model to evaluate


def serve_row(make_row: Callable[[], Any]) -> None:
    """Worker side: set up a row, then answer each command line from the parent with one message."""
    start = time.perf_counter()
    row = make_row()
    send({"ready": True, "setup_s": time.perf_counter() - start})
    for line in sys.stdin:
        command = line.strip()
        if command == "epoch":
            cpu = own_cpu_seconds()
            seconds = row.epoch()
            send({"epoch_s": seconds, "cpu_s": own_cpu_seconds() - cpu, "peak_rss_bytes": peak_rss_bytes()})
        elif command == "eval":
            send({"eval_s": row.evaluate()})
        elif command == "finish":
            send({"peak_rss_bytes": peak_rss_bytes(), "gpu_pool_bytes": row.gpu_pool_bytes(),
                  "eval_accuracy": row.eval_accuracy, "threads": thread_report()})
            return


def add_row_options(parser: Any, rows: Iterable[str], default_rows: Iterable[str],
                    default_threads: str | None = None) -> None:
    """The options every training benchmark takes (and the hidden ones its workers get)."""
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs per row, after one warm-up (default 3)")
    parser.add_argument("--threads", default=default_threads,
                        help="BLAS/OpenMP threads, e.g. 1 or 1,4, one table each (default: "
                             + ("1 and all logical cores)" if default_threads is None else f"{default_threads})"))
    parser.add_argument("--rows", default=",".join(default_rows), help=f"comma-separated subset of {', '.join(rows)}")
    add_data_options(parser)
    parser.add_argument("--json", default=None,
                        help="where to write the results (default benchmarks/results/<script>-<host>-<date>.json)")
    parser.add_argument("--worker", choices=tuple(rows), help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)


def add_data_options(parser: Any) -> None:
    parser.add_argument("--synthetic", action="store_true", help="random data of MNIST's shapes instead of MNIST")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default $TINYNET_DATA, else data/mnist)")


def parse_row_args(parser: Any, argv: list[str] | None) -> Any:
    """parser.parse_args(argv), with the checks of the options add_row_options added."""
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if getattr(args, "steps", None) is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    return args


FORWARDED_OPTIONS = ("data_dir", "before", "steps")  # passed on from the parent's command line to each worker


def start_row_worker(script: Path, name: str, threads: int, args: Any) -> Worker:
    argv = [sys.executable, str(script), "--worker", name, "--worker-threads", str(threads)]
    if args.synthetic:
        argv.append("--synthetic")
    for option in FORWARDED_OPTIONS:
        value = getattr(args, option, None)
        if value:
            argv += ["--" + option.replace("_", "-"), str(value)]
    return Worker(name, argv, thread_env(threads))


def available_rows(requested: list[str], machine: dict[str, Any], args: Any) -> list[str]:
    """The requested rows this machine can run; says why each skipped one is skipped."""
    paths, available = machine["gpu_paths"], []
    for name in requested:
        kind, backend = name.split("-", 1)
        reason = None
        if backend.startswith("cupy") and not paths["cupy_gpu"]:
            reason = "CuPy with a visible GPU not found"
        elif kind == "torch" and machine["torch"] is None:
            reason = "torch is not installed"
        elif kind == "torch" and backend == "cuda" and not paths["torch_cuda"]:
            reason = "torch sees no CUDA device"
        elif kind == "before" and not getattr(args, "before", None):
            reason = "no --before checkout given"
        if reason:
            print(f"skipping {name}: {reason}")
        else:
            available.append(name)
    return available


def measure_table(script: Path, rows: list[str], threads: int, args: Any) -> dict[str, dict[str, Any]]:
    """Warm-up round, then args.epochs rounds of one epoch (and one evaluation) per row, in turn."""
    results: dict[str, dict[str, Any]] = {name: {"epoch_s": [], "eval_s": [], "warmup_s": [], "others_share": []}
                                          for name in rows}
    workers: dict[str, Worker] = {}
    for name in rows:  # start (and set up) one after another: setup loads data and is not timed
        try:
            workers[name] = start_row_worker(script, name, threads, args)
            results[name]["setup_s"] = workers[name].receive()["setup_s"]
        except WorkerError as err:
            _fail(results, workers, name, err)
    for round_no in range(WARMUP_EPOCHS + args.epochs):
        warm = round_no < WARMUP_EPOCHS
        print(f"  threads={threads} {'warm-up' if warm else 'epoch'} {round_no + 1 - (0 if warm else WARMUP_EPOCHS)}:",
              end="", flush=True)
        for name in list(workers):
            try:
                settle()
                seconds, others, rss = timed_epoch(workers[name])
                results[name]["warmup_s" if warm else "epoch_s"].append(seconds)
                results[name].setdefault("peak_rss_first_epoch_bytes", rss)  # training only: no eval has run yet
                print(f" {name} {seconds:.2f}s" + ("" if others is None or others < LOADED else "(loaded)"),
                      end="", flush=True)
                if not warm:
                    results[name]["others_share"].append(others)
                    eval_s = workers[name].ask("eval")["eval_s"]
                    if eval_s is not None:
                        results[name]["eval_s"].append(eval_s)
            except WorkerError as err:
                _fail(results, workers, name, err)
        print()
    for name, worker in workers.items():
        try:
            results[name].update(worker.ask("finish"))
        except WorkerError as err:
            results[name]["error"] = str(err)
        worker.close()
    return results


def timed_epoch(worker: Worker) -> tuple[float, float | None, int]:
    """One epoch of a worker: its seconds, the CPU other processes used meanwhile (share of one core), and the
    worker's peak RSS so far."""
    busy_before = machine_busy_seconds()
    reply = worker.ask("epoch")
    busy_after = machine_busy_seconds()
    if busy_before is None or busy_after is None:
        return reply["epoch_s"], None, reply["peak_rss_bytes"]
    others = max(0.0, busy_after - busy_before - reply["cpu_s"])
    return reply["epoch_s"], others / reply["epoch_s"], reply["peak_rss_bytes"]


def _fail(results: dict[str, dict[str, Any]], workers: dict[str, Worker], name: str, err: Exception) -> None:
    print(f"\n  {name} failed: {err}", flush=True)
    results[name]["error"] = str(err)
    worker = workers.pop(name, None)
    if worker is not None:
        worker.close()


def summarise(results: dict[str, dict[str, Any]], samples_per_epoch: int, baseline: dict[str, str]) -> None:
    """Add medians, samples/s and the ratio to the row named by baseline[backend] (the part after "kind-")."""
    for row in results.values():
        if row["epoch_s"]:
            row["median_epoch_s"] = statistics.median(row["epoch_s"])
            row["samples_per_s"] = samples_per_epoch / row["median_epoch_s"]
        row["median_eval_s"] = statistics.median(row["eval_s"]) if row["eval_s"] else None
    for name, row in results.items():
        base = results.get(baseline.get(name.split("-", 1)[1], ""), {})
        if "median_epoch_s" in row and "median_epoch_s" in base:
            row["ratio_to_tinynet"] = row["median_epoch_s"] / base["median_epoch_s"]


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def _others(shares: list[float | None]) -> str:
    """The most CPU other processes took during one of the row's measured epochs, in % of one core."""
    known = [s for s in shares if s is not None]
    return "?" if not known else f"{100 * max(known):.0f}%" + ("!" if max(known) >= LOADED else "")


def format_table(results: dict[str, dict[str, Any]], threads: int, eval_header: str = "eval 10k s",
                 accuracy_header: str = "test acc") -> str:
    header = (f"{'row':<22} {'threads':>7} {'epoch s':>8} {'min-max s':>11} {'samples/s':>10} {eval_header:>10} "
              f"{accuracy_header:>8} {'peak RSS MiB':>12} {'GPU pool MiB':>12} {'x tinynet':>9} {'others':>6}")
    lines = [header, "-" * len(header)]
    for name, row in results.items():
        if "median_epoch_s" not in row:
            lines.append(f"{name:<22} {threads:>7} failed: {row.get('error', 'no epochs measured')}")
            continue
        acc = "-" if row.get("eval_accuracy") is None else f"{row['eval_accuracy']:.4f}"
        eval_s = "-" if row["median_eval_s"] is None else f"{row['median_eval_s']:.3f}"
        ratio = f"{row['ratio_to_tinynet']:.2f}" if "ratio_to_tinynet" in row else "-"
        lines.append(f"{name:<22} {threads:>7} {row['median_epoch_s']:>8.3f} "
                     f"{min(row['epoch_s']):>5.2f}-{max(row['epoch_s']):<5.2f} {row['samples_per_s']:>10,.0f} "
                     f"{eval_s:>10} {acc:>8} {_mib(row.get('peak_rss_bytes')):>12} "
                     f"{_mib(row.get('gpu_pool_bytes')):>12} {ratio:>9} {_others(row['others_share']):>6}")
    return "\n".join(lines)


def run_benchmark(script: Path, args: Any, all_rows: Iterable[str], settings: dict[str, Any],
                  baseline: dict[str, str], json_kind: str, eval_header: str = "eval 10k s",
                  accuracy_header: str = "test acc") -> None:
    """The parent's whole run: check the rows, probe the machine, one interleaved table per thread count,
    print the tables, write the JSON. settings needs "batch", "steps_per_epoch" and "samples_per_epoch"."""
    all_rows = tuple(all_rows)
    requested = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(requested) - set(all_rows))
    if unknown:
        raise SystemExit(f"--rows: unknown row(s) {', '.join(unknown)}; valid rows are {', '.join(all_rows)}")
    thread_counts = parse_threads(args.threads)
    resolve_data_dir(args)
    if args.epochs < 3:
        print(f"note: a median of {args.epochs} epoch(s) is noisy; 3 or more is better")
    machine = probe_machine(thread_counts[0])
    rows = available_rows([r for r in all_rows if r in requested], machine, args)
    if not rows:
        raise SystemExit("no row can run on this machine; see the reasons above")
    print(describe(machine))
    print(f"data: {'synthetic' if args.synthetic else args.data_dir}; batch {settings['batch']}, "
          f"{settings['steps_per_epoch']} steps per epoch, {WARMUP_EPOCHS} warm-up + {args.epochs} measured epochs "
          f"per row\n")
    tables = []
    for threads in thread_counts:
        meter = LoadMeter()
        results = measure_table(script, rows, threads, args)
        summarise(results, settings["samples_per_epoch"], baseline)
        tables.append({"threads": threads, "rows": results, "load": meter.stop()})
    print()
    for table in tables:
        print(format_table(table["rows"], table["threads"], eval_header, accuracy_header))
        print(describe_load(table["load"]) + "\n")
    report = {**run_header(sys.argv), "machine": machine,
              "data": "synthetic" if args.synthetic else str(args.data_dir),
              "settings": {**settings, "warmup_epochs": WARMUP_EPOCHS, "epochs": args.epochs, "rows": rows},
              "tables": tables}
    write_json(args.json or default_json_path(json_kind), report)


# ---- output -----------------------------------------------------------------------------
def default_json_path(kind: str) -> Path:
    """benchmarks/results/<kind>-<hostname>-<date>.json"""
    return RESULTS_DIR / f"{kind}-{socket.gethostname()}-{datetime.date.today().isoformat()}.json"


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"Wrote {path}")


def library_revision() -> dict[str, Any]:
    """The checkout's commit, and whether tinynet/ had uncommitted changes: results depend on both."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD") or "unknown",
                "tinynet_uncommitted_changes": bool(git("status", "--porcelain", "--", "tinynet"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown (no git)"}


def run_header(argv: Iterable[str]) -> dict[str, Any]:
    """Command line, time and library revision of the run, for the JSON."""
    return {"command": " ".join([Path(sys.executable).name, *argv]),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "revision": library_revision()}


if __name__ == "__main__":
    if "--worker-probe" in sys.argv:
        send(machine_info())
    else:
        print(json.dumps(machine_info(), indent=1))
