"""One explanation measurement per process (job ``explain``): glassnet or Captum on the same weights.

Both libraries explain the same images (float32 N(0, 1), seed 0) for the same target classes (the
glassnet model's predictions) with the same network: the glassnet preset's initial weights
(``seed=0``) copied into the PyTorch model of :func:`benchmarks.workers.torch_model`. Each method
runs ``warmup`` untimed times, then ``repeats`` timed times; the result is images per second
(median) and, for the agreement check, the maps of the first two images.
"""
import time

import numpy as np

#: the benchmarked methods, in the order they run
METHODS = ("saliency", "guided_backprop", "grad_cam", "integrated_gradients", "occlusion")
#: integrated-gradients steps, occlusion window (= stride) and the occlusions Captum evaluates per batch
IG_STEPS, WINDOW, PERTURBATIONS_PER_EVAL = 50, 4, 8
#: images whose maps come back for the agreement check
CHECKED = 2


def glassnet_model(name):
    import glassnet as gn
    return gn.models.PRESETS[name](seed=0)


def torch_copy(model):
    """The PyTorch twin of a glassnet preset, carrying its weights.

    Conv kernels (KH, KW, C, F) become (F, C, KH, KW); dense kernels (in, out) become (out, in);
    the first dense layer after a Flatten has its input rows reordered from glassnet's
    channels-last (h, w, c) flattening to PyTorch's (c, h, w).
    """
    import torch

    from benchmarks.workers import torch_model
    from glassnet.layers import Conv2D, Dense, Flatten

    net = torch_model(model.name, model.input_shape[1:])
    targets = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    sources = [layer for layer in model.layers if isinstance(layer, (Conv2D, Dense))]
    flat_shape = None
    with torch.no_grad():
        for layer in model.layers:
            if isinstance(layer, Flatten):
                flat_shape = layer.input_shape[1:]
        for module, layer in zip(targets, sources):
            kernel, bias = layer.get_weights()
            if isinstance(layer, Conv2D):
                weight = kernel.transpose(3, 2, 0, 1)
            else:
                weight = kernel.T
                if flat_shape is not None and weight.shape[1] == int(np.prod(flat_shape)):
                    h, w, c = flat_shape
                    weight = weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
                    flat_shape = None
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            module.bias.copy_(torch.from_numpy(bias))
    return net.eval()


def _glassnet_methods(model, x, target):
    from glassnet import explain
    return {
        "saliency": lambda: explain.saliency(model, x, target),
        "guided_backprop": lambda: explain.input_gradients(model, x, target, modifier="guided")[..., 0],
        "grad_cam": lambda: explain.grad_cam(model, x, target, upsample="half_pixel"),
        "integrated_gradients": lambda: explain.integrated_gradients(model, x, target, steps=IG_STEPS)[..., 0],
        "occlusion": lambda: explain.occlusion(model, x, target, window=WINDOW),
    }


def _captum_methods(net, X, target):
    import torch
    from captum import attr

    T = torch.from_numpy(target)
    spatial = [m for m in net if isinstance(m, torch.nn.MaxPool2d)][-1]     # glassnet's default Grad-CAM layer
    occlusion_window = (X.shape[1], WINDOW, WINDOW)

    def grad_cam():
        maps = attr.LayerGradCam(net, spatial).attribute(X, target=T, relu_attributions=True)
        return attr.LayerAttribution.interpolate(maps, X.shape[2:], "bilinear")[:, 0]

    return {
        "saliency": lambda: attr.Saliency(net).attribute(X, target=T, abs=True).amax(dim=1),
        "guided_backprop": lambda: attr.GuidedBackprop(net).attribute(X, target=T)[:, 0],
        "grad_cam": grad_cam,
        "integrated_gradients": lambda: attr.IntegratedGradients(net).attribute(
            X, baselines=0.0, target=T, n_steps=IG_STEPS, method="riemann_middle", internal_batch_size=1024)[:, 0],
        "occlusion": lambda: attr.Occlusion(net).attribute(
            X, sliding_window_shapes=occlusion_window, strides=occlusion_window, baselines=0.0, target=T,
            perturbations_per_eval=PERTURBATIONS_PER_EVAL)[:, 0],
    }


def _timed(function, warmup, repeats, images):
    for _ in range(warmup):
        result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    from benchmarks.common import summarize
    return summarize(times, images), result


def explain_job(spec):
    """Images/s per method for ``spec["lib"]`` ("glassnet" or "captum"), and the first maps."""
    from threadpoolctl import threadpool_limits

    from benchmarks.common import ForeignCPU, peak_rss_mib
    from benchmarks.workers import make_data

    model = glassnet_model(spec["model"])
    x, _ = make_data(spec["batch"], model.input_shape[1:])
    target = model.predict(x).argmax(axis=1)
    methods = spec.get("methods") or list(METHODS)
    with threadpool_limits(limits=spec["threads"], user_api="blas"):
        if spec["lib"] == "captum":
            import torch
            torch.set_num_threads(spec["threads"])
            X = torch.from_numpy(np.array(x.transpose(0, 3, 1, 2), order="C")).requires_grad_()
            table = _captum_methods(torch_copy(model), X, target)
        else:
            table = _glassnet_methods(model, x, target)
        out, meter = {}, ForeignCPU().start()
        for name in methods:
            speed, maps = _timed(table[name], spec["warmup"], spec["repeats"], len(x))
            maps = maps.detach().numpy() if hasattr(maps, "detach") else np.asarray(maps)
            out[name] = {**speed, "maps": np.asarray(maps[:CHECKED], dtype=np.float64).round(7).tolist()}
    return {"methods": out, "foreign_cpu": round(meter.stop(), 3), "peak_rss_mib": peak_rss_mib()}
