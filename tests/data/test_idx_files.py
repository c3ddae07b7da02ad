"""IDX reader/writer: round trips for every type and rank, and every kind of malformed file."""
import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from glassnet import datasets
from glassnet.data.idx import TYPE_CODES

T10K = Path(__file__).resolve().parents[1] / "fixtures" / "mnist-t10k"
DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]
SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (1, 2, 1, 2, 1, 3), (0, 28, 28)]


def _sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype) if np.dtype(dtype).kind == "f" else np.iinfo(dtype)
    if np.dtype(dtype).kind == "f":
        values = rng.standard_normal(shape) * 1e3
        values.flat[:3] = [info.max, info.min, info.tiny][: values.size]
        return values.astype(dtype)
    values = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    values.flat[:2] = [info.min, info.max][: values.size]
    return values


def _header(code, shape):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_type_and_rank(tmp_path, dtype, shape, suffix):
    array = _sample(dtype, shape)
    path = tmp_path / f"a{suffix}"
    datasets.save_idx(path, array)
    loaded = datasets.load_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.shape == shape
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable and loaded.dtype.isnative
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == suffix.endswith(".gz")


@pytest.mark.parametrize("dtype", DTYPES)
def test_file_layout_is_big_endian_idx(tmp_path, dtype):
    array = np.arange(6, dtype=dtype).reshape(2, 3)
    path = tmp_path / "a.idx"
    datasets.save_idx(path, array)
    code = {dt.name: c for c, dt in TYPE_CODES.items()}[dtype]
    expected = _header(code, (2, 3)) + array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    assert path.read_bytes() == expected


def test_mnist_magic_numbers(tmp_path):
    datasets.save_idx(tmp_path / "i", np.zeros((2, 28, 28), np.uint8))
    datasets.save_idx(tmp_path / "l", np.zeros(2, np.uint8))
    assert struct.unpack(">I", (tmp_path / "i").read_bytes()[:4])[0] == 2051
    assert struct.unpack(">I", (tmp_path / "l").read_bytes()[:4])[0] == 2049


def test_gzip_detected_by_content_without_suffix(tmp_path):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    path = tmp_path / "plain-name"
    datasets.save_idx(path, array, compress=True)
    np.testing.assert_array_equal(datasets.load_idx(path), array)


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    datasets.save_idx(tmp_path / "a.gz", array)
    datasets.save_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("dtype", ["int64", "uint16", "float16", "bool", "complex64"])
def test_save_rejects_types_without_a_code(tmp_path, dtype):
    with pytest.raises(TypeError, match="astype"):
        datasets.save_idx(tmp_path / "a.idx", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []


def test_save_accepts_big_endian_input(tmp_path):
    array = np.arange(5, dtype=">i4")
    datasets.save_idx(tmp_path / "a.idx", array)
    np.testing.assert_array_equal(datasets.load_idx(tmp_path / "a.idx"), array)


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.idx.gz"
    datasets.save_idx(path, np.zeros(3, np.uint8))
    datasets.save_idx(path, np.ones(4, np.uint8))
    np.testing.assert_array_equal(datasets.load_idx(path), np.ones(4, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx.gz"]


# ---------------------------------------------------------------- malformed files
GOOD = _header(0x08, (2, 3)) + bytes(range(6))
MALFORMED = {
    "empty": (b"", r"empty"),
    "short magic": (b"\x00\x00", r"truncated header at byte 0"),
    "bad magic": (b"\x12\x34\x08\x01" + b"\x00" * 8, r"bad magic number 0x12340801 at byte 0"),
    "unknown type": (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00", r"unknown type code 0x0A at byte 2"),
    "truncated dims": (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", r"truncated header at byte 4.*3 dimension"),
    "truncated body": (GOOD[:-2], r"truncated body at byte 12.*6 bytes.*only 4"),
    "trailing bytes": (GOOD + b"\x07\x07", r"2 trailing byte\(s\) at byte 18"),
    "absurd dims": (_header(0x0E, (60000, 60000, 60000)) + b"\x00" * 64,
                    r"truncated body at byte 16.*1728000000000000 bytes"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=str)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_malformed_files_raise_value_error_naming_file_and_place(tmp_path, case, gz):
    content, pattern = MALFORMED[case]
    path = tmp_path / ("bad.idx.gz" if gz else "bad.idx")
    path.write_bytes(gzip.compress(content) if gz else content)
    if gz and case == "absurd dims":
        pattern = r"absurd dimensions at byte 4"
    if gz and case == "trailing bytes":
        pattern = r"trailing bytes at byte 18"
    if gz and case == "truncated body":
        pattern = r"truncated body at byte 16 \(decompressed\).*6 bytes.*after 4"
    if gz and case == "empty":
        pattern = r"empty \(0 bytes of IDX data\)"
    with pytest.raises(ValueError, match=pattern) as info:
        datasets.load_idx(path)
    assert str(path) in str(info.value)


def test_empty_gz_file(tmp_path):
    path = tmp_path / "empty.gz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        datasets.load_idx(path)


@pytest.mark.parametrize("damage", ["garbage", "cut", "flipped", "crc"])
def test_corrupt_gzip(tmp_path, damage):
    data = gzip.compress(_header(0x08, (64, 64)) + np.random.default_rng(0).bytes(64 * 64))
    if damage == "garbage":
        data = b"this is not gzip at all"
    elif damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data = data[:40] + bytes([data[40] ^ 0xFF]) + data[41:]
    else:  # CRC-32 trailer wrong, deflate stream intact
        data = data[:-8] + bytes([data[-8] ^ 0x01]) + data[-7:]
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="gzip") as info:
        datasets.load_idx(path)
    assert str(path) in str(info.value)


def test_absurd_gzip_header_is_rejected_before_allocating(tmp_path):
    # A 40-byte gzip file claiming 40 GB of float64: must fail at once, without a big allocation.
    path = tmp_path / "bomb.idx.gz"
    path.write_bytes(gzip.compress(_header(0x0E, (50000, 100000))))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="absurd dimensions"):
            datasets.load_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_gzip_with_huge_trailing_data_is_detected_without_reading_it_all(tmp_path):
    # Header says 10 bytes; 50 MB of zeros follow (compressing to ~50 kB). Reading stops after 1 extra byte.
    path = tmp_path / "extra.idx.gz"
    with gzip.open(path, "wb") as f:
        f.write(_header(0x08, (10,)) + bytes(10))
        for _ in range(50):
            f.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="trailing bytes at byte 18"):
            datasets.load_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_gz_suffix_on_raw_file_is_reported(tmp_path):
    path = tmp_path / "raw.idx.gz"
    path.write_bytes(GOOD)
    with pytest.raises(ValueError, match="not the gzip magic"):
        datasets.load_idx(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_idx(tmp_path / "nope.idx")


# ---------------------------------------------------------------- the real MNIST test digits
def test_real_mnist_test_digits_through_load_idx():
    x = datasets.load_idx(T10K / "t10k-images-idx3-ubyte.gz")
    y = datasets.load_idx(T10K / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and y.dtype == np.uint8
    # MNIST's published test-set class counts and its first five labels
    np.testing.assert_array_equal(np.bincount(y, minlength=10),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    np.testing.assert_array_equal(y[:5], [7, 2, 1, 0, 4])
    assert x.min() == 0 and x.max() == 255
    # digits are centred in a 20x20 box: the 4-pixel border is almost empty
    assert x[:, :2].mean() < 1 and x[:, 10:18, 10:18].mean() > 50


def test_real_digits_survive_a_raw_round_trip(tmp_path):
    x = datasets.load_idx(T10K / "t10k-images-idx3-ubyte.gz")[:100]
    datasets.save_idx(tmp_path / "t.idx", x)
    np.testing.assert_array_equal(datasets.load_idx(tmp_path / "t.idx"), x)
