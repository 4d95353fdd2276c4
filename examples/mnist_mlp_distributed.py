"""The tutorial's network trained data-parallel: the same script on one process or many.

    python examples/mnist_mlp_distributed.py              # one process, as examples/mnist_mlp.py trains
    mpirun -n 2 python examples/mnist_mlp_distributed.py  # two processes, each computing half of every batch

Each process takes its share of every batch of 128, computes its gradient, and one allreduce of
the flat gradient vector gives every process the whole batch's gradient (tinynet/distributed.py
says why that is exact). The weights start as rank 0's and stay the same everywhere; only rank 0
prints and saves. Across machines, give mpirun a host file (`mpirun -n 4 -f hosts python ...` with
MPICH, `--hostfile` with Open MPI), with tinynet and the data on every machine.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import tinynet
from tinynet import Sequential, distributed
from tinynet.datasets import mnist
from tinynet.layers import Activation, Dense, Dropout
from tinynet.utils import to_categorical


def main() -> None:
    parser = argparse.ArgumentParser(description="the tutorial's MLP, data-parallel over MPI")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch, shared by all processes")
    parser.add_argument("--train-samples", type=int, default=60000, help="the first N training images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    distributed.init()
    tinynet.set_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir)
    x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    x_train, x_test = x_train.reshape(-1, 784).astype("float32") / 255, x_test.reshape(-1, 784).astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
    if distributed.is_root():
        print(f"{distributed.size()} process(es), each taking 1/{distributed.size()} of every batch of "
              f"{args.batch_size}")

    model = Sequential([Dense(512, input_shape=(784,)), Activation("relu"), Dropout(0.2),
                        Dense(512), Activation("relu"), Dropout(0.2), Dense(10), Activation("softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
              validation_data=(x_test, y_test))
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)  # every process gets the same numbers
    if distributed.is_root():
        print(f"Test loss: {loss:.4f}, test accuracy: {accuracy:.4f}, training {seconds:.1f} s "
              f"with {distributed.size()} process(es)")
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "distributed_summary.json"), "w") as f:
            json.dump({"processes": distributed.size(), "epochs": args.epochs, "test_loss": loss,
                       "test_accuracy": accuracy, "train_seconds": seconds}, f)
    model.save(os.path.join(args.out, "mnist_mlp_distributed.tinynet"))  # rank 0 writes it


if __name__ == "__main__":
    main()
