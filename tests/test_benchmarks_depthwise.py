"""benchmarks.depthwise: both libraries compute the same convolution, and the ratios are per-round medians."""
import pytest

from benchmarks import depthwise as bench

pytest.importorskip("torch", reason="PyTorch (bench/dev oracle) is not installed")


@pytest.mark.parametrize("stride", [1, 2])          # stride 2 on an even size: Keras's asymmetric "same" padding
def test_both_libraries_compute_the_same_output_and_every_call_runs(stride):
    case = bench.Case(batch=2, shape=(6, 6, 3), kernel=3, stride=stride)
    for library in bench.LIBRARIES[1:]:
        assert case.agreement(library) < 1e-5
    result = bench.measure(case, rounds=2, repeats=1)
    assert set(result) == set(bench.PHASES)
    for row in result.values():
        assert all(row[f"{library}_ms"] > 0 for library in bench.LIBRARIES)


def test_ratios_are_medians_of_per_round_ratios_and_rows_format():
    times = {"glassnet": [1.0, 2.0, 1.0], "torch_nchw": [2.0, 2.0, 3.0], "torch_channels_last": [0.5, 1.0, 1.0]}
    row = bench.summarize(times)
    assert row["vs_torch_nchw"] == (2.0, 1.0, 3.0) and row["vs_torch_channels_last"] == (0.5, 0.5, 1.0)
    assert row["glassnet_ms"] == 1000.0
    line = bench.format_row("6x6x3 k3 s1", 1, "forward", row, 0.05)
    assert line.startswith("| 6x6x3 k3 s1 | 1 | forward | 1000.00 | 2000.00 | 2.00x (1.00-3.00) |")
    a = bench.parse_args(["--shapes", "6x6x3,7x7x2", "--kernels", "3", "--quick"])
    assert a.shapes == [(6, 6, 3), (7, 7, 2)] and a.kernels == [3] and a.rounds == a.repeats == 1
    assert a.clock == "wall" and bench.parse_args(["--clock", "cpu"]).clock == "cpu"
    with pytest.raises(SystemExit):
        bench.parse_args(["--clock", "gpu"])
