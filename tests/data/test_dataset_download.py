"""Downloads against a real HTTP server on 127.0.0.1: checksums, dropped connections, mirror fallback,
and the whole MNIST load_data path (cache, download, offline error)."""
import hashlib
import http.server
import socket
import threading
import time

import numpy as np
import pytest

from glassnet import datasets
from glassnet.data import download as dl
from glassnet.data import mnist

PAYLOAD = np.random.default_rng(0).bytes(200_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` under /<mode>/<name>; the mode says how to misbehave."""
    files = {}
    log = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        _, mode, name = self.path.split("/", 2)
        type(self).log.append((mode, name))
        body = self.files.get(name)
        if body is None or mode == "missing":
            self.send_error(404)
            return
        if mode == "stall":
            time.sleep(1.0)
        if mode == "tampered":
            body = body[:-1] + bytes([body[-1] ^ 1])
        with_length = not mode.startswith("nolength")
        self.send_response(200)
        if with_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode.endswith("drop"):
            # send half, then close: the client sees a clean EOF before the end
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the "stall" mirror times out on purpose)


@pytest.fixture
def server():
    _Handler.files = {"data.bin": PAYLOAD}
    _Handler.log = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more: connection refused


def test_good_file_lands_verified(server, tmp_path):
    path = dl.download("data.bin", [f"{server}/ok/"], tmp_path, sha256=SHA)
    assert open(path, "rb").read() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_full_url_mirror_is_accepted(server, tmp_path):
    path = dl.download("data.bin", [f"{server}/ok/data.bin"], tmp_path, sha256=SHA)
    assert dl.sha256_file(path) == SHA


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="checksum mismatch"):
        dl.download("data.bin", [f"{server}/tampered/"], tmp_path, sha256=SHA)
    assert list(tmp_path.iterdir()) == []


def test_expected_checksum_is_checked_even_for_a_good_transfer(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="checksum mismatch"):
        dl.download("data.bin", [f"{server}/ok/"], tmp_path, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_connection_dropped_midway_leaves_nothing(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="connection dropped|IncompleteRead") as info:
        dl.download("data.bin", [f"{server}/drop/"], tmp_path, sha256=SHA)
    assert "drop/data.bin" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_dropped_connection_without_length_is_caught_by_checksum(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="checksum mismatch"):
        dl.download("data.bin", [f"{server}/nolength-drop/"], tmp_path, sha256=SHA)
    assert list(tmp_path.iterdir()) == []


def test_body_without_content_length_is_accepted_when_checksum_matches(server, tmp_path):
    path = dl.download("data.bin", [f"{server}/nolength/"], tmp_path, sha256=SHA)
    assert dl.sha256_file(path) == SHA


def test_mirror_fallback_in_order(server, tmp_path):
    mirrors = [_closed_port_url(), f"{server}/missing/", f"{server}/tampered/", f"{server}/drop/",
               f"{server}/stall/", f"{server}/ok/", f"{server}/never/"]
    path = dl.download("data.bin", mirrors, tmp_path, sha256=SHA, timeout=0.3)
    assert dl.sha256_file(path) == SHA
    assert [mode for mode, _ in _Handler.log] == ["missing", "tampered", "drop", "stall", "ok"]
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_all_mirrors_failing_lists_every_url(server, tmp_path):
    refused = _closed_port_url()
    with pytest.raises(dl.DownloadError) as info:
        dl.download("data.bin", [refused, f"{server}/missing/"], tmp_path, sha256=SHA)
    message = str(info.value)
    assert refused + "data.bin" in message and "404" in message
    assert list(tmp_path.iterdir()) == []


def test_existing_good_file_is_replaced_only_by_a_verified_one(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"old")
    with pytest.raises(dl.DownloadError):
        dl.download("data.bin", [f"{server}/drop/"], tmp_path, sha256=SHA)
    assert (tmp_path / "data.bin").read_bytes() == b"old"


def test_download_needs_a_mirror(tmp_path):
    with pytest.raises(ValueError, match="at least one mirror"):
        dl.download("x", [], tmp_path)


# ---------------------------------------------------------------- load_data through the downloader
def _tiny_mnist(tmp_path):
    """Small MNIST-shaped gz files, their bytes and checksums."""
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), rng.integers(0, 10, 30, dtype=np.uint8),
              rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), rng.integers(0, 10, 8, dtype=np.uint8)]
    files, sums = {}, {}
    src = tmp_path / "src"
    src.mkdir()
    for name, array in zip(mnist.FILENAMES, arrays):
        datasets.save_idx(src / name, array)
        files[name] = (src / name).read_bytes()
        sums[name] = hashlib.sha256(files[name]).hexdigest()
    return arrays, files, sums


def test_mnist_load_data_downloads_into_cache_then_reads_it(server, tmp_path, monkeypatch):
    arrays, files, sums = _tiny_mnist(tmp_path)
    _Handler.files = files
    monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "home"))
    (xtr, ytr), (xte, yte) = datasets.mnist.load_data(mirrors=[f"{server}/missing/", f"{server}/ok/"],
                                                      checksums=sums)
    for got, want in zip((xtr, ytr, xte, yte), arrays):
        np.testing.assert_array_equal(got, want)
    cache = tmp_path / "home" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(mnist.FILENAMES)
    # second call: served from the cache, no request at all
    _Handler.log.clear()
    (xtr2, _), _ = datasets.mnist.load_data(mirrors=[f"{server}/ok/"], checksums=sums)
    np.testing.assert_array_equal(xtr2, arrays[0])
    assert _Handler.log == []


def test_mnist_partial_failure_keeps_only_verified_files(server, tmp_path):
    arrays, files, sums = _tiny_mnist(tmp_path)
    del files["t10k-images-idx3-ubyte.gz"]  # the mirror lacks one file
    _Handler.files = files
    cache = tmp_path / "cache"
    with pytest.raises(datasets.DatasetNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        datasets.mnist.load_data(mirrors=[f"{server}/ok/"], checksums=sums, cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == ["train-images-idx3-ubyte.gz",
                                                       "train-labels-idx1-ubyte.gz"]


def test_mnist_wrong_checksums_never_reach_the_cache(server, tmp_path):
    arrays, files, sums = _tiny_mnist(tmp_path)
    _Handler.files = files
    cache = tmp_path / "cache"
    with pytest.raises(datasets.DatasetNotFoundError, match="checksum mismatch"):
        datasets.mnist.load_data(mirrors=[f"{server}/ok/"], cache_dir=cache)  # the real MNIST checksums
    assert list(cache.iterdir()) == []


def test_offline_without_files_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSNET_DATA", str(tmp_path / "home"))
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.mnist.load_data(mirrors=[_closed_port_url()])
    message = str(info.value)
    cache = str(tmp_path / "home" / "mnist")
    assert "MNIST was not found" in message and f"put the four files" in message and cache in message
    assert all(name in message for name in mnist.FILENAMES)
    assert "GLASSNET_DATA" in message and "path=" in message
    with pytest.raises(datasets.DatasetNotFoundError, match="download=False"):
        datasets.mnist.load_data(download=False)
    assert isinstance(info.value, FileNotFoundError)
