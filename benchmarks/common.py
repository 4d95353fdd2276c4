"""Shared plumbing for the benchmark scripts: thread settings, worker processes, machine facts.

Nothing here imports NumPy at module level. The parent process of a benchmark never loads
NumPy or torch: every measurement runs in a child process whose BLAS/OpenMP thread variables
were set in its environment before it started, because OpenBLAS, MKL and OpenMP read them
once, when the library loads.

    python benchmarks/common.py        # print this machine's facts as JSON (what the benchmarks record)
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import shutil
import socket
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
