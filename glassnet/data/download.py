"""Verified, atomic downloads from a list of mirrors.

A file is streamed into a temporary file next to its destination while its
SHA-256 is computed; only a complete file with the expected checksum is
renamed into place (``os.replace`` is atomic on one file system). A dropped
connection, a short body, a wrong checksum or an HTTP error leave nothing
behind, and the next mirror is tried.
"""
import hashlib
import os
import tempfile


class DownloadError(RuntimeError):
    """Every mirror failed for a file; the message lists each URL and why."""


def sha256_file(path, chunk_size=1 << 20):
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _url(mirror, filename):
    return mirror if mirror.endswith(filename) else mirror.rstrip("/") + "/" + filename


def _fetch_once(url, filename, tmp_file, sha256, timeout, chunk_size):
    """Stream ``url`` into the open ``tmp_file``; raise OSError/ValueError on any problem."""
    import urllib.request  # lazily: importing glassnet.datasets should not load the HTTP stack

    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        for chunk in iter(lambda: response.read(chunk_size), b""):
            digest.update(chunk)
            tmp_file.write(chunk)
            received += len(chunk)
    # http.client returns a short body without an error when the server closes
    # early, so the length is checked here (the checksum would catch it too).
    if length is not None and received != int(length):
        raise OSError(f"connection dropped: received {received} of {int(length)} bytes")
    actual = digest.hexdigest()
    if sha256 is not None and actual != sha256.lower():
        raise ValueError(f"checksum mismatch for {filename}: expected sha256 {sha256}, got {actual}")


def download(filename, mirrors, directory, sha256=None, timeout=30.0, chunk_size=1 << 16):
    """Download ``filename`` into ``directory``, trying each mirror in turn.

    Parameters
    ----------
    filename : str
        Name of the file on the mirrors and in ``directory``.
    mirrors : sequence of str
        Base URLs (``https://host/path/``; the file name is appended) or full
        URLs ending in ``filename``. Tried in order until one succeeds.
    directory : str or os.PathLike
        Destination folder, created if needed.
    sha256 : str, optional
        Expected hex SHA-256 of the file. Strongly recommended; without it
        only the Content-Length is checked.
    timeout : float
        Seconds to wait for each connection or read.
    chunk_size : int
        Bytes per read.

    Returns
    -------
    str
        Path of the verified file.

    Raises
    ------
    DownloadError
        If no mirror delivered a complete file with the right checksum; nothing
        is left in ``directory`` in that case.
    """
    from http.client import HTTPException  # lazily, like urllib

    if isinstance(mirrors, str):
        mirrors = [mirrors]
    if not mirrors:
        raise ValueError(f"download expects at least one mirror URL for {filename}; got none.")
    os.makedirs(directory, exist_ok=True)
    destination = os.path.join(directory, filename)
    failures = []
    for mirror in mirrors:
        url = _url(mirror, filename)
        fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as tmp_file:
                _fetch_once(url, filename, tmp_file, sha256, timeout, chunk_size)
                tmp_file.flush()
                os.fsync(tmp_file.fileno())
            os.replace(tmp, destination)
            return destination
        except (OSError, ValueError, HTTPException) as exc:  # URLError, HTTPError, timeouts are OSErrors
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DownloadError(f"could not download {filename}; every mirror failed:\n  " + "\n  ".join(failures))


def fetch(filenames, mirrors, directory, checksums=None, timeout=30.0):
    """Make sure every file of ``filenames`` is in ``directory``, downloading the missing ones.

    Parameters
    ----------
    filenames : sequence of str
    mirrors : sequence of str
        Base URLs, tried in order for each file.
    directory : str or os.PathLike
    checksums : dict, optional
        ``{filename: sha256}``.
    timeout : float

    Returns
    -------
    list of str
        Paths, in the order of ``filenames``.
    """
    checksums = checksums or {}
    paths = []
    for name in filenames:
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            path = download(name, mirrors, directory, sha256=checksums.get(name), timeout=timeout)
        paths.append(path)
    return paths
