"""Console rows and the markdown report (``benchmarks/RESULTS.md``) of :mod:`benchmarks.run`.

The markdown file keeps everything above :data:`MARKER` (hand-written notes) and regenerates
everything below it.
"""
MARKER = "<!-- Everything below this line is written by `python -m benchmarks.run`. -->"

ROW_HEADER = (f"{'model':13s} {'bs':>4s} {'thr':>3s} | {'train img/s gn':>14s} {'torch':>7s} {'ratio':>5s} | "
              f"{'infer img/s gn':>14s} {'torch':>7s} {'ratio':>5s} | {'gn GF/s':>7s} {'%peak':>5s} "
              f"{'pt GF/s':>7s} | {'RSS gn':>6s} {'pt':>5s} | {'fgn':>4s}")

#: Batch size at which the throughput targets are judged.
TARGET_BATCH = 128


def _num(value, fmt):
    return "-" if value is None else format(value, fmt)


def _pct(value):
    return "-" if value is None else f"{100 * value:.0f}%"


def _foreign(row):
    return max((v for k, v in row.items() if k.endswith("_foreign") and v is not None), default=0.0)


def format_row(row):
    text = (f"{row['model']:13s} {row['batch']:4d} {row['threads']:3d} | "
            f"{_num(row.get('glassnet_train'), '14.0f')} {_num(row.get('torch_train'), '7.0f')} "
            f"{_num(row.get('ratio_train'), '5.2f')} | {_num(row.get('glassnet_infer'), '14.0f')} "
            f"{_num(row.get('torch_infer'), '7.0f')} {_num(row.get('ratio_infer'), '5.2f')} | "
            f"{_num(row.get('glassnet_train_gflops'), '7.1f')} {_pct(row.get('glassnet_train_frac_peak')):>5s} "
            f"{_num(row.get('torch_train_gflops'), '7.1f')} | {_num(row.get('glassnet_rss'), '6.0f')} "
            f"{_num(row.get('torch_rss'), '5.0f')} | {_foreign(row):4.2f}")
    if "ratio_reference" in row:
        text += (f"\n  loop reference (seed 003, batch 1): {row['reference_train']:.0f} img/s -> glassnet is "
                 f"{row['ratio_reference']:.0f}x faster")
    return text


def _range(row, key):
    low, high = row.get(key + "_range", (None, None))
    return "" if low is None else f" ({low:.2f}-{high:.2f})"


def throughput_table(rows):
    lines = ["| model | batch | threads | train img/s glassnet | torch | **ratio** (range) | infer img/s glassnet "
             "| torch | **ratio** (range) | train GFLOP/s glassnet (% peak) | torch (% peak) | peak RSS MiB glassnet "
             "| torch | foreign CPU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {_num(r.get('glassnet_train'), '.0f')} | "
            f"{_num(r.get('torch_train'), '.0f')} | **{_num(r.get('ratio_train'), '.2f')}**{_range(r, 'ratio_train')} | "
            f"{_num(r.get('glassnet_infer'), '.0f')} | {_num(r.get('torch_infer'), '.0f')} | "
            f"**{_num(r.get('ratio_infer'), '.2f')}**{_range(r, 'ratio_infer')} | "
            f"{_num(r.get('glassnet_train_gflops'), '.1f')} ({_pct(r.get('glassnet_train_frac_peak'))}) | "
            f"{_num(r.get('torch_train_gflops'), '.1f')} ({_pct(r.get('torch_train_frac_peak'))}) | "
            f"{_num(r.get('glassnet_rss'), '.0f')} | {_num(r.get('torch_rss'), '.0f')} | {_foreign(r):.2f} |")
    return lines


def targets(report):
    """Each target of issue 7 with the measured values and whether they meet it."""
    out = []
    unset = report["settings"].get("unset")
    if unset is None:
        return ["(the targets are judged with the BLAS variables unset; that setting was not run)"]
    rows = [r for r in unset["rows"] if r["batch"] == TARGET_BATCH]
    has_torch = any("ratio_train" in r for r in rows)

    def verdict(ok):
        return "**met**" if ok else "**NOT met**"

    if has_torch:
        extra = [r for r in unset.get("channels_last_rows", []) if r["batch"] == TARGET_BATCH]
        for mode, what in (("train", "training"), ("infer", "inference")):
            values = [(f"{r['model']}/{r['threads']}t", r[f"ratio_{mode}"]) for r in rows]
            ok = all(v >= 1.0 for _, v in values)
            text = (f"- {what} >= 1.0x PyTorch at batch {TARGET_BATCH}, 1 and 2 threads: {verdict(ok)} ("
                    + ", ".join(f"{k} {v:.2f}x" for k, v in values) + ")")
            if extra:
                text += ("; against PyTorch in channels-last format: "
                         + ", ".join(f"{r['model']}/{r['threads']}t {r[f'ratio_{mode}']:.2f}x" for r in extra))
            out.append(text)
        all_rows = [r for s in report["settings"].values() for r in s["rows"]]
        rss = [(f"{r['model']}/bs{r['batch']}/{r['threads']}t", r["glassnet_rss"], r["torch_rss"]) for r in all_rows]
        ok = all(g <= t for _, g, t in rss)
        worst = max(rss, key=lambda item: item[1] / item[2])
        out.append(f"- peak RSS <= PyTorch's in every configuration: {verdict(ok)} (glassnet "
                   f"{min(g for _, g, _ in rss):.0f}-{max(g for _, g, _ in rss):.0f} MiB, PyTorch "
                   f"{min(t for _, _, t in rss):.0f}-{max(t for _, _, t in rss):.0f} MiB; closest: {worst[0]} "
                   f"{worst[1]:.0f} vs {worst[2]:.0f})")
    else:
        out.append("- PyTorch was not measured: the ratio and RSS targets could not be judged.")
    refs = [r for s in report["settings"].values() for r in s["rows"] if "ratio_reference" in r]
    if refs:
        out.append("- >= 100x the loop reference on the tiny model: " + verdict(all(r["ratio_reference"] >= 100
                                                                                   for r in refs)) + " ("
                   + ", ".join(f"{r['ratio_reference']:.0f}x at batch {r['batch']}, {r['threads']} thread"
                               for r in refs) + ")")
    km = [r for r in rows if r["model"] == "keras_mnist" and r.get("glassnet_train_frac_peak") is not None]
    if km:
        ok = all(r["glassnet_train_frac_peak"] >= 0.40 for r in km)
        out.append(f"- keras_mnist training >= 40% of the float32 GEMM peak: {verdict(ok)} ("
                   + ", ".join(f"{r['threads']} thread(s): {100 * r['glassnet_train_frac_peak']:.0f}% of "
                               f"{r['peak_gflops']:.0f} GFLOP/s" for r in km) + ")")
    return out


def scaling_table(points):
    has_torch = any("torch" in p for p in points)
    head = "| input | batch | train ms/image | infer ms/image | peak RSS MiB | whole-batch im2col would be (MiB) |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if has_torch:
        head += " torch train ms/image | torch infer ms/image | torch peak RSS MiB |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for p in points:
        g = p["glassnet"]
        line = (f"| {'x'.join(map(str, p['input_shape']))} | {p['batch']} | {g['train_ms_per_image']:.3f} | "
                f"{g['infer_ms_per_image']:.3f} | {g['peak_rss_mib']:.0f} | {p['full_im2col_mib']:.0f} |")
        if has_torch:
            t = p.get("torch")
            line += (f" {t['train_ms_per_image']:.3f} | {t['infer_ms_per_image']:.3f} | {t['peak_rss_mib']:.0f} |"
                     if t else " - | - | - |")
        lines.append(line)
    return lines


def markdown(report):
    info = report["info"]
    o = report["options"]
    lines = [MARKER, "", f"## Measured {info['started']} .. {info['finished']}", "",
             "Command (from the repository root; `make bench` runs it with no options):", "",
             f"    {info['command']}", "",
             f"- CPU: {info['cpu']}, {info['cpu_count']} logical CPUs (shared with other jobs: see *foreign CPU*, "
             f"the share of the machine used by other processes during each measurement); load average "
             f"{info['load_start']} at the start, {info['load_end']} at the end",
             f"- Python {info['python']}, NumPy {info['numpy']}, PyTorch {info['torch'] or 'not installed'}",
             f"- This machine's BLAS variables: " + ", ".join(f"{k}={v}" for k, v in info["blas_variables"].items()),
             f"- {o['epoch_images']} images per epoch, {o['warmup']} warm-up + {o['epochs']} timed epochs, "
             f"median epoch; {o['rounds']} alternated rounds (glassnet, torch, glassnet, torch, ...), each in a "
             f"fresh process; ratios are medians of the per-round ratios (range in brackets)",
             "- glassnet trains with `model.fit(x, y, batch_size, shuffle=False)` and infers with `model.predict`; "
             "PyTorch with zero_grad/forward/cross_entropy/backward/SGD step and eval + inference_mode; both SGD "
             "lr 0.01 momentum 0.9 on the same random N(0, 1) float32 data",
             "- GFLOP/s: training = 3 x forward FLOPs (2 x MACs of Conv2D and Dense), as in "
             "`shared/bench/torch_ref.py`; % of the float32 2048x2048 NumPy GEMM peak (best of 5), measured "
             "in each glassnet process right after its timed epochs (this shared CPU's clock drifts by 10-15% "
             "within minutes): the median of the per-round fractions, against the median of the rounds' peaks "
             "shown as 'of ... GFLOP/s'; the peak measured once at the start is given per setting below",
             "", "### Targets (issue 7; BLAS variables unset, batch 128)", ""]
    lines += targets(report)
    for setting, data in report["settings"].items():
        title = "as set on this machine" if setting == "set" else "unset (removed from the environment)"
        blas = data["blas"]
        lines += ["", f"### BLAS variables {title}", "",
                  f"OpenBLAS {blas.get('version')} kernel **{blas.get('architecture')}**; float32 GEMM peak "
                  + ", ".join(f"{t} thread(s): {g:.0f} GFLOP/s" for t, g in data["peak"].items()), ""]
        lines += throughput_table(data["rows"])
        if data.get("channels_last_rows"):
            lines += ["", "PyTorch in its channels-last memory format (`model.to(memory_format=torch.channels_last)`, "
                      "input likewise): often its fastest CPU layout, not what `torch.randn(N, 1, 28, 28)` and "
                      "the reference script use; measured the same way, alternated with glassnet again:", ""]
            lines += throughput_table(data["channels_last_rows"])
        refs = [r for r in data["rows"] if "ratio_reference" in r]
        for r in refs:
            lines += ["", f"Seed 003's loop code (`glassnet.reference.train_tiny_step`, one image per step, "
                      f"{o['reference_images']} images): {r['reference_train']:.0f} img/s; glassnet `fit` on the "
                      f"same model at batch {r['batch']}, {r['threads']} thread: **{r['ratio_reference']:.0f}x** "
                      f"faster{_range(r, 'ratio_reference')}."]
    if report.get("scaling"):
        lines += ["", "### Scaling (keras_mnist, 1 thread, BLAS variables unset)", "",
                  "Time per image and peak RSS of a fresh process as the batch and the image grow. glassnet's "
                  "convolutions work in blocks whose im2col matrix stays under `glassnet.ops.MEMORY_BUDGET_BYTES` "
                  "(256 MiB by default; a few MiB in practice, to stay in cache), whatever the batch: the last "
                  "column is what a whole-batch im2col would need. At 128x128x3 most of the memory is the "
                  "31.5M-weight Dense layer that follows Flatten (weights, gradients, momentum).", ""]
        lines += scaling_table(report["scaling"])
    return "\n".join(lines) + "\n"


def write_markdown(path, report):
    """Write the generated part of the report, keeping hand-written notes above :data:`MARKER`."""
    notes = "# Benchmarks: glassnet vs PyTorch on the CPU\n\n"
    if path.exists():
        text = path.read_text()
        if MARKER in text:
            notes = text.split(MARKER)[0]
    path.write_text(notes + markdown(report))
