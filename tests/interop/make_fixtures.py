"""Write tests/interop/fixtures/: small MNIST-shaped models made by the real producers, and their outputs.

- ``keras_cnn.keras`` and ``keras_cnn.h5``: a Keras 3 model (seed 000's layers, smaller) saved by Keras;
- ``torch_cnn.onnx``: a PyTorch CNN with a global-average-pooling head, from ``torch.onnx.export``;
- ``expected.npz``: the inputs ``x`` (N, 28, 28, 1) and each producer's probabilities for them.

Run from the repository root: ``KERAS_BACKEND=torch python tests/interop/make_fixtures.py``. The suite
reads these files without importing Keras or PyTorch (tests/interop/test_imported_models.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

from producers import keras, randomize_keras  # noqa: E402

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def keras_cnn():
    k = keras()
    L = k.layers
    return k.Sequential([k.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu", name="conv1"),
                         L.MaxPooling2D(2, name="pool1"), L.Conv2D(6, 3, activation="relu", name="conv2"),
                         L.MaxPooling2D(2, name="pool2"), L.Dropout(0.25, name="drop"), L.Flatten(name="flat"),
                         L.Dense(10, activation="softmax", name="preds")], name="keras_cnn")


def torch_cnn():
    import torch
    from torch import nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3),
                         nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10),
                         nn.Softmax(dim=1)).eval()


def main():
    import torch
    os.makedirs(FOLDER, exist_ok=True)
    x = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    model = randomize_keras(keras_cnn(), 0)
    model.save(os.path.join(FOLDER, "keras_cnn.keras"))
    model.save(os.path.join(FOLDER, "keras_cnn.h5"))
    net = torch_cnn()
    torch.onnx.export(net, (torch.zeros(1, 1, 28, 28),), os.path.join(FOLDER, "torch_cnn.onnx"), dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    with torch.no_grad():
        torch_probs = net(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
    np.savez(os.path.join(FOLDER, "expected.npz"), x=x, keras=model.predict(x, verbose=0), torch=torch_probs)


if __name__ == "__main__":
    main()
