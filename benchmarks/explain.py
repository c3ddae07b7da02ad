"""glassnet's explanations against Captum on the same weights: images per second, alternated in fresh processes.

For every thread count, ``--rounds`` rounds each run one glassnet process and one Captum process
(:mod:`benchmarks.explain_jobs`), one after the other, so a burst of load from other processes
hits both; the ratio (glassnet / Captum images per second) is the median of the per-round ratios.
The first round also checks that both libraries computed the same maps (the largest difference
relative to the map's peak), so the speeds compare the same work.

Examples::

    python -m benchmarks.explain                        # keras_mnist, batch 128, 1 and 2 threads, 3 rounds
    python -m benchmarks.explain --quick                # 1 round, 1 repeat: a smoke test
    python -m benchmarks.explain --threads 1 --methods saliency,grad_cam

The ratios go into ``benchmarks/RESULTS.md`` between the markers below (in its hand-written part,
which ``python -m benchmarks.run`` keeps), unless ``--out none``. Captum comes from the optional
``bench`` extra (``pip install -e .[bench]``).
"""
import argparse
import datetime
import importlib.metadata
import importlib.util
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import load_average
from benchmarks.explain_jobs import CHECKED, IG_STEPS, METHODS, PERTURBATIONS_PER_EVAL, WINDOW
from benchmarks.report import MARKER
from benchmarks.run import run_worker

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- explain: begin (python -m benchmarks.explain) -->", "<!-- explain: end -->"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.explain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="keras_mnist", help="preset (default keras_mnist)")
    ap.add_argument("--batch", type=int, default=128, help="images explained per call (default 128)")
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    ap.add_argument("--rounds", type=int, help="alternated glassnet/Captum rounds (default 3; --quick 1)")
    ap.add_argument("--repeats", type=int, help="timed calls per method and process (default 3; --quick 1)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    ap.add_argument("--quick", action="store_true", help="one round, one repeat, nothing written")
    ap.add_argument("--out", help="markdown file to update (default benchmarks/RESULTS.md; --quick or 'none': none)")
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.repeats = a.repeats or (1 if a.quick else 3)
    a.threads = [int(v) for v in a.threads.split(",")]
    a.methods = a.methods.split(",")
    unknown = [m for m in a.methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose among {list(METHODS)}")
    out = a.out or (None if a.quick else str(RESULTS))
    a.out = None if out == "none" else out
    return a


def agreement(glassnet_maps, captum_maps):
    """Largest |difference| of the two libraries' maps relative to the glassnet map's peak |value|."""
    ours, theirs = np.asarray(glassnet_maps), np.asarray(captum_maps)
    return float(np.abs(ours - theirs).max() / max(np.abs(ours).max(), 1e-30))


def summarize_rounds(rounds, method):
    """Median images/s of each library and the median and range of the per-round ratios."""
    ratios = [r["glassnet"]["methods"][method]["ips_median"] / r["captum"]["methods"][method]["ips_median"]
              for r in rounds]
    return {"glassnet": statistics.median(r["glassnet"]["methods"][method]["ips_median"] for r in rounds),
            "captum": statistics.median(r["captum"]["methods"][method]["ips_median"] for r in rounds),
            "ratio": statistics.median(ratios), "range": (min(ratios), max(ratios)),
            "agreement": agreement(rounds[0]["glassnet"]["methods"][method]["maps"],
                                   rounds[0]["captum"]["methods"][method]["maps"]),
            "foreign": max(max(r["glassnet"]["foreign_cpu"], r["captum"]["foreign_cpu"]) for r in rounds)}


def measure(a, threads):
    spec = {"job": "explain", "model": a.model, "batch": a.batch, "threads": threads, "methods": a.methods,
            "repeats": a.repeats, "warmup": a.warmup}
    rounds = [{lib: run_worker({**spec, "lib": lib}, "set") for lib in ("glassnet", "captum")}
              for _ in range(a.rounds)]
    return {method: summarize_rounds(rounds, method) for method in a.methods}


def format_rows(threads, rows):
    return [f"| {method} | {threads} | {row['glassnet']:.0f} | {row['captum']:.0f} | {row['ratio']:.2f}x | "
            f"{row['range'][0]:.2f}-{row['range'][1]:.2f} | {row['agreement']:.1e} | {row['foreign']:.2f} |"
            for method, row in rows.items()]


def markdown(a, results, info):
    lines = [BEGIN, "", f"## Explanations: glassnet vs Captum {info['captum']} (`python -m benchmarks.explain`)", "",
             f"{info['started']} .. {info['finished']}, load average {info['load_start']} -> {info['load_end']}. "
             f"`{a.model}` with its initial weights (seed 0) in both libraries, batch {a.batch} of N(0, 1) images, "
             f"targets the predicted classes; {a.rounds} alternated rounds of fresh processes, {a.repeats} timed "
             f"calls each. Integrated gradients: {IG_STEPS} midpoint steps (Captum `riemann_middle`, "
             f"`internal_batch_size=1024`); occlusion: {WINDOW}x{WINDOW} windows, stride {WINDOW} (Captum "
             f"`perturbations_per_eval={PERTURBATIONS_PER_EVAL}`); Grad-CAM on the last pooling output, "
             "bilinear half-pixel upsampling in both. *Agreement*: the largest difference of the maps of the first "
             f"{CHECKED} images relative to the map's peak. *Foreign*: the largest share of the machine's CPU "
             "that other processes used during a round (this machine is shared; above ~0.1 the figures are "
             "depressed).", "",
             "| method | threads | glassnet img/s | Captum img/s | ratio | range | agreement | foreign |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for threads, rows in results.items():
        lines += format_rows(threads, rows)
    return "\n".join(lines + ["", END])


def write(path, text):
    """Put the section between its markers in the hand-written part of ``path`` (above benchmarks.run's MARKER)."""
    path = Path(path)
    current = path.read_text() if path.exists() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + text + rest.split(END, 1)[1]
    elif MARKER in current:
        head, tail = current.split(MARKER, 1)
        current = head.rstrip("\n") + "\n\n" + text + "\n\n" + MARKER + tail
    else:
        current = current + ("\n\n" if current else "") + text + "\n"
    path.write_text(current)


def captum_version():
    if importlib.util.find_spec("captum") is None:
        return None
    return importlib.metadata.version("captum")


def main(argv=None):
    a = parse_args(argv)
    version = captum_version()
    if version is None:
        print("Captum is not installed (pip install -e '.[bench]'): nothing to compare with.")
        return 1
    info = {"captum": version, "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "load_start": load_average()}
    print(f"explanations, {a.model}, batch {a.batch}: glassnet vs Captum {version} (ratio > 1: glassnet faster)")
    results = {}
    for threads in a.threads:
        results[threads] = measure(a, threads)
        for row in format_rows(threads, results[threads]):
            print(row, flush=True)
    info.update(finished=datetime.datetime.now().isoformat(timespec="seconds"), load_end=load_average())
    if a.out:
        write(a.out, markdown(a, results, info))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
