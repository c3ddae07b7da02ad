"""Read and write IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension,
then the data in C order, big-endian::

    00 00 <type code> <ndim>   d0 (u32) d1 (u32) ...   data

Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64. MNIST's images are ``00 00 08 03`` (2051) and its labels
``00 00 08 01`` (2049). Files may be gzipped.

Every malformed file raises ``ValueError`` naming the file, the byte offset
and what is wrong. Sizes are checked against the file's size *before* any
buffer is allocated, so a corrupt header cannot make us allocate gigabytes.
"""
import gzip
import os
import struct
import tempfile
import zlib

import numpy as np

from glassnet.validation import check_path

# type code -> big-endian dtype as stored in the file
TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# dtype name (byte order aside) -> type code, for writing
_CODE_OF = {dt.name: code for code, dt in TYPE_CODES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data by more than 1032:1 (a 258-byte match coded in at
# most 2 bits), so a gzip file of S bytes never holds more than 1032 * S bytes.
# A header claiming more is absurd and is rejected before anything is read.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 22  # read gzip bodies in 4 MiB pieces: memory follows the real data, not the claim


def _fail(path, what):
    raise ValueError(f"load_idx: {os.fspath(path)!s}: {what}")


def _is_gzip(path, head):
    return str(os.fspath(path)).endswith(".gz") or head[:2] == _GZIP_MAGIC


def _parse_header(path, read):
    """Read and check the magic and the dimensions.

    Parameters
    ----------
    read : callable(n) -> bytes
        Reads up to ``n`` bytes of the (decompressed) stream.

    Returns
    -------
    dtype : numpy.dtype (big-endian), shape : tuple of int, offset : int
    """
    magic = read(4)
    if len(magic) == 0:
        _fail(path, "the file is empty (0 bytes of IDX data); expected a 4-byte magic number "
                    "00 00 <type> <ndim>")
    if len(magic) < 4:
        _fail(path, f"truncated header at byte 0: expected a 4-byte magic number, got {len(magic)} byte(s)")
    if magic[0] != 0 or magic[1] != 0:
        _fail(path, f"bad magic number 0x{magic.hex()} at byte 0: an IDX file starts with two zero bytes "
                    f"(00 00 <type> <ndim>, e.g. 0x00000803 for MNIST images); is this really an IDX file?")
    code, ndim = magic[2], magic[3]
    if code not in TYPE_CODES:
        known = ", ".join(f"0x{c:02X} ({TYPE_CODES[c].name})" for c in TYPE_CODES)
        _fail(path, f"unknown type code 0x{code:02X} at byte 2; known codes: {known}")
    raw_dims = read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        _fail(path, f"truncated header at byte 4: the magic number announces {ndim} dimension(s) "
                    f"({4 * ndim} bytes) but only {len(raw_dims)} byte(s) follow")
    shape = struct.unpack(f">{ndim}I", raw_dims)
    # NumPy refuses shapes whose non-zero dimensions overflow its index type, even when one
    # dimension is 0 and the file is rightly empty; refuse them here with the file's name.
    span = 1
    for d in shape:
        span *= max(d, 1)
    if span * TYPE_CODES[code].itemsize > np.iinfo(np.intp).max:
        _fail(path, f"absurd dimensions at byte 4: shape {shape} of {TYPE_CODES[code].name} spans "
                    f"{span * TYPE_CODES[code].itemsize} bytes, more than any array can address "
                    f"({np.iinfo(np.intp).max}); the header is corrupt")
    return TYPE_CODES[code], shape, 4 + 4 * ndim


def _body_size(dtype, shape):
    # Python ints: no overflow however absurd the dimensions are.
    count = 1
    for d in shape:
        count *= d
    return count * dtype.itemsize


def _to_array(path, buf, dtype, shape):
    data = np.frombuffer(buf, dtype=dtype).reshape(shape)
    if dtype.itemsize == 1:
        return data.view(dtype.newbyteorder("="))  # bytearray-backed, so writable
    return data.astype(dtype.newbyteorder("="))   # byte swap into native order


def _read_raw(path, f):
    size = os.fstat(f.fileno()).st_size
    dtype, shape, offset = _parse_header(path, f.read)
    expected = _body_size(dtype, shape)
    available = size - offset
    if expected > available:
        _fail(path, f"truncated body at byte {offset}: the header says shape {shape} of {dtype.name} "
                    f"= {expected} bytes, but the file has only {available} byte(s) after the header")
    if expected < available:
        _fail(path, f"{available - expected} trailing byte(s) at byte {offset + expected}: the header says "
                    f"shape {shape} of {dtype.name} = {expected} bytes of data, the file has {available}")
    buf = bytearray(expected)
    got = f.readinto(buf)
    if got != expected:  # the file shrank while we read it
        _fail(path, f"truncated body at byte {offset + got}: expected {expected} bytes of data, read {got}")
    return _to_array(path, buf, dtype, shape)


def _read_gzip(path, f):
    compressed_size = os.fstat(f.fileno()).st_size
    if compressed_size == 0:
        _fail(path, "the file is empty (0 bytes); expected a gzip stream (1f 8b ...)")
    head = f.read(2)
    f.seek(0)
    if head != _GZIP_MAGIC:
        _fail(path, f"corrupt gzip at byte 0: the file name ends in .gz but it starts with 0x{head.hex()}, "
                    f"not the gzip magic 1f8b. Rename it without .gz if it is a raw IDX file")
    with gzip.GzipFile(fileobj=f, mode="rb") as stream:
        dtype, shape, offset = _parse_header(path, stream.read)
        expected = _body_size(dtype, shape)
        bound = _MAX_DEFLATE_RATIO * compressed_size
        if expected > bound:
            _fail(path, f"absurd dimensions at byte 4: shape {shape} of {dtype.name} needs {expected} bytes, "
                        f"but a {compressed_size}-byte gzip file can hold at most {bound} bytes; the header "
                        f"is corrupt or the file truncated")
        buf = bytearray()
        while len(buf) < expected:
            chunk = stream.read(min(_CHUNK, expected - len(buf)))
            if not chunk:
                break
            buf += chunk
        if len(buf) < expected:
            _fail(path, f"truncated body at byte {offset + len(buf)} (decompressed): the header says shape "
                        f"{shape} of {dtype.name} = {expected} bytes, but the data ends after {len(buf)}")
        # Reading one more byte reaches the end of the gzip member, which also checks its CRC.
        extra = stream.read(1)
        if extra:
            _fail(path, f"trailing bytes at byte {offset + expected} (decompressed): the header says shape "
                        f"{shape} of {dtype.name} = {expected} bytes of data, but more data follows")
    return _to_array(path, buf, dtype, shape)


def load_idx(path):
    """Read an IDX file, gzipped (``.gz`` or gzip content) or raw.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip is recognized by the ``.gz`` suffix or by the gzip magic bytes.

    Returns
    -------
    numpy.ndarray
        Array of the file's shape ``(d0, d1, ...)`` and type (uint8, int8, int16,
        int32, float32 or float64) in native byte order, writable.

    Raises
    ------
    ValueError
        For any malformed file: empty, bad magic, unknown type code, truncated
        header or body, trailing bytes, corrupt gzip, dimensions too large for the file.
    FileNotFoundError
        If the file does not exist.
    """
    path = check_path(path, "load_idx")
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if not _is_gzip(path, head):
            return _read_raw(path, f)
        try:
            return _read_gzip(path, f)
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            _fail(path, f"expected a complete, intact gzip stream; got corrupt or truncated gzip data "
                        f"({type(exc).__name__}: {exc}); delete the file and fetch it again")


def _check_savable(array):
    array = np.asarray(array)
    if array.dtype.name not in _CODE_OF:
        names = ", ".join(_CODE_OF)
        raise TypeError(f"save_idx expects an array of dtype {names}; got {array.dtype}. "
                        f"Cast it first, e.g. array.astype(np.int32) or array.astype(np.float32).")
    if array.ndim > 255:
        raise ValueError(f"save_idx expects at most 255 dimensions; got {array.ndim}.")
    if any(d >= 2 ** 32 for d in array.shape):
        raise ValueError(f"save_idx expects every dimension below 2**32; got shape {array.shape}.")
    return array, _CODE_OF[array.dtype.name]


def save_idx(path, array, compress=None):
    """Write an array as an IDX file, atomically (a temporary file renamed into place).

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Gzipped when it ends in ``.gz`` (unless ``compress`` says otherwise).
    array : array_like
        uint8, int8, int16, int32, float32 or float64 data of any rank (0 to 255).
    compress : bool, optional
        Force gzip on (True) or off (False); default: by the ``.gz`` suffix.

    Raises
    ------
    TypeError
        If the dtype has no IDX type code (e.g. int64, float16, bool).
    """
    array, code = _check_savable(array)
    path = check_path(path, "save_idx")
    if compress is None:
        compress = str(path).endswith(".gz")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=TYPE_CODES[code]).tobytes()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".idx-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            if compress:
                # mtime=0 keeps the output byte-identical from run to run
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
                    out.write(header)
                    out.write(body)
            else:
                raw.write(header)
                raw.write(body)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
