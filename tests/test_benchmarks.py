"""The benchmark harness (benchmarks/) on tiny settings, and the convolution's im2col memory budget."""
import json
import threading
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn
import glassnet.ops as ops
from benchmarks import common, report
from benchmarks.run import aggregate
from glassnet.ops.conv import clear_workspace
from glassnet.ops.conv import plan as planning
from glassnet.ops.conv.plan import split_blocks as conv_blocks

ROOT = Path(__file__).resolve().parent.parent


# -- FLOP accounting -------------------------------------------------------------------------------
def test_flops_follow_the_pytorch_reference_accounting():
    # 2 x MACs of every Conv2D / Dense, written out by hand per layer.
    expected = {
        "seed003_tiny": 26 * 26 * 8 * 9 + 1352 * 10,
        "keras_mnist": 26 * 26 * 32 * 9 + 24 * 24 * 64 * 288 + 9216 * 128 + 128 * 10,
        "lenet5": 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10,
    }
    for name, macs in expected.items():
        model = gn.presets.PRESETS[name](seed=0)
        assert model.count_params() == common.MODELS[name]
        forward, train, exact = common.flops(model)
        assert forward == 2 * macs
        assert train == 3 * forward
        first = common.layer_macs(model)[0]
        assert exact == train - 2 * first < train
    # shared/bench/torch_ref.py prints 23.985 MFLOP/img forward for keras_mnist
    assert round(common.flops(gn.models.keras_mnist())[0] / 1e6, 3) == 23.985


def _check_twin(name, macs, batch_norms):
    """glassnet's preset (without augmentation) and its PyTorch twin: the same layers, multiply-adds and
    trainable parameters, and BatchNorm with glassnet's momentum 0.9 (PyTorch's 0.1) and epsilon 1e-3."""
    import torch
    from benchmarks import workers
    model = workers._glassnet_model(name)
    assert model.count_params() == common.MODELS[name]
    assert not any("Random" in type(layer).__name__ for layer in model.layers)      # the network alone
    assert sorted(common.layer_macs(model)) == sorted(macs)
    twin = workers.torch_model(name)
    trainable = sum(w.size for w in model.trainable_weights())
    assert sum(p.numel() for p in twin.parameters()) == trainable                # BN statistics are buffers
    bn = [m for m in twin.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bn) == batch_norms and {(m.eps, m.momentum) for m in bn} == {(1e-3, 0.1)}
    assert tuple(twin(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)


def test_resnet8_and_its_pytorch_twin_are_the_same_network():
    # stem, block 1 (two 3x3 at 28x28), blocks 2 and 3 (3x3 stride 2, 3x3, 1x1 projection), the head
    _check_twin("resnet8", [28 * 28 * 16 * 9, 28 * 28 * 16 * 144, 28 * 28 * 16 * 144,
                            14 * 14 * 32 * 144, 14 * 14 * 32 * 288, 14 * 14 * 32 * 16,
                            7 * 7 * 64 * 288, 7 * 7 * 64 * 576, 7 * 7 * 64 * 32, 64 * 10], batch_norms=9)


def test_resnet_fashion_and_its_pytorch_twin_are_the_same_network():
    # the two stem convolutions at 28x28, the block at 14x14 (3x3, 3x3, 1x1 projection), the dense head
    _check_twin("resnet_fashion", [28 * 28 * 32 * 9, 28 * 28 * 32 * 288,
                                   14 * 14 * 64 * 288, 14 * 14 * 64 * 576, 14 * 14 * 64 * 32,
                                   7 * 7 * 64 * 256, 256 * 10], batch_norms=6)


def test_per_model_limits_keep_the_run_short():
    assert common.model_batches("resnet_fashion", [32, 128]) == [128]
    assert common.model_batches("resnet_fashion", [32, 64]) == [64]
    assert common.model_batches("lenet5", [32, 128]) == [32, 128]
    assert common.model_epoch_images("resnet_fashion", 2048) == 512
    assert common.model_batches("resnet8", [32, 128]) == [128]
    assert common.model_epoch_images("keras_mnist", 2048) == 2048


# -- aggregation of alternated rounds ---------------------------------------------------------------
def _worker_result(train, infer, rss):
    return {"train": {"ips_median": train, "foreign_cpu": 0.0}, "infer": {"ips_median": infer, "foreign_cpu": 0.1},
            "peak_rss_mib": rss, "params": 10, "fwd_flops": 1e6, "train_flops": 3e6}


def test_ratios_are_medians_of_per_round_ratios():
    rounds = [{"glassnet": _worker_result(100, 300, 50), "torch": _worker_result(50, 300, 400)},
              {"glassnet": _worker_result(60, 200, 55), "torch": _worker_result(60, 100, 390)},
              {"glassnet": _worker_result(90, 300, 52), "torch": _worker_result(30, 150, 410)}]
    row = aggregate({"model": "lenet5", "batch": 128, "threads": 1, "rounds": rounds}, {"1": 100.0})
    # per-round training ratios 2, 1, 3 -> median 2 (the ratio of medians would be 90/50 = 1.8)
    assert row["ratio_train"] == 2.0 and row["ratio_train_range"] == (1.0, 3.0)
    assert row["ratio_infer"] == 2.0
    assert row["glassnet_train"] == 90 and row["torch_train"] == 50
    assert row["glassnet_rss"] == 55 and row["torch_rss"] == 410          # worst round
    assert row["glassnet_train_gflops"] == pytest.approx(90 * 3e6 / 1e9)
    assert row["glassnet_train_frac_peak"] == pytest.approx(90 * 3e6 / 1e9 / 100.0)
    assert row["glassnet_infer_foreign"] == 0.1


def test_fractions_of_the_peak_are_per_round_against_each_rounds_own_peak():
    """Each glassnet process measures the GEMM peak after its epochs; a round's fraction uses that peak
    (torch's too: it ran next to it), and the row gives the medians."""
    rounds = []
    for train, peak in ((90, 150.0), (60, 20.0), (100, 100.0)):
        result = {**_worker_result(train, 300, 50), "peak_gflops": peak}
        rounds.append({"glassnet": result, "torch": _worker_result(train / 2, 300, 400)})
    row = aggregate({"model": "keras_mnist", "batch": 128, "threads": 1, "rounds": rounds}, {"1": 1000.0})
    assert row["peak_gflops"] == 100.0                                    # median of the rounds' peaks
    fractions = sorted(train * 3e6 / 1e9 / peak for train, peak in ((90, 150.0), (60, 20.0), (100, 100.0)))
    assert row["glassnet_train_frac_peak"] == pytest.approx(fractions[1])  # 0.003, not 90 * 3e-3 / 100
    assert row["torch_train_frac_peak"] == pytest.approx(fractions[1] / 2)
    assert row["glassnet_train_frac_peak"] != pytest.approx(row["glassnet_train_gflops"] / row["peak_gflops"])


def test_targets_report_unmet_ones():
    rows = []
    for model, ratio in (("keras_mnist", 0.8), ("lenet5", 1.2)):
        rounds = [{"glassnet": _worker_result(100 * ratio, 100, 50), "torch": _worker_result(100, 100, 400)}]
        rows.append(aggregate({"model": model, "batch": 128, "threads": 1, "rounds": rounds}, {"1": 1.0}))
    text = "\n".join(report.targets({"settings": {"unset": {"rows": rows}}}))
    assert "training >= 1.0x PyTorch at batch 128, 1 and 2 threads: **NOT met**" in text
    assert "keras_mnist/1t 0.80x" in text and "lenet5/1t 1.20x" in text
    assert "inference >= 1.0x PyTorch at batch 128, 1 and 2 threads: **met**" in text
    assert "peak RSS <= PyTorch's in every configuration: **met**" in text


# -- the whole harness, tiny settings --------------------------------------------------------------
def test_quick_run_without_torch(tmp_path):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "RESULTS.md"
    out_md.write_text("# Notes kept\n\nhand-written\n\n" + report.MARKER + "\nold generated text\n")
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--models", "tiny", "--batch-sizes", "16",
           "--threads", "1", "--blas", "unset", "--epoch-images", "48", "--epochs", "1", "--warmup", "1",
           "--reference-images", "3", "--no-torch", "--json", str(out_json), "--out", str(out_md)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "reporting glassnet alone" in done.stdout
    result = json.loads(out_json.read_text())
    (row,) = result["settings"]["unset"]["rows"]
    assert row["model"] == "seed003_tiny" and row["batch"] == 16 and row["threads"] == 1
    assert row["params"] == 13_602 and row["fwd_flops"] == 2 * (26 * 26 * 8 * 9 + 1352 * 10)
    assert row["glassnet_train"] > 0 and row["glassnet_infer"] > 0 and row["glassnet_rss"] > 10
    assert row["reference_train"] > 0 and row["ratio_reference"] > 1      # vectorized beats the loops
    assert "torch_train" not in row and "ratio_train" not in row
    assert row["blas"]["internal_api"] and row["raw"][0]["glassnet"]["blas"]["num_threads"] == 1
    assert result["settings"]["unset"]["peak"]["1"] > 0
    round_peak = row["raw"][0]["glassnet"]["peak_gflops"]                 # measured after the epochs too
    assert round_peak > 0 and row["peak_gflops"] == round_peak
    assert row["glassnet_train_frac_peak"] == pytest.approx(row["glassnet_train_gflops"] / round_peak)
    text = out_md.read_text()
    assert text.startswith("# Notes kept\n\nhand-written\n") and "old generated text" not in text
    assert "PyTorch was not measured" in text and "seed003_tiny | 16 | 1 |" in text


def test_children_can_run_without_the_blas_variables(monkeypatch):
    from benchmarks.run import child_env
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert "OPENBLAS_CORETYPE" not in child_env("unset")
    assert child_env("set")["OPENBLAS_CORETYPE"] == "Haswell"


# -- im2col memory budget ---------------------------------------------------------------------------
@pytest.mark.parametrize("image_flops", [0, 10 ** 6])
@pytest.mark.parametrize("N, OH, row_bytes, budget", [(7, 5, 100, 10 ** 9), (3, 9, 1000, 2500), (2, 4, 64, 1),
                                                      (128, 28, 2800, 10 ** 9), (128, 28, 2800, 400_000)])
def test_conv_blocks_cover_the_output_once_and_respect_the_budget(monkeypatch, N, OH, row_bytes, budget, image_flops):
    monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", budget)
    seen = np.zeros((N, OH), dtype=int)
    for images, rows in conv_blocks(N, OH, row_bytes, image_flops=image_flops):
        seen[images, rows] += 1
        block_rows = (images.stop - images.start) * (rows.stop - rows.start)
        assert block_rows * row_bytes <= max(budget, row_bytes)      # one output row is the smallest block
    assert (seen == 1).all()


def test_small_images_come_in_blocks_of_enough_work(monkeypatch):
    """LeNet's first layer (28x28, 5x5x6: 0.24 MFLOP and 78 KB of im2col per image): 4 MiB blocks
    would be 3 blocks of ~43 images; MIN_BLOCK_FLOPS merges them into 2 of 64, within the budget."""
    monkeypatch.setattr(planning, "BLOCK_BYTES", 4 * 2 ** 20)
    image_flops, row_bytes = 2 * 28 * 28 * 25 * 6, 28 * 25 * 4
    sizes = [b[0].stop - b[0].start for b in conv_blocks(128, 28, row_bytes, image_flops=image_flops)]
    assert sizes == [64, 64]
    monkeypatch.setattr(planning, "MIN_BLOCK_FLOPS", 0)
    assert len(conv_blocks(128, 28, row_bytes, image_flops=image_flops)) == 3
    monkeypatch.setattr(planning, "MIN_BLOCK_FLOPS", 10 ** 12)
    monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", 32 * 28 * row_bytes)   # 32 images at most
    assert {b[0].stop - b[0].start for b in conv_blocks(128, 28, row_bytes, image_flops=image_flops)} == {32}


def _traced_peak(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_convolution_stays_within_the_memory_budget(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 40, 40, 16), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 16, 8), dtype=np.float32)
    bias = rng.standard_normal(8, dtype=np.float32)
    pads = ((1, 1), (1, 1))
    y_full, cache = ops.conv2d_forward(x, kernel, bias, (1, 1), pads)
    dy = rng.standard_normal(y_full.shape, dtype=np.float32)
    full = ops.conv2d_backward(dy, cache, kernel)

    budget = 64 * 1024                     # smaller than one image's im2col (40*40*144*4 = 900 KiB)
    monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", budget)
    clear_workspace()                      # scratch kept from the calls above would hide new allocations
    whole_im2col = 6 * 40 * 40 * 3 * 3 * 16 * 4
    (y, cache), forward_peak = _traced_peak(lambda: ops.conv2d_forward(x, kernel, bias, (1, 1), pads))
    padded_input = 6 * 42 * 42 * 16 * 4
    slack = 128 * 1024                     # small arrays and the Python objects of a few hundred blocks
    assert forward_peak <= y.nbytes + padded_input + budget + slack < whole_im2col
    np.testing.assert_allclose(y, y_full, rtol=1e-5, atol=1e-5)

    (dx, dkernel, dbias), backward_peak = _traced_peak(lambda: ops.conv2d_backward(dy, cache, kernel))
    assert backward_peak <= 2 * padded_input + budget + slack < whole_im2col    # padded dx, its unpadded copy
    np.testing.assert_allclose(dx, full[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dkernel, full[1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dbias, full[2], rtol=1e-5, atol=1e-4)


# -- worker threads (glassnet.ops.parallel) ----------------------------------------------------------
def _conv_and_pool(x, kernel, bias):
    y, cache = ops.conv2d_forward(x, kernel, bias, (1, 1), ((1, 1), (1, 1)))
    pooled, pool_cache = ops.max_pool2d_forward(y, (2, 2), (2, 2), ((0, 0), (0, 0)))
    dpooled = np.cos(pooled)
    dy = ops.max_pool2d_backward(dpooled, pool_cache)
    return (y, pooled, dy) + tuple(ops.conv2d_backward(dy, cache, kernel))


@pytest.mark.parametrize("threads", [2, 3])
def test_worker_threads_give_the_single_thread_results(monkeypatch, threads):
    from glassnet.ops import parallel
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)           # split even this small batch
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 12, 10, 5)).astype(np.float32)
    x[:, ::3, ::2] = 0.5                                               # ties for the max pool
    kernel = rng.standard_normal((3, 3, 5, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    monkeypatch.setattr(ops, "NUM_THREADS", 1)
    expected = _conv_and_pool(x, kernel, bias)
    monkeypatch.setattr(ops, "NUM_THREADS", threads)
    assert parallel.num_threads() == threads
    used = set()
    original = parallel._taker

    def spied(*args):                   # every thread that takes part in a split call runs its taker
        take = original(*args)
        return lambda *a: used.add(threading.get_ident()) or take(*a)
    monkeypatch.setattr(parallel, "_taker", spied)
    got = _conv_and_pool(x, kernel, bias)
    assert threading.get_ident() in used and len(used) >= 2             # the caller and worker thread(s)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[2] != 0, expected[2] != 0)        # same pooling winners


def test_matmul_on_worker_threads_equals_the_blas_product(monkeypatch):
    from glassnet.ops import parallel
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((37, 50)), rng.standard_normal((50, 9))
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 0)
    monkeypatch.setattr(ops, "NUM_THREADS", 3)
    np.testing.assert_allclose(ops.matmul(a, b), a @ b, rtol=1e-12)
    np.testing.assert_allclose(ops.matmul(a.T[:20], a[:, :7]), a.T[:20] @ a[:, :7], rtol=1e-12)


def test_fused_relu_matches_relu_after_the_convolution():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7, 6, 3))
    kernel, bias = rng.standard_normal((3, 2, 3, 5)), rng.standard_normal(5)
    pads = ((1, 0), (0, 1))
    z, cache = ops.conv2d_forward(x, kernel, bias, (1, 1), pads)
    y, fused_cache = ops.conv2d_forward(x, kernel, bias, (1, 1), pads, relu=True)
    np.testing.assert_array_equal(y, np.maximum(z, 0))
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    expected = ops.conv2d_backward(dy * (z > 0), cache, kernel)
    got = ops.conv2d_backward(dy, fused_cache, kernel, relu_output=y)
    np.testing.assert_array_equal(dy, dy_before)                           # dy is not modified
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_small_convolutions_are_not_split_between_threads(monkeypatch):
    monkeypatch.setattr(planning, "BLOCK_BYTES", 4 * 2 ** 20)             # the block size these counts assume
    image_flops, row_bytes = 2 * 10 * 10 * 150 * 16, 10 * 150 * 4        # LeNet's second convolution
    assert len(conv_blocks(32, 10, row_bytes, threads=2, image_flops=image_flops)) == 1   # 15 MFLOP in all
    assert len(conv_blocks(128, 10, row_bytes, threads=2, image_flops=image_flops)) == 2  # 61 MFLOP
    monkeypatch.setattr(planning, "MIN_THREAD_FLOPS", 0)
    assert len(conv_blocks(32, 10, row_bytes, threads=2, image_flops=image_flops)) == 2


def test_convolutions_with_few_flops_but_large_arrays_are_split_between_threads(monkeypatch):
    monkeypatch.setattr(ops, "NUM_THREADS", 2)
    monkeypatch.setattr(planning, "BLOCK_BYTES", 4 * 2 ** 20)             # the block size these counts assume
    # the tiny model's 3x3, 1 -> 8 channel convolution + 2x2 pooling on 28x28 images, one matrix
    # row per pooling window: 13x13 windows of 4x4 pixels, 4 x 8 outputs each
    image_flops, row_bytes, out_bytes = 2 * 13 * 13 * 16 * 32, 13 * 16 * 4, 13 * 13 * 32 * 4
    assert 128 * image_flops < 2 * planning.MIN_THREAD_FLOPS                  # too few FLOPs on their own
    assert len(conv_blocks(128, 13, row_bytes, threads=2, image_flops=image_flops, image_out_bytes=out_bytes)) == 2
    assert len(conv_blocks(128, 13, row_bytes, threads=2, image_flops=image_flops)) == 1   # matrix bytes alone
    assert len(conv_blocks(32, 13, row_bytes, threads=2, image_flops=image_flops, image_out_bytes=out_bytes)) == 1
    plan = planning.pool_windows_plan((128, 28, 28, 1), (3, 3, 1, 8), (1, 1), (2, 2), np.dtype(np.float32))
    assert len(plan.blocks) == 2 and plan.threads == 2
    monkeypatch.setattr(planning, "MIN_THREAD_BYTES", 2 ** 40)
    assert len(conv_blocks(128, 13, row_bytes, threads=2, image_flops=image_flops, image_out_bytes=out_bytes)) == 1


# -- two source trees compared ---------------------------------------------------------------------
def test_compare_trees_reports_per_round_ratios_of_the_second_tree_to_the_first():
    from benchmarks.compare_trees import parse_args, summary_lines

    def result(train, infer, foreign=0.1):
        return {"train": {"ips_median": train, "ips_best": train, "foreign_cpu": foreign},
                "infer": {"ips_median": infer, "ips_best": infer, "foreign_cpu": foreign}}
    rounds = [(result(100, 400), result(110, 400)), (result(100, 400), result(90, 200, foreign=0.4))]
    lines = summary_lines("lenet5", parse_args(["a", "b"]), rounds)
    assert "train ips_median: before 100 img/s; after/before per round 0.900-1.100, median 1.000" in lines[0]
    assert "infer ips_median: before 400 img/s; after/before per round 0.500-1.000, median 0.750" in lines[2]
    assert lines[-1].endswith("other processes 0.40")


def test_the_step_profile_times_every_step_of_the_training_plan():
    from benchmarks import steps
    per_step, total = steps.profile("resnet8", batch=4, steps=1, threads=1, clock="cpu")
    kinds = steps.by_type(per_step)
    assert kinds["ConvStep:Conv2D"][2] == 9 and kinds["BatchNormReLUStep:BatchNormalization"][2] == 4
    assert kinds["AddReLUStep:Add"][2] == 3 and kinds["LayerStep:BatchNormalization"][2] == 5
    assert all(fwd > 0 and bwd >= 0 for fwd, bwd in per_step.values())
    assert 0 < sum(f + b for f, b in per_step.values()) <= total * 1.05
