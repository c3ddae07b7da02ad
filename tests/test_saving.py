"""model.save / gn.load_model: one pickle-free .npz, atomic writes, exact resume, damaged files refused,
and training killed with SIGKILL at random moments resumes to the same weights (issue 3 item 6, issue 8 item 3)."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import glassnet as gn
from glassnet import callbacks, layers, optimizers
from glassnet.saving import FORMAT_VERSION, load_model, read_config, save_model


def images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)), rng.integers(0, 3, n)


def net(optimizer=None, dtype="float64", seed=0):
    model = gn.Sequential([
        layers.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1), dtype=dtype),
        layers.BatchNormalization(dtype=dtype), layers.MaxPooling2D(2, dtype=dtype),
        layers.Flatten(dtype=dtype), layers.Dropout(0.3, dtype=dtype),
        layers.Dense(3, activation="softmax", dtype=dtype, name="out")], seed=seed)
    if optimizer is not None:
        model.compile(optimizer, "sparse_categorical_crossentropy", ["accuracy"])
    return model


def weights_equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(wa, wb))


X, Y = images()


# -- round trip ----------------------------------------------------------------------------------
def test_round_trip_restores_config_weights_optimizer_and_training_state(tmp_path):
    model = net(optimizers.SGD(0.05, momentum=0.9, nesterov=True, decay=1e-3))
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0, seed=4)
    model.metadata = {"dataset": "toy", "class_names": ["a", "b", "c"]}
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert loaded.get_config() == model.get_config()
    assert weights_equal(loaded, model)
    assert loaded.completed_epochs == 2 and loaded.fit_seed == 4 and loaded.metadata == model.metadata
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert all(np.array_equal(a, b) for a, b in zip(loaded.optimizer.get_state(), model.optimizer.get_state()))
    assert loaded.metrics_names == ["loss", "accuracy"] and loaded.loss.name == model.loss.name
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert [l.rng.bit_generator.state for l in loaded.layers] == [l.rng.bit_generator.state for l in model.layers]


def test_uncompiled_and_compile_false(tmp_path):
    model = net()
    model.save(tmp_path / "plain.npz")
    loaded = load_model(tmp_path / "plain.npz")
    assert not loaded.compiled and weights_equal(loaded, model)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.train_on_batch(X, Y)
    model.save(tmp_path / "adam.npz")
    assert not load_model(tmp_path / "adam.npz", compile=False).compiled
    assert load_model(tmp_path / "adam.npz").optimizer.iterations == 1


def test_the_file_is_plain_numeric_npz_with_a_versioned_json_config(tmp_path):
    path = tmp_path / "m.npz"
    net(optimizers.Adam()).save(path)
    with np.load(path, allow_pickle=False) as data:            # no pickle needed for any member
        arrays = {k: data[k] for k in data.files}
    assert all(a.dtype.kind in "biuf" for a in arrays.values())
    config = json.loads(arrays["config"].tobytes())
    assert config["format"] == "glassnet.model" and config["format_version"] == FORMAT_VERSION
    assert [w["name"] for w in config["weights"]][:6] == ["kernel", "bias", "gamma", "beta", "moving_mean",
                                                          "moving_variance"]
    assert read_config(path)["compile"]["loss"]["name"] == "sparse_categorical_crossentropy"


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "m.npz"
    model = net(optimizers.Adam())
    model.save(path)
    first = path.read_bytes()
    model.train_on_batch(X, Y)
    model.save(path)
    assert path.read_bytes() != first and os.listdir(path.parent) == ["m.npz"]
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)      # not the temp file's private mode


FILE_SIZE_LIMITED_SAVE = """
import errno, json, os, resource, sys
import glassnet as gn
from glassnet import layers
path = sys.argv[1]
small = gn.Sequential([layers.Dense(2, input_shape=(3,))], seed=0)
small.save(path)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 4096,) * 2)   # ulimit -f
large = gn.Sequential([layers.Dense(300, input_shape=(300,))], seed=0)           # ~360 KB
try:
    large.save(path)
except OSError as error:
    print(json.dumps({"type": type(error).__name__, "errno": error.errno, "text": str(error),
                      "cause": type(error.__cause__).__name__}))
"""


def test_a_file_size_limit_during_save_keeps_the_old_file_and_names_the_path(tmp_path):
    path = tmp_path / "m.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMITED_SAVE, str(path)], env=env, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["errno"] == errno.EFBIG and report["cause"] == "OSError"
    assert str(path) in report["text"] and "ulimit -f" in report["text"] and "unchanged" in report["text"]
    assert os.listdir(tmp_path) == ["m.npz"]                        # no temporary file left
    assert gn.load_model(path).get_layer(0).units == 2               # the old file, intact


@pytest.mark.parametrize("code, subclass, fix", [(errno.ENOSPC, OSError, "Free space"),
                                                 (errno.EACCES, PermissionError, "may write")])
def test_a_failed_write_is_reraised_with_the_path_and_the_fix(tmp_path, monkeypatch, code, subclass, fix):
    path = tmp_path / "m.npz"
    net().save(path)
    old = path.read_bytes()

    def failing_savez(handle, **arrays):
        handle.write(b"partial")
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(subclass, match=fix) as raised:
        net().save(path)
    assert raised.value.errno == code and str(path) in str(raised.value)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["m.npz"]


def test_weights_only_files(tmp_path):
    model = net()
    model.save_weights(tmp_path / "w.npz")
    other = net(seed=9)
    other.load_weights(tmp_path / "w.npz")
    assert weights_equal(other, model)
    small = gn.Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="weights for a model"):
        small.load_weights(tmp_path / "w.npz")


# -- exact resume ----------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", [
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, decay=1e-3),
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.RMSprop(0.01)])
@pytest.mark.parametrize("reseed", [False, True])
def test_resuming_from_a_checkpoint_is_bit_identical(tmp_path, optimizer, reseed):
    uninterrupted = net(optimizer())
    uninterrupted.fit(X, Y, epochs=5, batch_size=8, verbose=0, seed=11, validation_split=0.2)
    first = net(optimizer())
    first.fit(X, Y, epochs=2, batch_size=8, verbose=0, seed=11, validation_split=0.2,
              callbacks=[callbacks.ModelCheckpoint(tmp_path / "ckpt.npz")])
    resumed = load_model(tmp_path / "ckpt.npz")
    resumed.fit(X, Y, epochs=5, batch_size=8, verbose=0, initial_epoch=resumed.completed_epochs,
                seed=11 if reseed else None, validation_split=0.2)
    assert weights_equal(resumed, uninterrupted)
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations


# -- damaged and hostile files ------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "m.npz"
    model = net(optimizers.Adam())
    model.train_on_batch(X, Y)
    model.save(path)
    return path, model


def load_or_error(path):
    try:
        return load_model(path)
    except ValueError as error:
        assert "load_model expects" in str(error)
        return error


def test_every_truncation_is_a_clear_value_error(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    cuts = sorted(set(np.linspace(0, len(data) - 1, 60).astype(int)) | {1, 4, 30, len(data) - 22, len(data) - 1})
    for cut in cuts:
        broken = tmp_path / f"cut{cut}.npz"
        broken.write_bytes(data[:cut])
        assert isinstance(load_or_error(broken), ValueError), cut


def test_flipped_bytes_are_refused_or_harmless(saved, tmp_path):
    path, model = saved
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    refused = 0
    for i, position in enumerate(rng.integers(0, len(data), 150)):
        mutated = bytearray(data)
        mutated[position] ^= 1 << int(rng.integers(8))
        target = tmp_path / f"flip{i}.npz"
        target.write_bytes(bytes(mutated))
        result = load_or_error(target)
        if isinstance(result, ValueError):
            refused += 1
        else:                      # e.g. a zip timestamp: the model must then be exactly the saved one
            assert weights_equal(result, model) and result.get_config() == model.get_config()
    assert refused > 100


def test_pickles_object_arrays_and_other_files_are_refused(saved, tmp_path):
    import pickle
    pickled = tmp_path / "evil.npz"
    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ValueError, match="pickle"):
        load_model(pickled)
    path, _ = saved
    with np.load(path) as data:
        members = {k: data[k] for k in data.files}
    members["weight_0000"] = np.array([{"__reduce__": "os.system"}], dtype=object)
    objects = tmp_path / "objects.npz"
    np.savez(objects, **members)
    with pytest.raises(ValueError, match="pickled Python objects"):
        load_model(objects)
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy"):
        load_model(npy)
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_model(tmp_path / "empty.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.npz")


def rewrite(path, target, edit_config=None, edit_arrays=None):
    with np.load(path, allow_pickle=False) as data:
        members = {k: data[k] for k in data.files}
    config = json.loads(members["config"].tobytes())
    if edit_config:
        edit_config(config)
    members["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    if edit_arrays:
        edit_arrays(members)
    np.savez(target, **members)
    return target


@pytest.mark.parametrize("edit_config, edit_arrays, text", [
    (lambda c: c.update(format_version=FORMAT_VERSION + 1), None, "newer glassnet"),
    (lambda c: c.update(format="something.else"), None, "format"),
    (lambda c: c["weights"][0].update(layer="renamed"), None, "renamed"),
    (lambda c: c["model"]["layers"][-1]["config"].update(name="other"), None, "expected other/kernel"),
    (lambda c: c["model"]["layers"][-1]["config"].update(units=4), None, "shape"),
    (lambda c: c["model"]["layers"][0].update(class_name="Evil"), None, "configuration is invalid"),
    (lambda c: c["model"]["layers"][0]["config"].update(filters=-3), None, "configuration is invalid"),
    (lambda c: c["model"]["layers"][0]["config"].update(surprise=1), None, "configuration is invalid"),
    (lambda c: c["compile"]["loss"].update(class_name="os.system"), None, "compile configuration"),
    (lambda c: c["compile"]["optimizer"].update(learning_rate="fast"), None, "compile configuration"),
    (lambda c: c["training"].update(completed_epochs=-1), None, "completed_epochs"),
    (lambda c: c["training"]["rng"][0].update(bit_generator="Generator"), None, "random state"),
    (lambda c: c.update(metadata=[1]), None, "metadata"),
    (None, lambda m: m.update(weight_0000=m["weight_0000"][..., :1]), "shape"),
    (None, lambda m: m.update(weight_0001=np.full_like(m["weight_0001"], np.nan)), "finite"),
    (None, lambda m: m.pop("weight_0003"), "missing|the file holds"),
    (None, lambda m: m.update(extra=np.zeros(2)), "unexpected"),
    (None, lambda m: m.update(optimizer_0001=np.zeros(5)), "optimizer state"),
    (None, lambda m: m.update(config=np.frombuffer(b"{not json", dtype=np.uint8)), "JSON"),
])
def test_tampered_files_are_refused_with_the_reason(saved, tmp_path, edit_config, edit_arrays, text):
    path, _ = saved
    rewrite(path, tmp_path / "t.npz", edit_config, edit_arrays)
    with pytest.raises(ValueError, match=text):
        load_model(tmp_path / "t.npz")


def test_compressed_or_oversized_members_are_refused_before_reading(saved, tmp_path):
    path, _ = saved
    with np.load(path, allow_pickle=False) as data:
        members = {k: data[k] for k in data.files}
    np.savez_compressed(tmp_path / "c.npz", **members)
    with pytest.raises(ValueError, match="compressed"):
        load_model(tmp_path / "c.npz")
    # a header that claims a huge array: refused from the sizes, nothing allocated
    header = np.lib.format.header_data_from_array_1_0(np.zeros(3))
    header["shape"] = (10 ** 12,)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        with archive.open("weight_0000.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(np.zeros(3).tobytes())
    with pytest.raises(ValueError, match="declares shape"):
        load_model(tmp_path / "huge.npz")


# -- SIGKILL at random moments -----------------------------------------------------------------
WORKER = r'''
import os, sys, time
import numpy as np
import glassnet as gn
from glassnet import callbacks, layers, optimizers

EPOCHS = 120

def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 6, 6, 1)), rng.integers(0, 3, 32)

def fresh():
    d = "float64"
    model = gn.Sequential([
        layers.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1), dtype=d),
        layers.BatchNormalization(dtype=d), layers.MaxPooling2D(2, dtype=d), layers.Flatten(dtype=d),
        layers.Dropout(0.3, dtype=d), layers.Dense(3, activation="softmax", dtype=d)], seed=0)
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    return model

def train(path, extra_callbacks=()):
    """Start, or resume from the checkpoint at ``path`` when there is one; checkpoint after every epoch."""
    x, y = data()
    if os.path.exists(path):
        model = gn.load_model(path)
        start, seed = model.completed_epochs, None       # the seed comes from the checkpoint
    else:
        model, start, seed = fresh(), 0, 7
    model.fit(x, y, batch_size=8, epochs=EPOCHS, initial_epoch=start, seed=seed, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(path)] + list(extra_callbacks))
    return model

class Pace(callbacks.Callback):
    """Sleep after each epoch (weights untouched) so a life lasts long enough to be killed on a fast machine."""
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.02)

if __name__ == "__main__":
    train(sys.argv[1], [Pace()])
'''


def test_training_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    namespace = {}
    exec(compile(WORKER, "worker", "exec"), namespace)
    snapshots = []

    class Snapshot(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())
    reference = namespace["train"](str(tmp_path / "reference.npz"), [Snapshot()])
    assert len(snapshots) == namespace["EPOCHS"]

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    checkpoint = tmp_path / "ckpt.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    rng = np.random.default_rng(2024)
    kills, progress = 0, []
    def identity():
        try:
            stat = checkpoint.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    while kills < 6:
        before = identity()
        process = subprocess.Popen([sys.executable, str(script), str(checkpoint)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while identity() == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)                             # wait until it has written a new checkpoint
        time.sleep(float(rng.uniform(0.0, 0.25)))
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the worker ended before it was killed (raise EPOCHS?): {err.decode()[-500:]}")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        model = gn.load_model(checkpoint)             # the checkpoint is always complete and loadable
        epoch = model.completed_epochs
        assert 1 <= epoch <= namespace["EPOCHS"]
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), snapshots[epoch - 1])), epoch
        progress.append(epoch)
    assert progress == sorted(progress)
    finished = subprocess.run([sys.executable, str(script), str(checkpoint)], env=env, capture_output=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr.decode()[-800:]
    final = gn.load_model(checkpoint)
    assert final.completed_epochs == namespace["EPOCHS"]
    assert weights_equal(final, reference)
    torn = len([f for f in os.listdir(tmp_path) if f.startswith(".ckpt.npz.") and f.endswith(".tmp")])
    print(f"\nSIGKILL: survived {kills} kills at epochs {progress} ({torn} mid-write, leaving only a stray "
          "temporary file); every checkpoint loaded and resumed to bit-identical weights")
