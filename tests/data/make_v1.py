"""Made with tinynet at commit 1218518 (format version 1): two small trained models, and what the old code did next."""
import numpy as np, tinynet
from tinynet import Sequential
from tinynet.layers import Activation, Dense, Dropout
from tinynet.optimizers import SGD

gen = np.random.default_rng(0)
x = gen.standard_normal((40, 4)).astype(np.float32)
labels = np.arange(40) % 3
y = np.eye(3, dtype=np.float32)[labels]
expected = {}
for name, opt in (("adam", "adam"), ("sgd", SGD(0.05, momentum=0.9, nesterov=True))):
    tinynet.set_seed(1)
    model = Sequential([Dense(5, input_shape=(4,)), Activation("relu"), Dropout(0.25), Dense(3),
                        Activation("softmax")], name=f"v1_{name}")
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(f"/work/main/tests/data/v1-{name}.tinynet")
    tinynet.set_seed(5)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for i, w in enumerate(model.get_weights()):
        expected[f"{name}.after_one_more_epoch.{i}"] = w
np.savez("/work/main/tests/data/v1-continued.npz", x=x, y=y, **expected)
