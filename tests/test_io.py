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
    assert meta["format"] == "fastnn.mlp" and meta["format_version"] == "1"
    assert json.loads(meta["architecture"])["n_inputs"] == 64


def test_torch_reads_the_weights(trained):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    model, path, _ = trained
    t = load_file(str(path))
    assert torch.equal(t["2.W"], torch.from_numpy(model.get_weights()["2.W"]))


BAD = {
    "truncated": dict(truncate=500),
    "tiny": dict(truncate=5),
    "flipped data byte": dict(mutate_data=lambda h, d: d.__setitem__(10, d[10] ^ 0xFF)),
    "newer version": dict(mutate_header=lambda h: h["__metadata__"].update(format_version="99")),
    "foreign format": dict(mutate_header=lambda h: h["__metadata__"].update(format="other")),
    "no metadata": dict(mutate_header=lambda h: h.pop("__metadata__")),
    "int dtype": dict(mutate_header=lambda h: h["0.W"].update(dtype="I32")),
    "bad shape": dict(mutate_header=lambda h: h["0.W"].update(shape=[64, 17])),
    "broken architecture": dict(mutate_header=lambda h: h["__metadata__"].update(
        architecture='{"n_inputs": 64, "layers": [{"units": "x"}]}')),
    "architecture not json": dict(mutate_header=lambda h: h["__metadata__"].update(
        architecture="{")),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_raise_format_error(trained, name):
    _, path, _ = trained
    rewrite(path, **BAD[name])
    with pytest.raises(fn.FormatError):
        fn.load(path)


def test_nan_weights_refused(tmp_path):
    from safetensors.numpy import save_file
    model = fn.MLP(3, [fn.Dense(2, "softmax")])
    path = tmp_path / "m.safetensors"
    model.save(path)
    w = model.get_weights()
    w["0.W"][0, 0] = np.nan
    # a correctly checksummed file with a NaN inside: write it through fastnn's own writer
    from fastnn.io import _atomic_write, _model_metadata, _serialize
    meta = _model_metadata(model, "fastnn.mlp")
    meta["training"] = "null"
    _atomic_write(path, _serialize(w, meta))
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
