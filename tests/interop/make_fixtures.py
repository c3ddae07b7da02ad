"""Write tests/interop/fixtures/: small MNIST-shaped models made by the real producers, and their outputs.

- ``keras_cnn.keras`` and ``keras_cnn.h5``: a Keras 3 model (seed 000's layers, smaller) saved by Keras;
- ``torch_cnn.onnx``: a PyTorch CNN with a global-average-pooling head, from ``torch.onnx.export``;
- ``keras_resnet.keras`` and ``keras_resnet.h5``: a Keras 3 Functional graph (a residual block, a
  two-branch concatenation);
- ``torch_resnet.onnx``: a PyTorch ResNet (identity and projection shortcuts, a torch.cat of branches);
- ``expected.npz``: the inputs ``x`` (N, 28, 28, 1) and each producer's probabilities for them.

Run from the repository root: ``KERAS_BACKEND=torch python tests/interop/make_fixtures.py``. The suite
reads these files without importing Keras or PyTorch (tests/interop/test_imported_models.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

from producers import keras, randomize_batch_norm, randomize_keras  # noqa: E402

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def keras_cnn():
    k = keras()
    L = k.layers
    return k.Sequential([k.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu", name="conv1"),
                         L.MaxPooling2D(2, name="pool1"), L.Conv2D(6, 3, activation="relu", name="conv2"),
                         L.MaxPooling2D(2, name="pool2"), L.Dropout(0.25, name="drop"), L.Flatten(name="flat"),
                         L.Dense(10, activation="softmax", name="preds")], name="keras_cnn")


def keras_resnet():
    k = keras()
    L = k.layers
    inputs = k.Input((28, 28, 1), name="image")
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(L.Conv2D(4, 3, padding="same", name="stem")(inputs)))
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(x)
    y = L.BatchNormalization(name="bn_b")(L.Conv2D(4, 3, padding="same", name="conv_b")(y))
    x = L.Activation("relu", name="block_out")(L.Add(name="residual")([x, y]))
    x = L.MaxPooling2D(2, name="pool")(x)
    wide = L.Conv2D(3, 1, activation="relu", name="conv_wide")(x)
    deep = L.Conv2D(3, 3, padding="same", dilation_rate=2, activation="relu", name="conv_deep")(x)
    x = L.Concatenate(name="branches")([wide, deep, x])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, L.Dense(10, activation="softmax", name="preds")(x), name="keras_resnet")


def torch_resnet():
    import torch
    from torch import nn

    class Block(nn.Module):
        """conv-bn-relu-conv-bn plus a shortcut (a strided 1x1 projection when the shape changes), relu."""
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
            self.block1, self.block2 = Block(4, 4, 1), Block(4, 6, 2)
            self.side = nn.Conv2d(6, 2, 1)
            self.fc = nn.Linear(8, 10)
            self.cam_module = self.block2

        def forward(self, x):
            x = self.block2(self.block1(self.stem(x)))
            x = torch.cat([x, torch.relu(self.side(x))], dim=1)
            scores = self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
            return scores if self.logits else torch.softmax(scores, dim=1)

        logits = False

    torch.manual_seed(1)
    return randomize_batch_norm(ResNet()).eval()


def torch_cnn():
    import torch
    from torch import nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3),
                         nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10),
                         nn.Softmax(dim=1)).eval()


def _export(net, path):
    import torch
    torch.onnx.export(net, (torch.zeros(1, 1, 28, 28),), path, dynamo=False, opset_version=17, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def main():
    import torch
    os.makedirs(FOLDER, exist_ok=True)
    x = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    expected = {"x": x}
    for name, make, seed in (("keras_cnn", keras_cnn, 0), ("keras_resnet", keras_resnet, 1)):
        model = randomize_keras(make(), seed)
        model.save(os.path.join(FOLDER, f"{name}.keras"))
        model.save(os.path.join(FOLDER, f"{name}.h5"))
        expected[name.replace("_cnn", "")] = model.predict(x, verbose=0)
    for name, make in (("torch_cnn", torch_cnn), ("torch_resnet", torch_resnet)):
        net = make()
        _export(net, os.path.join(FOLDER, f"{name}.onnx"))
        with torch.no_grad():
            expected[name.replace("_cnn", "")] = net(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
    np.savez(os.path.join(FOLDER, "expected.npz"), **expected)


if __name__ == "__main__":
    main()
