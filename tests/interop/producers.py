"""The real producers of Keras and ONNX files (dev-only test oracles): Keras 3 on its PyTorch backend,
and PyTorch with torch.onnx.export; and Grad-CAM / saliency computed in those frameworks.

Grad-CAM here is the paper's: ``ReLU(sum_k mean_ij(dS/dA_k) A_k)`` at a layer's output A, without
upsampling; saliency is ``max_c |dS/dx_c|``; S is the target's pre-softmax score (the logit).
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402


def keras():
    import keras as keras_module
    if keras_module.backend.backend() != "torch":
        import pytest
        pytest.skip("these oracles need Keras on its PyTorch backend (KERAS_BACKEND=torch)")
    return keras_module


def randomize_keras(model, seed):
    """Random weights (moving variances positive) so that no layer is near the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = []
        for variable in layer.weights:
            value = rng.normal(0, 0.4, variable.shape).astype("float32")
            if "variance" in variable.path:
                value = np.abs(value) + 0.5
            weights.append(value)
        if weights:
            layer.set_weights(weights)
    return model


def keras_architectures():
    """name -> a function building a Keras 3 model; together they use every layer glassnet reads."""
    k = keras()
    L = k.layers

    def mnist_cnn():        # seed 000's model, smaller
        return k.Sequential([k.Input((14, 14, 1)), L.Conv2D(4, 3, activation="relu"),
                             L.Conv2D(6, 3, activation="relu", name="cam"), L.MaxPooling2D(2), L.Dropout(0.25), L.Flatten(),
                             L.Dense(16, activation="relu"), L.Dropout(0.5), L.Dense(5, activation="softmax")])

    def bn_prelu_gap():
        return k.Sequential([k.Input((12, 10, 3)), L.Conv2D(5, 3, padding="same", use_bias=False),
                             L.BatchNormalization(), L.PReLU(shared_axes=[1, 2], name="cam"),
                             L.AveragePooling2D(3, strides=1, padding="same"), L.Conv2D(6, 2, strides=2),
                             L.LeakyReLU(negative_slope=0.2), L.GlobalAveragePooling2D(), L.Dense(4),
                             L.Softmax()])

    def strided_tanh():
        return k.Sequential([k.Input((11, 11, 2)), L.ZeroPadding2D(((1, 0), (2, 1))),
                             L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="tanh", name="cam"),
                             L.ReLU(max_value=0.5), L.MaxPooling2D(2, strides=1), L.Activation("sigmoid"),
                             L.GlobalMaxPooling2D(), L.Reshape((2, 2)), L.Flatten(), L.Dense(3, activation="sigmoid")])

    def channels_first():
        cf = {"data_format": "channels_first"}
        return k.Sequential([k.Input((2, 9, 9)), L.Conv2D(4, 3, activation="relu", **cf),
                             L.BatchNormalization(axis=1), L.MaxPooling2D(2, **cf), L.Conv2D(3, 2, name="cam", **cf),
                             L.Flatten(), L.Dense(6, activation="relu"), L.Dense(4, activation="softmax")])

    def mobile():           # the depthwise family, resampling and preprocessing layers
        return k.Sequential([k.Input((12, 12, 3)), L.Rescaling(0.5, offset=-0.25), L.RandomFlip(),
                             L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, activation="relu"),
                             L.DepthwiseConv2D(3, dilation_rate=2, depth_multiplier=2, name="cam"),
                             L.UpSampling2D(2, interpolation="bilinear"), L.Cropping2D(((1, 0), (0, 2))),
                             L.DepthwiseConv2D(2, strides=2, padding="same", activation="tanh"),
                             L.UpSampling2D((1, 2)), L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")])

    return {"mnist_cnn": mnist_cnn, "bn_prelu_gap": bn_prelu_gap, "strided_tanh": strided_tanh,
            "channels_first": channels_first, "mobile": mobile}


def keras_logits_and_grads(model, x, target, layer_name, channels_first=False):
    """Keras's logits, saliency and Grad-CAM (at ``layer_name``) for inputs ``x`` in the model's own layout."""
    import torch
    k = keras()
    inputs = torch.tensor(x, requires_grad=True)
    h, kept = inputs, None
    for layer in model.layers:
        final = layer is model.layers[-1]
        if final and isinstance(layer, k.layers.Softmax):
            break
        saved = layer.activation if final else None
        if saved is not None:
            layer.activation = k.activations.linear        # the logits: no final softmax / sigmoid
        h = layer(h, training=False)
        if saved is not None:
            layer.activation = saved
        if layer.name == layer_name:
            kept = h
            kept.retain_grad()
    h[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    return (h.detach().numpy(),) + saliency_and_cam(inputs.grad.numpy(), kept.detach().numpy(), kept.grad.numpy(),
                                                    channels_first)


def saliency_and_cam(input_grads, activations, grads, channels_first):
    """Saliency ``max_c |dS/dx_c|`` and the paper's Grad-CAM from the producer's autograd: the score's
    gradients for the input and for the activations A of the Grad-CAM layer, in the producer's layout."""
    if channels_first:
        activations, grads = activations.transpose(0, 2, 3, 1), grads.transpose(0, 2, 3, 1)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", activations, grads.mean(axis=(1, 2))), 0)
    return np.abs(input_grads).max(axis=1 if channels_first else -1), cam


def keras_graph_logits_and_grads(model, x, target, channels_first=False):
    """Keras's logits (the input of its final Softmax / softmax Dense), saliency and Grad-CAM at "cam",
    by torch autograd through the Keras graph itself."""
    import torch
    k = keras()
    head = model.layers[-1]
    saved = getattr(head, "activation", None)
    if saved is not None:
        head.activation = k.activations.linear
    logits_tensor = model.layers[-2].output if saved is None else head.output
    probe = k.Model(model.inputs, [model.get_layer("cam").output, logits_tensor])
    inputs = torch.tensor(x, requires_grad=True)
    try:
        activations, logits = probe(inputs, training=False)
    finally:
        if saved is not None:
            head.activation = saved
    score = logits[torch.arange(len(x)), torch.as_tensor(target)].sum()
    grads, input_grads = torch.autograd.grad(score, [activations, inputs])
    return (logits.detach().numpy(),) + saliency_and_cam(input_grads.numpy(), activations.detach().numpy(),
                                                         grads.numpy(), channels_first)


def write_keras_files(builders, folder, first_seed):
    """name -> (Keras model with random weights, path of its .keras, path of its legacy .h5), saved in ``folder``."""
    out = {}
    for seed, (name, make) in enumerate(builders.items(), start=first_seed):
        model = randomize_keras(make(), seed)
        model.save(folder / f"{name}.keras")
        model.save(folder / f"{name}.h5")
        out[name] = (model, folder / f"{name}.keras", folder / f"{name}.h5")
    return out


def torch_nets():
    """name -> a function building a PyTorch CNN (eval mode, seeded) with its Grad-CAM module."""
    import torch
    from torch import nn

    class Plain(nn.Module):        # LeNet-like: conv, relu, pool, flatten (channels-first), linear
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1 = nn.Conv2d(1, 4, 5), nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv2, self.relu2 = nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()
            self.fc1, self.fc2 = nn.Linear(6 * 6 * 6, 12), nn.Linear(12, 5)
            self.cam_module = self.relu2

        def forward(self, x):
            x = self.pool(self.relu1(self.conv1(x)))
            x = self.relu2(self.conv2(x))
            return self.fc2(torch.tanh(self.fc1(torch.flatten(x, 1))))

        logits = False

    class Modern(nn.Module):       # BN, PReLU, padded pooling, GAP, a view() flatten
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU()
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.conv2, self.prelu = nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.PReLU(8)
            self.avg = nn.AvgPool2d(2, padding=1)
            self.leaky = nn.LeakyReLU(0.1)
            self.drop = nn.Dropout(0.3)
            self.fc = nn.Linear(8, 4)
            self.cam_module = self.prelu

        def forward(self, x):
            x = self.pool(self.relu1(self.bn1(self.conv1(x))))
            x = self.avg(self.prelu(self.conv2(x)))
            x = nn.functional.adaptive_avg_pool2d(self.leaky(x), 1)
            scores = self.fc(self.drop(x.view(x.size(0), -1)))
            return scores if self.logits else torch.softmax(scores, dim=1)

        logits = False

    class Branches(nn.Module):     # a residual Add, a torch.cat of channels and one of heights, three
        def __init__(self):        # flattened (channels-first) branches concatenated into one Linear
            super().__init__()
            self.stem, self.bn = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.conv, self.relu = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
            self.side, self.small = nn.Conv2d(2, 3, 1), nn.Conv2d(7, 3, 3, stride=2)
            self.fc = nn.Linear(7 * 5 * 5 + 3 * 4 * 4 + 7 * 10 * 5, 5)
            self.cam_module = self.relu

        def forward(self, x):
            h = torch.relu(self.bn(self.stem(x)))
            h = torch.cat([self.relu(h + self.conv(h)), torch.tanh(self.side(x))], dim=1)
            small = torch.relu(self.small(h))
            tall = torch.cat([h[:, :, :5, :5], h[:, :, 5:, 5:]], dim=2)
            features = torch.cat([torch.flatten(nn.functional.avg_pool2d(h, 2), 1),
                                  small.reshape(small.shape[0], -1), torch.flatten(tall, 1)], dim=1)
            scores = self.fc(features)
            return scores if self.logits else torch.softmax(scores, dim=1)

        logits = False

    def build(cls, seed):
        torch.manual_seed(seed)
        return randomize_batch_norm(cls()).eval()

    return {"plain": (lambda: build(Plain, 0), (1, 1, 16, 16)), "modern": (lambda: build(Modern, 1), (2, 3, 12, 12)),
            "branches": (lambda: build(Branches, 2), (1, 2, 10, 10))}


def randomize_batch_norm(net):
    """Give every BatchNorm2d of a torch module random statistics and affine weights (from torch's RNG),
    so that none is near the identity; returns the module."""
    import torch
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net


def torch_logits_and_grads(net, x, target):
    """PyTorch's logits (before a final softmax), saliency and Grad-CAM at ``net.cam_module``."""
    import torch
    kept = {}
    handle = net.cam_module.register_forward_hook(lambda module, args, out: kept.setdefault("a", out))
    inputs = torch.tensor(x, requires_grad=True)
    net.logits = True
    try:
        out = net(inputs)
    finally:
        handle.remove()
        net.logits = False
    activation = kept["a"]
    activation.retain_grad()
    out[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    return (out.detach().numpy(),) + saliency_and_cam(inputs.grad.numpy(), activation.detach().numpy(),
                                                      activation.grad.numpy(), channels_first=True)


def export_torch(net, shape, path, dynamo=False):
    """``torch.onnx.export`` of ``net`` on inputs of ``shape`` (batch dimension dynamic)."""
    import torch
    x = torch.zeros(shape)
    if dynamo:
        torch.onnx.export(net, (x,), path, input_names=["x"], opset_version=18, dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    else:
        torch.onnx.export(net, (x,), path, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False,
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, do_constant_folding=False)


def glassnet_models():
    """name -> a glassnet model (random weights) for the writers: together they use every layer
    .keras and ONNX files carry; its first convolution has explicit, uneven padding."""
    import glassnet as gn
    from glassnet import layers as L
    every_layer = gn.Sequential([
        L.Conv2D(4, 3, padding=(1, 2), activation="relu", input_shape=(9, 9, 2), name="c"), L.BatchNormalization(),
        L.Conv2D(3, 3, strides=2, padding="same", activation="tanh"), L.AveragePooling2D(2, padding="same"),
        L.PReLU(shared_axes=[1, 2]), L.LeakyReLU(0.1), L.MaxPooling2D(2, strides=1, padding="same"),
        L.ZeroPadding2D(((1, 0), (0, 1))), L.Flatten(), L.Dropout(0.2), L.Dense(7, activation="sigmoid"),
        L.ReLU(max_value=0.7), L.Dense(5), L.Softmax()], seed=0)
    depthwise_family = gn.Sequential([
        L.Rescaling(1 / 4, offset=0.5, input_shape=(10, 10, 2)), L.RandomFlip("horizontal"),
        L.SeparableConv2D(4, 3, padding=1, depth_multiplier=2, activation="relu"),
        L.DepthwiseConv2D(3, dilation_rate=2, padding="same"), L.Conv2D(4, 2, dilation_rate=(2, 1), padding="same"),
        L.UpSampling2D(2, interpolation="bilinear"),
        L.Cropping2D(((0, 1), (2, 0))), L.DepthwiseConv2D(2, strides=2, activation="sigmoid"),
        L.UpSampling2D((2, 1)), L.GlobalMaxPooling2D(), L.Reshape((2, 2)), L.Flatten(), L.Dense(3)], seed=0)
    models = {"every_layer": every_layer, "depthwise_family": depthwise_family}
    rng = np.random.default_rng(0)
    for model in models.values():
        names = [n for layer in model.layers for n in layer.weight_names]
        model.set_weights([rng.normal(0, 0.5, w.shape).astype(w.dtype) + (1.0 if n == "moving_variance" else 0.0)
                           for w, n in zip(model.get_weights(), names)])
    return models
