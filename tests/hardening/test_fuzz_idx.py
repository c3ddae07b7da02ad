"""Fuzzing ``datasets.load_idx`` with mutated IDX files (issue 8, sections 4 and 5).

Every mutated file -- bit flips, truncation, header edits, absurd dimensions, corrupt gzip,
trailing junk -- must either load as an array or raise the documented ``ValueError``
("load_idx: <path>: ..."), and must never allocate more than the file could possibly hold:
the product of the header's dimensions is checked against the file size *before* any buffer
is allocated (for gzip, against the deflate ratio bound of 1032:1).

Run with ``-s`` to see how many mutated files were tried.
"""
import gzip
import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glassnet import datasets
from guarded_loading import outcome_and_peak

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
         np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
#: examples per property; raise it for a long hunt, e.g. GLASSNET_FUZZ_EXAMPLES=5000
FUZZ = settings(max_examples=int(os.environ.get("GLASSNET_FUZZ_EXAMPLES", 150)),
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNTS = {}
MiB = 1 << 20


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print(f"\nIDX fuzz: {sum(COUNTS.values())} files "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(COUNTS.items()))})")


def idx_bytes(array):
    """The IDX encoding of ``array``, written independently of glassnet's writer."""
    header = bytes([0, 0, CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(list(CODES)))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=4)))
    seed = draw(st.integers(0, 2 ** 16))
    values = np.random.default_rng(seed).integers(-100, 100, size=shape)
    return values.astype(dtype) if dtype.kind != "u" else np.abs(values).astype(dtype)


def load_guarded(path, disk_size):
    """Call load_idx; return the array or the ValueError, asserting bounded memory and a documented error."""
    result, peak = outcome_and_peak(datasets.load_idx, path)
    # No buffer beyond what the file can hold (raw: its size; gzip: 1032 x its size) plus slack.
    assert peak <= 1032 * disk_size + MiB, f"load_idx peaked at {peak} bytes for a {disk_size}-byte file"
    if isinstance(result, ValueError):
        assert type(result) is ValueError
        assert str(result).startswith("load_idx: "), str(result)
        assert str(path) in str(result), "the error names the file"
    else:
        assert isinstance(result, np.ndarray)
        assert result.dtype.isnative and result.dtype in CODES
    return result


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def gz(data):
    return gzip.compress(data, mtime=0)


def count(kind):
    COUNTS[kind] = COUNTS.get(kind, 0) + 1


# -- round trip: the unmutated files load exactly -------------------------------------------------
@FUZZ
@given(array=arrays(), compress=st.booleans())
def test_unmutated_files_round_trip(tmp_path, array, compress):
    count("unmutated")
    data = idx_bytes(array)
    path = write(tmp_path, "ok.idx.gz" if compress else "ok.idx", gz(data) if compress else data)
    loaded = load_guarded(path, path.stat().st_size)
    assert isinstance(loaded, np.ndarray)
    np.testing.assert_array_equal(loaded, array)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape


# -- mutations of the raw bytes ------------------------------------------------------------------
@FUZZ
@given(array=arrays(), compress=st.booleans(), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                                       st.integers(0, 7)), min_size=1, max_size=8))
def test_bit_flips(tmp_path, array, compress, flips):
    """Flip bits anywhere in the file on disk (for gzip files: in the compressed stream)."""
    count("bit flips")
    data = bytearray(gz(idx_bytes(array)) if compress else idx_bytes(array))
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    path = write(tmp_path, "flip.gz" if compress else "flip.idx", bytes(data))
    result = load_guarded(path, len(data))
    if isinstance(result, np.ndarray) and not compress:
        # a raw file that still parses has a header consistent with its length
        assert result.nbytes == len(data) - 4 - 4 * result.ndim


@FUZZ
@given(array=arrays(), compress=st.booleans(), cut=st.floats(0, 1, exclude_max=True))
def test_truncation(tmp_path, array, compress, cut):
    count("truncation")
    data = gz(idx_bytes(array)) if compress else idx_bytes(array)
    data = data[:int(cut * len(data))]
    path = write(tmp_path, "cut.gz" if compress else "cut.idx", data)
    result = load_guarded(path, len(data))
    if not compress:
        assert isinstance(result, ValueError) or result.size == 0, "a truncated raw file never loads with data"


@FUZZ
@given(array=arrays(), compress=st.booleans(),
       edits=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 255)), min_size=1, max_size=4))
def test_header_edits(tmp_path, array, compress, edits):
    """Overwrite bytes of the magic number and dimensions (inside the gzip stream when compressed)."""
    count("header edits")
    data = bytearray(idx_bytes(array))
    for position, value in edits:
        if position < len(data):
            data[position] = value
    disk = gz(bytes(data)) if compress else bytes(data)
    path = write(tmp_path, "head.gz" if compress else "head.idx", disk)
    load_guarded(path, len(disk))


@FUZZ
@given(array=arrays(), compress=st.booleans(), axis=st.integers(0, 3),
       claim=st.one_of(st.integers(2 ** 20, 2 ** 32 - 1), st.sampled_from([2 ** 31, 2 ** 32 - 1, 65536])))
def test_absurd_dimensions(tmp_path, array, compress, axis, claim):
    """A header claiming gigabytes must fail before allocating them."""
    count("absurd dims")
    data = bytearray(idx_bytes(array))
    axis = axis % array.ndim
    data[4 + 4 * axis: 8 + 4 * axis] = struct.pack(">I", claim)
    disk = gz(bytes(data)) if compress else bytes(data)
    path = write(tmp_path, "dims.gz" if compress else "dims.idx", disk)
    result = load_guarded(path, len(disk))
    others = int(np.prod([d for i, d in enumerate(array.shape) if i != axis]))
    if others > 0:
        assert isinstance(result, ValueError), "a header claiming more data than the file holds must fail"


@FUZZ
@given(array=arrays(), compress=st.booleans(), junk=st.binary(min_size=1, max_size=64))
def test_trailing_junk(tmp_path, array, compress, junk):
    count("trailing junk")
    disk = gz(idx_bytes(array) + junk) if compress else idx_bytes(array) + junk
    path = write(tmp_path, "junk.gz" if compress else "junk.idx", disk)
    result = load_guarded(path, len(disk))
    assert isinstance(result, ValueError), "data after the announced body is reported"


@FUZZ
@given(array=arrays(), level=st.integers(0, 9), damage=st.sampled_from(["crc", "length", "deflate", "member"]),
       where=st.floats(0, 1, exclude_max=True))
def test_gzip_corruption(tmp_path, array, level, damage, where):
    """Damage the gzip container itself: CRC, length trailer, deflate stream, a second bogus member."""
    count("gzip corruption")
    payload = idx_bytes(array)
    data = bytearray(gzip.compress(payload, compresslevel=level, mtime=0))
    if damage == "crc":
        data[-8] ^= 0xFF
    elif damage == "length":
        data[-4] ^= 0x01
    elif damage == "deflate":
        body = range(10, len(data) - 8)
        data[body[int(where * len(body))]] ^= 0x55
    else:
        data += b"\x1f\x8b\x08\x00" + bytes(6) + zlib.compress(b"junk")[2:]
    path = write(tmp_path, "bad.gz", bytes(data))
    result = load_guarded(path, len(data))
    if damage in ("crc", "length"):
        assert isinstance(result, ValueError), "a gzip checksum/length mismatch is detected"


@FUZZ
@given(blob=st.binary(min_size=0, max_size=200), gzip_name=st.booleans())
def test_random_bytes(tmp_path, blob, gzip_name):
    count("random bytes")
    path = write(tmp_path, "random.gz" if gzip_name else "random.idx", blob)
    load_guarded(path, len(blob))


# -- deterministic worst cases ------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_gigantic_header_fails_before_allocating(tmp_path, compress):
    """A 16-byte header claiming 2**96 bytes of float64 (and 1 GiB of uint8): no allocation, clear error."""
    for shape, code in (((2 ** 32 - 1,) * 3, 0x0E), ((1 << 30,), 0x08)):
        header = bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
        disk = gz(header + bytes(100)) if compress else header + bytes(100)
        path = write(tmp_path, "huge.gz" if compress else "huge.idx", disk)
        error = load_guarded(path, len(disk))
        assert isinstance(error, ValueError)
        text = str(error)
        assert str(shape) in text and ("bytes" in text), text


@pytest.mark.parametrize("compress", [False, True])
def test_zero_dimension_with_huge_others_is_refused_by_glassnet(tmp_path, compress):
    """Found by this fuzzer: shape (318767104, 6, 1207959552, 0) holds 0 bytes, so the size checks pass,
    but NumPy cannot even describe it ("array is too big"); load_idx must say so itself."""
    shape = (0x13000000, 6, 0x48000000, 0)
    data = bytes([0, 0, 0x0C, 4]) + struct.pack(">4I", *shape)
    path = write(tmp_path, "zero.gz" if compress else "zero.idx", gz(data) if compress else data)
    error = load_guarded(path, path.stat().st_size)
    assert isinstance(error, ValueError) and "absurd dimensions" in str(error)


def test_gzip_bomb_within_ratio_is_read_in_bounded_chunks(tmp_path):
    """A legitimately highly compressible file (8 MiB of zeros) loads; memory follows the data, not a claim."""
    array = np.zeros((2048, 4096), dtype=np.uint8)
    data = gz(idx_bytes(array))
    path = write(tmp_path, "zeros.gz", data)
    tracemalloc.start()
    loaded = datasets.load_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert loaded.shape == array.shape and not loaded.any()
    assert peak < 3 * array.nbytes, f"peak {peak} for {array.nbytes} bytes of data"
