"""One measurement per process: ``python -m benchmarks.workers '<json spec>'`` prints one JSON line.

Jobs (``spec["job"]``):

``peak``       float32 2048x2048 NumPy matmul GFLOP/s for each thread count, and the BLAS kernel.
``glassnet``   ``model.fit`` (training) and ``model.predict`` (inference) images/s of a preset.
``torch``      the same model in PyTorch: zero_grad + forward + cross-entropy + backward + SGD step,
               and eval-mode inference under ``torch.inference_mode``.
``reference``  seed 003's loop code (``glassnet.reference.train_tiny_step``), one image per step.
``scaling``    seconds per training step and per predicted image, and peak RSS, for one
               (model, input shape, batch size), glassnet or PyTorch.
``explain``    explanation methods' images/s, glassnet or Captum (:mod:`benchmarks.explain_jobs`).

Both libraries see the same random data (float32 N(0, 1) images, integer labels) and the same
optimizer (SGD, learning rate 0.01, momentum 0.9). Each epoch goes over ``epoch_images`` images
in order (no shuffling, as in the PyTorch loop); ``warmup`` untimed epochs come first.
"""
import json
import sys
import time

import numpy as np

from benchmarks.common import (LEARNING_RATE, MOMENTUM, ForeignCPU, blas_info, flops, gemm_peak, peak_rss_mib,
                               summarize)


def make_data(n, input_shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + tuple(input_shape), dtype=np.float32)
    return x, rng.integers(0, 10, n)


# -- glassnet ----------------------------------------------------------------------------------
def _glassnet_model(name, input_shape=(28, 28, 1)):
    import glassnet as gn
    # the network alone: a preset's augmentation layers (the ResNets') are left out, as the
    # PyTorch twin has none (their cost is in benchmarks/NOTES.md)
    model = gn.presets.get(name, input_shape=tuple(input_shape), seed=0, **gn.presets.augment_option(name, False))
    model.compile(optimizer=gn.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
                  loss="sparse_categorical_crossentropy")
    return model


def _epoch_timer(warmup):
    """A glassnet callback recording each epoch's wall time and the foreign CPU over the timed ones."""
    from glassnet.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self):
            super().__init__()
            self.times, self.meter, self.foreign = [], ForeignCPU(), None

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == warmup:
                self.meter.start()
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch >= warmup:
                self.times.append(time.perf_counter() - self.start)
                self.foreign = self.meter.stop()

    return EpochTimer()


def glassnet_job(spec):
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=spec["threads"], user_api="blas"):
        model = _glassnet_model(spec["model"])
        x, y = make_data(spec["epoch_images"], model.input_shape[1:])
        batch, warmup, epochs = spec["batch"], spec["warmup"], spec["epochs"]
        timer = _epoch_timer(warmup)
        model.fit(x, y, batch_size=batch, epochs=warmup + epochs, verbose=0, shuffle=False, seed=0,
                  callbacks=[timer])
        out = {"train": {**summarize(timer.times, len(x)), "foreign_cpu": round(timer.foreign, 3)}}
        for _ in range(warmup):
            model.predict(x, batch_size=batch)
        times, meter = [], ForeignCPU().start()
        for _ in range(epochs):
            start = time.perf_counter()
            model.predict(x, batch_size=batch)
            times.append(time.perf_counter() - start)
        out["infer"] = {**summarize(times, len(x)), "foreign_cpu": round(meter.stop(), 3)}
        forward, train, exact = flops(model)
        out.update(params=model.count_params(), fwd_flops=forward, train_flops=train, train_flops_exact=exact,
                   blas=blas_info(), peak_rss_mib=peak_rss_mib())
    # the GEMM peak right after the timed epochs, in the same process: the clock of this shared
    # machine's CPU drifts by 10-15% within minutes, so a peak measured once per run is not the
    # peak the model ran against
    out["peak_gflops"] = gemm_peak(spec["threads"])
    return out


# -- PyTorch -----------------------------------------------------------------------------------
def torch_model(name, input_shape=(28, 28, 1)):
    """The preset as a torch.nn.Sequential (NCHW); the flatten sizes follow the input shape."""
    import torch.nn as nn
    H, W, C = input_shape
    if name == "seed003_tiny":
        return nn.Sequential(nn.Conv2d(C, 8, 3, bias=False), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(((H - 2) // 2) * ((W - 2) // 2) * 8, 10))
    if name == "keras_mnist":
        return nn.Sequential(
            nn.Conv2d(C, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Flatten(), nn.Linear(((H - 4) // 2) * ((W - 4) // 2) * 64, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10))
    if name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(C, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(((H // 2 - 4) // 2) * ((W // 2 - 4) // 2) * 16, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    if name == "resnet8":
        return torch_resnet8(C)
    if name == "resnet_fashion":
        return torch_resnet_fashion(C, H)
    raise ValueError(f"unknown model {name!r}")


def _torch_conv_bn(cin, cout, kernel, stride):
    """Conv (no bias) + BatchNorm with glassnet's presets' momentum 0.9 (PyTorch's 0.1) and epsilon 1e-3."""
    import torch.nn as nn
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)]


def _torch_basic_block(cin, cout, stride):
    """He et al.'s basic block with a projection shortcut where the width or resolution changes."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*_torch_conv_bn(cin, cout, 3, stride), nn.ReLU(),
                                      *_torch_conv_bn(cout, cout, 3, 1))
            project = stride != 1 or cin != cout
            self.shortcut = nn.Sequential(*_torch_conv_bn(cin, cout, 1, stride)) if project else nn.Identity()

        def forward(self, x):
            return F.relu(self.body(x) + self.shortcut(x))
    return Block()


def torch_resnet8(channels, widths=(16, 32, 64)):
    """glassnet's resnet8 (no augmentation) in PyTorch: a Conv-BN-ReLU stem, one basic block per width (stride
    2 from the second on), global average pooling and a linear head."""
    import torch.nn as nn
    blocks = [_torch_basic_block(a, b, 1 if i == 0 else 2)
              for i, (a, b) in enumerate(zip(widths[:1] + widths[:-1], widths))]
    return nn.Sequential(*_torch_conv_bn(channels, widths[0], 3, 1), nn.ReLU(), *blocks, nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(widths[-1], 10))


def torch_resnet_fashion(channels, side=28, stem=(32, 32), widths=(64,), head=256):
    """glassnet's resnet_fashion (no augmentation) in PyTorch: Conv-BN-ReLU stem layers, MaxPool, a basic block
    and a MaxPool per width, then Flatten -> Linear(head, no bias)-BatchNorm1d-ReLU -> Linear(10)."""
    import torch.nn as nn
    layers, width = [], channels
    for filters in stem:
        layers += [*_torch_conv_bn(width, filters, 3, 1), nn.ReLU()]
        width = filters
    layers.append(nn.MaxPool2d(2))
    for filters in widths:
        layers += [_torch_basic_block(width, filters, 1), nn.MaxPool2d(2)]
        width = filters
    side //= 2 ** (1 + len(widths))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(side * side * width, head, bias=False),
                         nn.BatchNorm1d(head, eps=1e-3, momentum=0.1), nn.ReLU(), nn.Linear(head, 10))


def _torch_setup(spec, input_shape, n):
    """Model, data and optimizer in PyTorch's usual NCHW layout, or (``spec["layout"] ==
    "channels_last"``) in its channels-last memory format, often its fastest on the CPU."""
    import torch
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = torch_model(spec["model"], input_shape)
    x, y = make_data(n, input_shape)
    # np.array(..., order="C") gives canonical NCHW strides even for C == 1 (where the transposed
    # view already counts as contiguous but carries channels-last strides, which PyTorch follows).
    X = torch.from_numpy(np.array(x.transpose(0, 3, 1, 2), order="C"))
    if spec.get("layout") == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        X = X.contiguous(memory_format=torch.channels_last)
    Y = torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    return torch, model, X, Y, opt


def _torch_epochs(torch, model, X, Y, opt, batch, steps=None):
    """Training and inference epoch functions over ``X`` (all of it, or the first ``steps`` batches)."""
    import torch.nn.functional as F
    starts = list(range(0, len(X), batch))[:steps]

    def train():
        model.train()
        for s in starts:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[s:s + batch]), Y[s:s + batch])
            loss.backward()
            opt.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            for s in starts:
                model(X[s:s + batch])

    return train, infer


def torch_job(spec):
    torch, model, X, Y, opt = _torch_setup(spec, (28, 28, 1), spec["epoch_images"])
    train, infer = _torch_epochs(torch, model, X, Y, opt, spec["batch"])
    out = {}
    for mode, fn in (("train", train), ("infer", infer)):
        for _ in range(spec["warmup"]):
            fn()
        times, meter = [], ForeignCPU().start()
        for _ in range(spec["epochs"]):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[mode] = {**summarize(times, len(X)), "foreign_cpu": round(meter.stop(), 3)}
    out.update(params=sum(p.numel() for p in model.parameters()), torch=torch.__version__,
               threads=torch.get_num_threads(), layout=spec.get("layout", "nchw"), input_strides=list(X.stride()),
               peak_rss_mib=peak_rss_mib())
    return out


# -- seed 003's loop code ------------------------------------------------------------------------
def reference_job(spec):
    from threadpoolctl import threadpool_limits

    from glassnet.reference import init_tiny_params, train_tiny_step
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.5, 0.5, (spec["images"], 28, 28))      # the seed feeds image / 255 - 0.5
    labels = rng.integers(0, 10, spec["images"])
    params = init_tiny_params(seed=0)
    with threadpool_limits(limits=1, user_api="blas"):
        train_tiny_step(params, images[0], labels[0])
        meter, start = ForeignCPU().start(), time.perf_counter()
        for image, label in zip(images, labels):
            train_tiny_step(params, image, label)
        elapsed = time.perf_counter() - start
    return {"train": {"ips_median": len(images) / elapsed, "foreign_cpu": round(meter.stop(), 3)},
            "images": len(images), "peak_rss_mib": peak_rss_mib()}


# -- GEMM peak --------------------------------------------------------------------------------------
def peak_job(spec):
    return {"gflops": {str(t): gemm_peak(t) for t in spec["threads"]}, "blas": blas_info()}


# -- scaling ------------------------------------------------------------------------------------
def scaling_job(spec):
    """Per-step training time, per-image inference time and peak RSS for one shape and batch size."""
    shape, batch, steps = tuple(spec["input_shape"]), spec["batch"], spec["steps"]
    n = batch * steps
    if spec["lib"] == "torch":
        torch, model, X, Y, opt = _torch_setup(spec, shape, n)
        train, infer = _torch_epochs(torch, model, X, Y, opt, batch)
        warm_train, warm_infer = _torch_epochs(torch, model, X, Y, opt, batch, steps=1)
    else:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=spec["threads"], user_api="blas")
        model = _glassnet_model(spec["model"], shape)
        x, y = make_data(n, shape)

        def train():
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, seed=0)

        def infer():
            model.predict(x, batch_size=batch)

        def warm_train():
            model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0, shuffle=False, seed=0)

        def warm_infer():
            model.predict(x[:batch], batch_size=batch)
    warm_train()
    warm_infer()
    start = time.perf_counter()
    train()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    infer()
    infer_s = time.perf_counter() - start
    if spec["lib"] != "torch":
        limits.restore_original_limits()
    return {"train_ms_per_image": 1e3 * train_s / n, "train_s_per_step": train_s / steps,
            "infer_ms_per_image": 1e3 * infer_s / n, "peak_rss_mib": peak_rss_mib()}


def explain_job(spec):
    from benchmarks.explain_jobs import explain_job as job     # imports Captum only in its own processes
    return job(spec)


JOBS = {"glassnet": glassnet_job, "torch": torch_job, "reference": reference_job, "peak": peak_job,
        "scaling": scaling_job, "explain": explain_job}


def main(argv=None):
    spec = json.loads((argv or sys.argv[1:])[0])
    print(json.dumps(JOBS[spec["job"]](spec)))


if __name__ == "__main__":
    main()
