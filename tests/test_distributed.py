"""Data-parallel training over MPI: two processes end where one process ends, and faults stop every process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinynet import distributed

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not distributed.mpi_installed(),
                               reason='mpi4py and an MPI launcher are needed: pip install ".[mpi]"')

TRAIN = textwrap.dedent("""
    import sys
    import numpy as np
    import tinynet
    from tinynet import distributed
    from tinynet.callbacks import LambdaCallback
    from tinynet.layers import Activation, Dense, Dropout

    out, samples, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    distributed.init()
    tinynet.backend.set_floatx("float64")
    tinynet.set_seed(distributed.rank())  # different on every process: fit must start them from rank 0's weights
    gen = np.random.default_rng(0)
    x = gen.standard_normal((samples, 20))
    y = tinynet.utils.to_categorical((x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1), 3)
    model = tinynet.Sequential([Dense(32, input_shape=(20,)), Activation("relu"), Dropout(0.0), Dense(3),
                                Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    epochs = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: epochs.append(np.concatenate(
        [w.ravel() for w in model.get_weights()])))
    history = model.fit(x, y, batch_size=batch, epochs=3, shuffle=False, verbose=0, validation_split=0.2,
                        callbacks=[record])
    np.savez(f"{out}/rank{distributed.rank()}.npz", weights=np.stack(epochs),
             loss=np.array(history.history["loss"]), val_loss=np.array(history.history["val_loss"]),
             evaluate=np.array(model.evaluate(x, y, verbose=0)))
""")


def _run(tmp_path: Path, code: str, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, str(script), *args]
    if processes > 1:
        command = [MPIEXEC, "-n", str(processes)] + command
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


@needs_mpi
def test_two_processes_end_where_one_process_ends(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    for folder, processes in ((one, 1), (two, 2)):
        proc = _run(tmp_path, TRAIN, str(folder), "650", "128", processes=processes)  # 520 to train: a last batch of 8
        assert proc.returncode == 0, proc.stderr
    alone, rank0, rank1 = (np.load(folder / f"rank{r}.npz") for folder, r in ((one, 0), (two, 0), (two, 1)))
    np.testing.assert_array_equal(rank0["weights"], rank1["weights"])  # the same weights after every epoch
    scale = np.abs(alone["weights"]).max()
    np.testing.assert_allclose(rank0["weights"], alone["weights"], rtol=0, atol=1e-10 * scale)
    for key in ("loss", "val_loss", "evaluate"):  # logs and evaluate are the whole data's, on every process
        np.testing.assert_allclose(rank0[key], alone[key], rtol=1e-10)
        np.testing.assert_array_equal(rank0[key], rank1[key])


@needs_mpi
def test_processes_given_different_data_stop_with_an_error_not_a_hang(tmp_path):
    code = TRAIN.replace("samples, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])",
                         "samples, batch = sys.argv[1], int(sys.argv[2]) + 10 * distributed.rank(), int(sys.argv[3])"
                         ).replace("distributed.init()\n", "")
    code = code.replace("import sys\n", "import sys\nfrom tinynet import distributed\ndistributed.init()\n", 1)
    proc = _run(tmp_path, code, str(tmp_path), "300", "64")
    assert proc.returncode != 0
    assert "different numbers of training samples: rank 0: 240, rank 1: 248" in proc.stderr


@needs_mpi
def test_a_failing_process_aborts_the_others(tmp_path):
    code = textwrap.dedent("""
        import numpy as np
        from tinynet import distributed
        distributed.init()
        if distributed.rank() == 1:
            raise RuntimeError("rank 1 breaks")
        distributed.sum_over_processes(np.ones(3))  # rank 0 would wait here forever without the abort
    """)
    proc = _run(tmp_path, code)
    assert proc.returncode != 0 and "rank 1 breaks" in proc.stderr and "aborting all 2 processes" in proc.stderr


@needs_mpi
def test_a_batch_too_small_to_share_is_refused(tmp_path):
    proc = _run(tmp_path, TRAIN, str(tmp_path), "162", "128")  # 129 to train: a last batch of 1 row for 2 processes
    assert proc.returncode != 0 and "every batch must have at least 2 samples" in proc.stderr


def test_one_process_needs_no_mpi_and_shards_nothing():
    assert distributed.size() == 1 and distributed.rank() == 0 and distributed.shard(128) == slice(0, 128)
    grads = np.ones(4)
    loss, rows = distributed.average_gradients(grads, np.float64(0.5), 128)
    assert (loss, rows) == (0.5, 128) and np.array_equal(grads, np.ones(4))


def test_shards_cover_a_batch_once_with_sizes_differing_by_one_at_most(monkeypatch):
    for processes in (2, 3, 5):
        monkeypatch.setattr(distributed, "size", lambda p=processes: p)
        for n in (5, 96, 128):
            parts = []
            for r in range(processes):
                monkeypatch.setattr(distributed, "rank", lambda r=r: r)
                parts.append(distributed.shard(n))
            sizes = [s.stop - s.start for s in parts]
            assert parts[0].start == 0 and parts[-1].stop == n and max(sizes) - min(sizes) <= 1
            assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))


@needs_mpi
def test_the_distributed_example_runs_on_two_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(ROOT / "examples" / "mnist_mlp_distributed.py"),
                           "--epochs", "1", "--train-samples", "3000", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Epoch 1/1") == 1  # rank 0 prints, rank 1 does not
    summary = json.loads((tmp_path / "distributed_summary.json").read_text())
    assert summary["processes"] == 2 and summary["test_accuracy"] > 0.85
    assert (tmp_path / "mnist_mlp_distributed.tinynet").exists()
