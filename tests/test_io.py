"""Model files: safetensors round trip, atomic writes, and refusal of bad files."""
import json
import os
import struct

import numpy as np
import pytest

import fastnn as fn

from safetensors_edit import rewrite


@pytest.fixture
def trained(tmp_path):
    X, y = fn.datasets.digits()
    X, y = X[:300], y[:300]
    model = fn.MLP(64, [fn.Dense(16, "relu", keep_prob=0.9), fn.Dense(8, "tanh", batch_norm=True),
                        fn.Dense(10, "softmax")], seed=2)
    model.standardizer = fn.data.Standardizer().fit(X)
    model.classes_ = np.array(list("abcdefghij"))
    fn.Trainer(model, batch_size=32).fit(X, model.classes_[y], epochs=2, progress=False)
    path = tmp_path / "m.safetensors"
    model.save(path)
    return model, path, X


def test_roundtrip_identical_predictions(trained):
    model, path, X = trained
    loaded = fn.load(path)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[key], value)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X[:3]).dtype.kind == "U"
    assert repr(loaded) == repr(model)


def test_file_opens_in_plain_safetensors(trained):
    from safetensors.numpy import load_file
    model, path, _ = trained
    arrays = load_file(str(path))
    np.testing.assert_array_equal(arrays["0.W"], model.get_weights()["0.W"])
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["__metadata__"]
    assert meta["format"] == "fastnn.mlp" and meta["format_version"] == "2"
    assert json.loads(meta["architecture"])["n_inputs"] == 64


def test_checksum_is_of_the_whole_file(trained):
    """SHA-256 of every byte of the file, the checksum's own 64 digits read as zeros."""
    import hashlib
    _, path, _ = trained
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    digest = json.loads(blob[8:8 + n])["__metadata__"]["checksum"]
    assert blob.count(digest.encode()) == 1
    assert hashlib.sha256(blob.replace(digest.encode(), b"0" * 64)).hexdigest() == digest


def test_version_1_files_still_load(trained):
    """Files of format version 1 (checksum over the data section only) load, fully checked."""
    model, path, X = trained
    rewrite(path, mutate_header=lambda h: h["__metadata__"].update(format_version="1"),
            fix_checksum=True)
    np.testing.assert_array_equal(fn.load(path).predict(X), model.predict(X))
    rewrite(path, mutate_header=_edit_json("classes", lambda c: c[::-1]), fix_checksum=True)
    with pytest.raises(fn.FormatError, match="classes"):
        fn.load(path)


def test_torch_reads_the_weights(trained):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    model, path, _ = trained
    t = load_file(str(path))
    assert torch.equal(t["2.W"], torch.from_numpy(model.get_weights()["2.W"]))


def _meta(**fields):
    return lambda h: h["__metadata__"].update(fields)


# (how the file is spoiled, what the error names); header edits get a correct checksum so that
# the check they aim at is the one that objects
BAD = {
    "truncated": (dict(truncate=500), "header size|truncated"),
    "tiny": (dict(truncate=5), "truncated"),
    "flipped data byte": (dict(mutate_data=lambda h, d: d.__setitem__(10, d[10] ^ 0xFF)),
                          "checksum"),
    "flipped header field": (dict(mutate_header=_meta(dtype="float64")), "checksum"),
    "newer version": (dict(mutate_header=_meta(format_version="99"), fix_checksum=True),
                      "newer"),
    "bad version": (dict(mutate_header=_meta(format_version="0"), fix_checksum=True),
                    "format_version"),
    "foreign format": (dict(mutate_header=_meta(format="other"), fix_checksum=True), "format"),
    "no metadata": (dict(mutate_header=lambda h: h.pop("__metadata__")), "metadata"),
    "int dtype": (dict(mutate_header=lambda h: h["0.W"].update(dtype="I32"), fix_checksum=True),
                  "dtype"),
    "bad shape": (dict(mutate_header=lambda h: h["0.W"].update(shape=[64, 17]),
                       fix_checksum=True), "0.W"),
    "broken architecture": (dict(mutate_header=_meta(
        architecture='{"n_inputs": 64, "layers": [{"units": "x"}]}'), fix_checksum=True),
        "architecture"),
    "architecture not json": (dict(mutate_header=_meta(architecture="{"), fix_checksum=True),
                              "architecture"),
    "dtype not the architecture's": (dict(mutate_header=_meta(dtype="float64"),
                                          fix_checksum=True), "dtype"),
    "checksum not a digest": (dict(mutate_header=_meta(checksum="abc")), "checksum"),
    "trailing bytes": (dict(mutate_data=lambda h, d: d.extend(b"\0" * 8), fix_checksum=True),
                       "extended"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_raise_format_error(trained, name):
    _, path, _ = trained
    edits, match = BAD[name]
    rewrite(path, **edits)
    with pytest.raises(fn.FormatError, match=match):
        fn.load(path)


def test_duplicate_keys_are_refused(trained):
    """Readers disagree on which of two equal keys counts: such a header is refused."""
    _, path, _ = trained
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    text = json.dumps(json.loads(blob[8:8 + n]))
    doubled = text.replace('"classes": ', '"classes": "null", "classes": ', 1).encode()
    path.write_bytes(struct.pack("<Q", len(doubled)) + doubled + blob[8 + n:])
    with pytest.raises(fn.FormatError, match="duplicate key 'classes'"):
        fn.load(path)


def test_nan_weights_refused(tmp_path):
    from safetensors.numpy import save_file
    model = fn.MLP(3, [fn.Dense(2, "softmax")])
    path = tmp_path / "m.safetensors"
    model.save(path)
    w = model.get_weights()
    w["0.W"][0, 0] = np.nan
    # a correctly checksummed file with a NaN inside: write it through fastnn's own writer
    from fastnn._files import atomic_write
    from fastnn.io import _model_metadata, _serialize
    meta = _model_metadata(model, "fastnn.mlp")
    meta["training"] = "null"
    atomic_write(path, _serialize(w, meta))
    with pytest.raises(fn.FormatError, match="NaN"):
        fn.load(path)
    save_file({"x": np.zeros(3, np.float32)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(fn.FormatError, match="metadata"):
        fn.load(tmp_path / "foreign.safetensors")


def test_garbage_and_pickle_files_refused(tmp_path):
    import pickle
    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(fn.FormatError):
        fn.load(p)
    p.write_bytes(os.urandom(4096))
    with pytest.raises(fn.FormatError):
        fn.load(p)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    model = fn.MLP(3, [fn.Dense(2, "softmax")])
    path = tmp_path / "m.safetensors"
    model.save(path)
    before = path.read_bytes()

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    model.set_weights({k: v + 1 for k, v in model.get_weights().items()})
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_saved_file_has_ordinary_permissions(tmp_path):
    model = fn.MLP(3, [fn.Dense(2, "softmax")])
    path = tmp_path / "m.safetensors"
    model.save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_save_leaves_the_umask_alone(tmp_path, monkeypatch):
    """Saving must not set the process umask even for an instant (threads creating files
    meanwhile would get world-writable files): where /proc reports it, it is only read."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux /proc")
    old = os.umask(0o027)
    try:
        def forbidden(mask):
            raise AssertionError(f"os.umask({mask:o}) called while saving")
        monkeypatch.setattr(os, "umask", forbidden)
        path = tmp_path / "m.safetensors"
        fn.MLP(3, [fn.Dense(2, "softmax")]).save(path)
        monkeypatch.undo()
        assert (path.stat().st_mode & 0o777) == 0o640
    finally:
        os.umask(old)


# ---- untrusted files: nothing read or allocated beyond what the file holds --------------------

POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="FIFOs, /dev/zero, SIGKILL")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))


def _small_model_file(tmp_path, name="m.safetensors"):
    path = tmp_path / name
    fn.MLP(3, [fn.Dense(4, "relu"), fn.Dense(2, "softmax")]).save(path)
    return path


def _python(code, *args, timeout=120, address_space=None):
    """Run ``code`` in a fresh interpreter (optionally with its address space capped)."""
    import resource
    import subprocess
    import sys

    asan = "libasan" in os.environ.get("LD_PRELOAD", "")

    def limit():  # AddressSanitizer reserves terabytes of address space: it caps RSS instead
        if address_space is not None and not asan:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if asan and address_space is not None:
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "")
                               + f":hard_rss_limit_mb={max(512, address_space >> 20)}")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, env=env,
                          cwd=os.path.dirname(__file__))  # not a source tree: its fastnn


def _call_with_timeout(call, unblock, timeout=10):
    """``call()`` in a thread: its exception (None if it returned) and whether it was stuck;
    a stuck call is released with ``unblock()``."""
    import threading
    out = {}

    def target():
        try:
            call()
            out["exc"] = None
        except BaseException as exc:  # handed to the test
            out["exc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    stuck = thread.is_alive()
    if stuck:
        unblock()
        thread.join(timeout)
    return out.get("exc"), stuck


def _release_fifo(path):
    def unblock():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    return unblock


def test_claimed_sizes_are_checked_before_allocating(tmp_path):
    """A small file whose metadata claims a 30-million-unit layer: refused without allocating
    the layer (the tensor table says otherwise)."""
    import tracemalloc
    path = _small_model_file(tmp_path)

    def huge(h):
        arch = json.loads(h["__metadata__"]["architecture"])
        arch["layers"][0]["units"] = 30_000_000
        h["__metadata__"]["architecture"] = json.dumps(arch)

    rewrite(path, mutate_header=huge, fix_checksum=True)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(fn.FormatError, match="0.W"):
            fn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * size + 1_000_000


@POSIX_ONLY
@pytest.mark.parametrize("load", [fn.load, fn.Trainer.load_checkpoint])
def test_fifo_is_refused_without_blocking(tmp_path, load):
    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    exc, stuck = _call_with_timeout(lambda: load(fifo), _release_fifo(fifo))
    assert not stuck, "loading a FIFO blocked"
    assert isinstance(exc, fn.FormatError) and "regular file" in str(exc)


def test_directory_is_refused(tmp_path):
    with pytest.raises(fn.FormatError, match="regular file"):
        fn.load(tmp_path)


@POSIX_ONLY
def test_symlink_to_a_device_is_refused_unread(tmp_path):
    """A symlink to /dev/zero: refused, not read (in a child capped at 4 GB of address space,
    since an unbounded read would take all the memory)."""
    link = tmp_path / "zero.safetensors"
    os.symlink("/dev/zero", link)
    code = ("import sys, fastnn as fn\n"
            "try:\n"
            "    fn.load(sys.argv[1])\n"
            "except fn.FormatError as exc:\n"
            "    print('FormatError', exc)\n")
    res = _python(code, link, address_space=4 << 30)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "FormatError" in res.stdout and "regular file" in res.stdout


def test_symlink_to_a_model_file_loads(trained, tmp_path):
    model, path, X = trained
    link = tmp_path / "link.safetensors"
    os.symlink(path, link)
    np.testing.assert_array_equal(fn.load(link).predict(X), model.predict(X))


@pytest.mark.parametrize("where", ["header", "metadata"])
def test_deeply_nested_json_is_refused(tmp_path, where):
    path = tmp_path / "deep.safetensors"
    if where == "header":
        body = b"[" * 100_000
        path.write_bytes(struct.pack("<Q", len(body)) + body)
    else:
        path = _small_model_file(tmp_path)
        rewrite(path, mutate_header=lambda h: h["__metadata__"].update(
            architecture="[" * 100_000 + "]" * 100_000), fix_checksum=True)
    with pytest.raises(fn.FormatError, match="nest"):
        fn.load(path)


@pytest.mark.parametrize("load", [fn.load, fn.Trainer.load_checkpoint])
def test_non_path_arguments_are_refused(tmp_path, load):
    """An int is not a path: it must not be taken as a file descriptor to read and close."""
    path = _small_model_file(tmp_path)
    with open(path, "rb") as f:
        with pytest.raises(TypeError, match="path"):
            load(f.fileno())
        assert f.tell() == 0 and os.fstat(f.fileno())  # neither read nor closed
        with pytest.raises(TypeError, match="path"):
            load(f)
    for bad in (None, 2.5, ["m.safetensors"]):
        with pytest.raises(TypeError, match="path"):
            load(bad)


# ---- files that lie: the checksum covers the whole file, every field is cross-checked ---------

def test_every_sampled_single_bit_flip_is_refused(trained):
    _, path, _ = trained
    blob = path.read_bytes()
    rng = np.random.default_rng(0)
    silent = []
    for bit in rng.choice(len(blob) * 8, size=300, replace=False):
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(flipped))
        try:
            fn.load(path)
            silent.append(int(bit))
        except fn.FormatError:
            pass
    assert silent == [], f"{len(silent)} of 300 single-bit flips loaded (bits {silent[:10]})"


def _edit_json(field, edit):
    """A header mutation replacing the JSON metadata ``field`` by ``edit(value)``."""
    def mutate(h):
        h["__metadata__"][field] = json.dumps(edit(json.loads(h["__metadata__"][field])))
    return mutate


def _set(d, **kw):
    out = dict(d)
    out.update(kw)
    return out


def _scale(value):
    return _edit_json("standardizer", lambda s: _set(s, scale=[value] + s["scale"][1:]))


LIES = {
    "classes reversed": (_edit_json("classes", lambda c: c[::-1]), "classes"),
    "classes one short": (_edit_json("classes", lambda c: c[:-1]), "classes"),
    "classes duplicated": (_edit_json("classes", lambda c: [c[0]] + c[:-1]), "classes"),
    "classes of mixed types": (_edit_json("classes", lambda c: [0] + c[1:]), "classes"),
    "classes not a list": (_edit_json("classes", lambda c: "abcdefghij"), "classes"),
    "standardizer of 3 features": (_edit_json("standardizer", lambda s: _set(
        s, mean=s["mean"][:3], scale=s["scale"][:3])), "standardizer"),
    "standardizer scale 1e-300": (_scale(1e-300), "standardizer"),
    "standardizer scale 0": (_scale(0.0), "standardizer"),
    "standardizer scale negative": (_scale(-1.0), "standardizer"),
    "standardizer scale infinite": (_scale(float("inf")), "standardizer"),
    "standardizer not fitted": (_edit_json("standardizer", lambda s: {"name": "Standardizer"}),
                                "standardizer"),
    "overlapping tensors": (lambda h: h["1.beta"].update(
        data_offsets=list(h["1.gamma"]["data_offsets"])), "overlap|offsets"),
    "unknown architecture key": (_edit_json("architecture", lambda a: _set(a, extra=1)),
                                 "architecture"),
    "unknown metadata field": (lambda h: h["__metadata__"].update(note="hello"), "note"),
    "training config of another kind": (_edit_json("training", lambda t: [1, 2]), "training"),
}


@pytest.mark.parametrize("name", sorted(LIES))
def test_files_that_lie_are_refused(trained, name):
    """Correctly checksummed files whose fields contradict each other or the tensors."""
    _, path, _ = trained
    mutate, match = LIES[name]
    rewrite(path, mutate_header=mutate, fix_checksum=True)
    with pytest.raises(fn.FormatError, match=match):
        fn.load(path)


@pytest.fixture
def checkpoint(tmp_path):
    X, y = fn.datasets.spiral(n=90, seed=1)
    model = fn.MLP(2, [fn.Dense(6, "relu"), fn.Dense(5, "tanh", batch_norm=True),
                       fn.Dense(3, "softmax")], seed=3)
    trainer = fn.Trainer(model, optimizer=fn.optim.Adam(0.01), batch_size=32, seed=1)
    trainer.fit(X, y, epochs=2, validation_data=(X, y), progress=False)
    path = tmp_path / "c.safetensors"
    trainer.save_checkpoint(path)
    return trainer, path


def _state(**changes):
    return _edit_json("state", lambda s: _set(s, **changes))


def _history(edit):
    return _edit_json("state", lambda s: _set(s, history=edit(dict(s["history"]))))


def _first_value(name, value):
    def mutate(header, data):
        start = header[name]["data_offsets"][0]
        dtype = np.float32 if header[name]["dtype"] == "F32" else np.float64
        data[start:start + dtype().itemsize] = np.array(value, dtype).tobytes()
    return mutate


CHECKPOINT_LIES = {
    "negative step": (dict(mutate_header=_state(step=-1)), "step"),
    "negative optimizer step": (dict(mutate_header=_state(optimizer_step=-5)), "optimizer_step"),
    "negative epoch": (dict(mutate_header=_state(epoch=-1)), "epoch"),
    "fractional step": (dict(mutate_header=_state(step=2.5)), "step"),
    "boolean epoch": (dict(mutate_header=_state(epoch=True)), "epoch"),
    "history shorter than the epochs": (dict(mutate_header=_history(
        lambda h: {k: v[:1] for k, v in h.items()})), "history"),
    "history with an unknown key": (dict(mutate_header=_history(
        lambda h: _set(h, accuracy=[1, 2]))), "history"),
    "history value not a number": (dict(mutate_header=_history(
        lambda h: _set(h, loss=["x", "y"]))), "history"),
    "negative exp_avg_sq": (dict(mutate_data=_first_value("optim.exp_avg_sq.0.W", -1.0)),
                            "exp_avg_sq"),
    "exp_avg_sq transposed": (dict(mutate_header=lambda h: h["optim.exp_avg_sq.0.W"].update(
        shape=h["optim.exp_avg_sq.0.W"]["shape"][::-1])), "exp_avg_sq"),
    "training config with an unknown key": (dict(mutate_header=_edit_json(
        "training", lambda t: _set(t, momentum=0.9))), "training"),
    "negative running variance": (dict(mutate_data=_first_value("1.running_var", -1.0)),
                                  "running_var"),
}


@pytest.mark.parametrize("name", sorted(CHECKPOINT_LIES))
def test_checkpoints_that_lie_are_refused(checkpoint, name):
    _, path = checkpoint
    fn.Trainer.load_checkpoint(path)  # intact: loads
    edits, match = CHECKPOINT_LIES[name]
    rewrite(path, fix_checksum=True, **edits)
    with pytest.raises(fn.FormatError, match=match):
        fn.Trainer.load_checkpoint(path)


def test_checkpoint_of_an_untrained_trainer_round_trips(tmp_path):
    """Before the first step the optimizer holds no moments; the checkpoint must still load."""
    trainer = fn.Trainer(fn.MLP(3, [fn.Dense(2, "softmax")]), optimizer=fn.optim.Adam(0.01))
    path = tmp_path / "c.safetensors"
    trainer.save_checkpoint(path)
    resumed = fn.Trainer.load_checkpoint(path)
    assert resumed.step == 0 and resumed.optimizer.state["step"] == 0
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    a = trainer.fit(X, y, epochs=2, progress=False)["loss"]
    b = resumed.fit(X, y, epochs=2, progress=False)["loss"]
    assert a == b


# ---- temporaries of interrupted saves do not accumulate ---------------------------------------

def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".fastnn-") and n.endswith(".tmp"))


_STALLED_SAVE = """
import os, sys, time
import fastnn as fn
model = fn.MLP(64, [fn.Dense(512), fn.Dense(10, "softmax")])
os.fsync = lambda fd: time.sleep(600)   # stall inside the save, after writing the temporary
model.save(sys.argv[1])
"""


def _stalled_writer(path, folder, already):
    """A child process stuck inside ``save(path)``, once its temporary file exists."""
    import subprocess
    import sys
    import time
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.Popen([sys.executable, "-c", _STALLED_SAVE, str(path)], env=env,
                            cwd=os.path.dirname(__file__))
    deadline = time.monotonic() + 60
    while len(_temporaries(folder)) <= len(already):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("the child did not reach the middle of its save")
        time.sleep(0.05)
    return proc, [t for t in _temporaries(folder) if t not in already]


@POSIX_ONLY
def test_temporaries_of_killed_saves_are_cleaned_up(tmp_path):
    """kill -9 during a save leaves its temporary; the next save of the same file removes it,
    but not the temporary of a writer that is still running."""
    import signal
    path = tmp_path / "m.safetensors"
    killed, killed_tmp = _stalled_writer(path, tmp_path, [])
    alive, alive_tmp = _stalled_writer(path, tmp_path, killed_tmp)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert killed_tmp[0] in _temporaries(tmp_path)   # what kill -9 leaves behind
        fn.MLP(3, [fn.Dense(2, "softmax")]).save(path)
        assert _temporaries(tmp_path) == alive_tmp       # the live writer's file is kept
    finally:
        alive.kill()
        alive.wait(timeout=30)
    fn.MLP(3, [fn.Dense(2, "softmax")]).save(path)
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_save_refuses_what_load_would_refuse(tmp_path):
    """A model whose fields contradict each other is not written (no file, no temporary)."""
    model = fn.MLP(3, [fn.Dense(3, "softmax")])
    path = tmp_path / "m.safetensors"
    cases = [("classes_", np.array(["c", "b", "a"]), "sorted"),
             ("classes_", np.array(["a", "b"]), "3 labels"),
             ("standardizer", fn.data.Standardizer(), "not fitted"),
             ("standardizer", fn.data.Standardizer().fit(np.ones((4, 2))), "2 features"),
             ("training_config_", {"lr": 1}, "training config")]
    for attr, value, match in cases:
        clean = fn.MLP(3, [fn.Dense(3, "softmax")])
        setattr(clean, attr, value)
        with pytest.raises(ValueError, match=match):
            clean.save(path)
        assert os.listdir(tmp_path) == []
    model.save(path)


def test_training_config_travels_with_the_model(tmp_path):
    model = fn.MLP(3, [fn.Dense(2, "softmax")])
    trainer = fn.Trainer(model, optimizer=fn.optim.Momentum(0.1),
                         schedule=fn.schedules.StepDecay(3))
    model.training_config_ = trainer.get_config()
    model.save(tmp_path / "m.safetensors")
    assert fn.load(tmp_path / "m.safetensors").training_config_ == trainer.get_config()
