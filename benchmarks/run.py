"""glassnet against PyTorch on the CPU: training and inference throughput, GFLOP/s, peak memory.

For every (model, batch size, thread count) the two libraries run ALTERNATELY, each in a fresh
subprocess (glassnet, torch, glassnet, torch, ...: ``--rounds`` of each), so a burst of load
from other processes on this shared machine hits both and the per-round ratios stay fair.
Everything runs twice: with this machine's OpenBLAS variables (OPENBLAS_CORETYPE,
OPENBLAS_L2_SIZE) as set, and with both removed from the children's environment. The float32
GEMM peak of NumPy's BLAS is measured in the same run, per setting and thread count, and again in
every glassnet process right after its timed epochs: the fractions of the peak are per round.

Examples::

    python -m benchmarks.run                                  # everything; writes benchmarks/RESULTS.md
    python -m benchmarks.run --quick                          # a short check; prints only
    python -m benchmarks.run --quick --models keras_mnist --batch-sizes 128 --threads 1 --blas unset

PyTorch comes from the optional ``bench`` extra (``pip install -e .[bench]``); without it the
benchmark says so and reports glassnet alone.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import ALIASES, BLAS_VARIABLES, MODELS, load_average, model_batches, model_epoch_images
from benchmarks.report import format_row, write_markdown, ROW_HEADER

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

#: Scaling sweeps (glassnet and PyTorch, 1 thread, BLAS variables unset).
SCALING_BATCHES = (1, 8, 32, 128, 512)
SCALING_IMAGES = ((28, 28, 3), (64, 64, 3), (128, 128, 3))
SCALING_IMAGE_BATCH = 32


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS) +
                    " ('tiny' is seed003_tiny)")
    ap.add_argument("--batch-sizes", default="32,128", help="comma list (default 32,128)")
    ap.add_argument("--threads", default="1,2", help="comma list of BLAS / torch thread counts (default 1,2)")
    ap.add_argument("--blas", choices=("both", "set", "unset"), default="both",
                    help="run with the OPENBLAS_* variables as set, unset, or both (default)")
    ap.add_argument("--epoch-images", type=int, help="images per timed epoch (default 2048; --quick 512)")
    ap.add_argument("--epochs", type=int, help="timed epochs per measurement (default 4; --quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs (default 1)")
    ap.add_argument("--rounds", type=int, help="alternating glassnet/torch rounds per config (default 3; --quick 1)")
    ap.add_argument("--reference-images", type=int, help="images for the loop reference (default 300; --quick 100)")
    ap.add_argument("--quick", action="store_true", help="short runs, no scaling sweep, print only")
    ap.add_argument("--scaling", choices=("auto", "yes", "no"), default="auto",
                    help="run the batch/image-size sweep (auto: yes unless --quick)")
    ap.add_argument("--no-torch", action="store_true", help="measure glassnet alone even if torch is installed")
    ap.add_argument("--channels-last", choices=("auto", "yes", "no"), default="auto",
                    help="also compare with PyTorch in its channels-last memory format at the largest batch, "
                         "BLAS variables unset (auto: yes unless --quick)")
    ap.add_argument("--out", help="markdown file to write (default benchmarks/RESULTS.md; --quick writes none)")
    ap.add_argument("--json", help="also write every measurement to this JSON file")
    a = ap.parse_args(argv)
    quick = a.quick
    a.epoch_images = a.epoch_images or (512 if quick else 2048)
    a.epochs = a.epochs or (2 if quick else 4)
    a.rounds = a.rounds or (1 if quick else 3)
    a.reference_images = a.reference_images or (100 if quick else 300)
    a.scaling = a.scaling == "yes" or (a.scaling == "auto" and not quick)
    a.channels_last = a.channels_last == "yes" or (a.channels_last == "auto" and not quick)
    a.out = a.out or (None if quick else str(RESULTS))
    a.models = [ALIASES.get(m, m) for m in a.models.split(",")]
    unknown = [m for m in a.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose among {list(MODELS)} (or 'tiny')")
    a.batch_sizes = [int(v) for v in a.batch_sizes.split(",")]
    a.threads = [int(v) for v in a.threads.split(",")]
    return a


# -- running workers ------------------------------------------------------------------------------
def child_env(setting):
    """The environment of a worker: as this process has it, or without the OpenBLAS variables."""
    env = dict(os.environ)
    if setting == "unset":
        for name in BLAS_VARIABLES:
            env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_worker(spec, setting):
    """Run one measurement in a fresh interpreter; returns its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.workers", json.dumps(spec)]
    done = subprocess.run(cmd, cwd=ROOT, env=child_env(setting), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"benchmark worker failed ({spec}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_version():
    """PyTorch's version if it can be imported (checked in a child, so this process stays light)."""
    if importlib.util.find_spec("torch") is None:
        return None
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


# -- one configuration ----------------------------------------------------------------------------
def measure_config(a, setting, model, batch, threads, use_torch, with_reference, layout="nchw"):
    """Alternate glassnet and torch (and the loop reference) for ``a.rounds`` rounds."""
    spec = {"model": model, "batch": batch, "threads": threads, "epoch_images": model_epoch_images(model, a.epoch_images),
            "epochs": a.epochs, "warmup": a.warmup}
    rounds = []
    for _ in range(a.rounds):
        entry = {"glassnet": run_worker({**spec, "job": "glassnet"}, setting)}
        if use_torch:
            entry["torch"] = run_worker({**spec, "job": "torch", "layout": layout}, setting)
        if with_reference:
            entry["reference"] = run_worker({"job": "reference", "images": a.reference_images}, setting)
        rounds.append(entry)
    return {"model": model, "batch": batch, "threads": threads, "rounds": rounds}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(config, peak):
    """Medians over rounds; ratios are medians of the per-round (alternated) ratios."""
    rounds = config["rounds"]
    first = rounds[0]["glassnet"]
    row = {k: config[k] for k in ("model", "batch", "threads")}
    row.update(params=first["params"], fwd_flops=first["fwd_flops"], train_flops=first["train_flops"],
               peak_gflops=peak.get(str(config["threads"])))
    for lib in ("glassnet", "torch", "reference"):
        if lib not in rounds[0]:
            continue
        for mode in ("train", "infer"):
            if mode not in rounds[0][lib]:
                continue
            row[f"{lib}_{mode}"] = _median(r[lib][mode]["ips_median"] for r in rounds)
            row[f"{lib}_{mode}_foreign"] = max(r[lib][mode]["foreign_cpu"] for r in rounds)
        row[f"{lib}_rss"] = max(r[lib]["peak_rss_mib"] for r in rounds)
    # each round's fraction of the GEMM peak its glassnet process measured right after its epochs (the
    # torch process ran next to it); the run's one peak for results that lack it
    round_peaks = [r["glassnet"].get("peak_gflops") or row["peak_gflops"] for r in rounds]
    if all(round_peaks):
        row["peak_gflops"] = statistics.median(round_peaks)
    for mode, fl in (("train", row["train_flops"]), ("infer", row["fwd_flops"])):
        for lib in ("glassnet", "torch"):
            ips = row.get(f"{lib}_{mode}")
            if ips is not None:
                row[f"{lib}_{mode}_gflops"] = ips * fl / 1e9
                row[f"{lib}_{mode}_frac_peak"] = statistics.median(
                    r[lib][mode]["ips_median"] * fl / 1e9 / peak for r, peak in zip(rounds, round_peaks)
                ) if all(round_peaks) else None
        if "torch" in rounds[0]:
            ratios = [r["glassnet"][mode]["ips_median"] / r["torch"][mode]["ips_median"] for r in rounds]
            row[f"ratio_{mode}"] = statistics.median(ratios)
            row[f"ratio_{mode}_range"] = (min(ratios), max(ratios))
    if "reference" in rounds[0]:
        ratios = [r["glassnet"]["train"]["ips_median"] / r["reference"]["train"]["ips_median"] for r in rounds]
        row["ratio_reference"] = statistics.median(ratios)
        row["ratio_reference_range"] = (min(ratios), max(ratios))
    row["blas"] = first.get("blas")
    return row


# -- scaling --------------------------------------------------------------------------------------
def im2col_bytes(model_name, input_shape, batch):
    """Bytes the largest convolution's im2col matrix would take for the whole batch at once."""
    import glassnet as gn
    from glassnet.layers import Conv2D
    model = gn.presets.PRESETS[model_name](input_shape=tuple(input_shape), seed=0)
    sizes = [batch * layer.output_shape[1] * layer.output_shape[2] * int(layer.params["kernel"][..., 0].size) * 4
             for layer in model.layers if isinstance(layer, Conv2D)]
    return max(sizes)


def run_scaling(a, use_torch):
    points = [("keras_mnist", (28, 28, 1), b) for b in SCALING_BATCHES]
    points += [("keras_mnist", shape, SCALING_IMAGE_BATCH) for shape in SCALING_IMAGES]
    results = []
    print(f"\nscaling (1 thread, BLAS variables unset): model, input, batch -> train ms/img, infer ms/img, RSS MiB")
    for model, shape, batch in points:
        steps = max(2, min(64, 256 // batch)) if shape[0] == 28 else 2
        spec = {"job": "scaling", "model": model, "input_shape": list(shape), "batch": batch, "steps": steps,
                "threads": 1}
        point = {"model": model, "input_shape": list(shape), "batch": batch, "steps": steps,
                 "full_im2col_mib": im2col_bytes(model, shape, batch) / 2 ** 20,
                 "glassnet": run_worker({**spec, "lib": "glassnet"}, "unset")}
        if use_torch:
            point["torch"] = run_worker({**spec, "lib": "torch"}, "unset")
        results.append(point)
        line = (f"  {model} {'x'.join(map(str, shape)):>9s} bs {batch:4d}: glassnet "
                f"{point['glassnet']['train_ms_per_image']:7.3f} / {point['glassnet']['infer_ms_per_image']:7.3f} ms, "
                f"{point['glassnet']['peak_rss_mib']:6.0f} MiB")
        if use_torch:
            line += (f" | torch {point['torch']['train_ms_per_image']:7.3f} / "
                     f"{point['torch']['infer_ms_per_image']:7.3f} ms, {point['torch']['peak_rss_mib']:6.0f} MiB")
        print(line, flush=True)
    return results


# -- main -----------------------------------------------------------------------------------------
def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import numpy
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": numpy.__version__,
            "blas_variables": {name: os.environ.get(name) for name in BLAS_VARIABLES}}


def main(argv=None):
    a = parse_args(argv)
    version = None if a.no_torch else torch_version()
    use_torch = version is not None
    info = machine_info()
    info.update(torch=version, started=datetime.datetime.now().isoformat(timespec="seconds"),
                load_start=load_average(), command="python -m benchmarks.run " + shlex.join(argv or sys.argv[1:]))
    print(f"{info['cpu']}, {info['cpu_count']} CPUs, numpy {info['numpy']}, load {info['load_start']}")
    if not use_torch:
        print("PyTorch is " + ("left out (--no-torch)" if a.no_torch else
                               "not installed (pip install -e '.[bench]')") + ": reporting glassnet alone.")
    else:
        print(f"torch {version}")
    any_set = any(info["blas_variables"].values())
    settings = {"both": ["set", "unset"], "set": ["set"], "unset": ["unset"]}[a.blas]
    if not any_set and settings == ["set", "unset"]:
        print("No OPENBLAS_* variable is set here: one setting covers both.")
        settings = ["unset"]
    report = {"info": info, "settings": {}, "options": {k: v for k, v in vars(a).items()}}
    for setting in settings:
        peak_run = run_worker({"job": "peak", "threads": a.threads}, setting)
        peak = peak_run["gflops"]
        print(f"\nBLAS variables {setting}: kernel {peak_run['blas'].get('architecture')}, float32 GEMM peak "
              + ", ".join(f"{t} thread(s) {g:.0f} GFLOP/s" for t, g in peak.items()))
        print(ROW_HEADER)
        rows = []
        reference_config = ("seed003_tiny", max(a.batch_sizes), min(a.threads))
        for model in a.models:
            for batch in model_batches(model, a.batch_sizes):
                for threads in a.threads:
                    config = measure_config(a, setting, model, batch, threads, use_torch,
                                            with_reference=(model, batch, threads) == reference_config)
                    row = aggregate(config, peak)
                    row["raw"] = config["rounds"]
                    rows.append(row)
                    print(format_row(row), flush=True)
        report["settings"][setting] = {"peak": peak, "blas": peak_run["blas"], "rows": rows}
        if use_torch and a.channels_last and setting == "unset":
            print(f"\nPyTorch in channels-last memory format, batch {max(a.batch_sizes)}:")
            print(ROW_HEADER)
            report["settings"][setting]["channels_last_rows"] = extra = []
            for model in a.models:
                for threads in a.threads:
                    config = measure_config(a, setting, model, max(a.batch_sizes), threads, use_torch,
                                            with_reference=False, layout="channels_last")
                    row = aggregate(config, peak)
                    row["raw"] = config["rounds"]
                    extra.append(row)
                    print(format_row(row), flush=True)
    if a.scaling:
        report["scaling"] = run_scaling(a, use_torch)
    info["load_end"] = load_average()
    info["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    if a.out:
        write_markdown(Path(a.out), report)
        print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
