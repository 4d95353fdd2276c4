"""Data-parallel throughput: the tutorial MLP's epoch on 1 process and on N processes (one BLAS thread each).

Each run is `mpiexec -n N python bench_distributed.py --worker`: every process loads MNIST, builds the
tutorial network (784-512-512-10, Dropout 0.2, Adam, global batch 128), trains one warm-up epoch and
--epochs measured ones, and times the allreduces of its steps (tinynet.distributed.average_gradients,
wrapped here). Rank 0 reports the median epoch, samples per second, the allreduce's milliseconds per
step and its share of the step, and the test accuracy reached.

    python benchmarks/bench_distributed.py                       # 1 and 2 processes
    python benchmarks/bench_distributed.py --processes 1,2,4 --epochs 3
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

BATCH = 128


def worker(args: argparse.Namespace) -> None:
    """One process of an MPI run: train, time, and (rank 0) print one JSON line."""
    common.use_checkout()
    import tinynet
    from tinynet import distributed
    from tinynet.callbacks import LambdaCallback
    from tinynet.layers import Activation, Dense, Dropout

    distributed.init()
    x, y, x_test, y_test = common.load_mnist_raw(args.data_dir, args.synthetic)
    x, x_test = x.reshape(-1, 784).astype("float32") / 255, x_test.reshape(-1, 784).astype("float32") / 255
    y, y_test = tinynet.utils.to_categorical(y, 10), tinynet.utils.to_categorical(y_test, 10)
    tinynet.set_seed(common.SEED)
    model = tinynet.Sequential([Dense(512, input_shape=(784,)), Activation("relu"), Dropout(0.2), Dense(512),
                                Activation("relu"), Dropout(0.2), Dense(10), Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    spent = [0.0]
    average = distributed.average_gradients

    def timed(grads, loss, rows):  # the allreduce (and the wait for the slowest process) of one step
        start = time.perf_counter()
        result = average(grads, loss, rows)
        spent[0] += time.perf_counter() - start
        return result
    distributed.average_gradients = timed
    epochs, allreduce = [], []
    clock = LambdaCallback(on_epoch_begin=lambda e, logs: (epochs.append(-time.perf_counter()), spent.__setitem__(0, 0)),
                           on_epoch_end=lambda e, logs: (epochs.__setitem__(-1, epochs[-1] + time.perf_counter()),
                                                         allreduce.append(spent[0])))
    model.fit(x, y, batch_size=BATCH, epochs=common.WARMUP_EPOCHS + args.epochs, verbose=0, callbacks=[clock])
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    if distributed.is_root():
        steps = -(-len(x) // BATCH)
        measured, reduce_s = epochs[common.WARMUP_EPOCHS:], allreduce[common.WARMUP_EPOCHS:]
        print(json.dumps({"processes": distributed.size(), "epoch_s": statistics.median(measured),
                          "epochs_s": measured, "allreduce_ms_per_step": 1000 * statistics.median(reduce_s) / steps,
                          "allreduce_share": statistics.median(r / e for r, e in zip(reduce_s, measured)),
                          "samples_per_s": len(x) / statistics.median(measured), "test_accuracy": accuracy,
                          "test_loss": loss, "threads": common.thread_report()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts (default 1,2)")
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs per run, after one warm-up")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    common.add_data_options(parser)
    args = parser.parse_args()
    common.resolve_data_dir(args)
    if args.worker:
        return worker(args)
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('bench_distributed: no mpiexec; pip install ".[mpi]"')
    machine = common.probe_machine(1)
    print(common.describe(machine))
    rows = []
    for n in (int(p) for p in args.processes.split(",")):
        command = [mpiexec, "-n", str(n), sys.executable, str(Path(__file__).resolve()), "--worker",
                   "--epochs", str(args.epochs)] + (["--synthetic"] if args.synthetic else []) + \
            (["--data-dir", args.data_dir] if args.data_dir else [])
        load = common.LoadMeter()
        proc = subprocess.run(command, capture_output=True, text=True, env=common.thread_env(1), timeout=3600)
        if proc.returncode != 0:
            sys.exit(f"bench_distributed: {n} processes failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["load"] = load.stop()
        rows.append(row)
    print(f"\n{'processes':>9} {'epoch s':>8} {'samples/s':>10} {'speed-up':>8} {'allreduce ms/step':>18} "
          f"{'share':>6} {'test acc':>8}")
    for row in rows:
        print(f"{row['processes']:>9} {row['epoch_s']:>8.3f} {row['samples_per_s']:>10,.0f} "
              f"{rows[0]['epoch_s'] / row['epoch_s']:>8.2f} {row['allreduce_ms_per_step']:>18.3f} "
              f"{row['allreduce_share']:>6.1%} {row['test_accuracy']:>8.4f}   {common.describe_load(row['load'])}")


if __name__ == "__main__":
    main()
