"""The fastnn command, run as a user would (a subprocess), and its error handling."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn.cli import main


HERE = os.path.dirname(os.path.abspath(__file__))


def run(*args, cwd=HERE):
    """The command as a user runs it: outside the source tree, so the installed fastnn runs."""
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_train_default_digits(tmp_path):
    """`fastnn train` with no arguments: digits, >= 96 % test accuracy, diagnosis, saved model."""
    res = run("train", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = [l for l in res.stdout.splitlines() if "test accuracy" in l][0]
    accuracy = float(line.split("test accuracy")[1])
    assert accuracy >= 0.96
    assert any(kind in res.stdout for kind in ("high bias", "high variance", "good fit"))
    assert "epoch  29" in res.stdout
    model = fn.load(tmp_path / "fastnn-model.safetensors")
    X, y = fn.datasets.digits()
    assert (model.predict(X) == y).mean() > 0.96  # standardizer and classes travel in the file


def test_train_csv_and_predict(tmp_path):
    X, y = fn.datasets.blobs(n=200, seed=3)
    table = np.column_stack([X, y])
    np.savetxt(tmp_path / "d.csv", table, delimiter=",", header="a,b,label", comments="")
    res = run("train", "--data", "d.csv", "--layers", "8", "--epochs", "20", "--no-progress",
              "--output", "b.safetensors", "--plot", "curves.png", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "curves.png").stat().st_size > 1000
    res = run("predict", "b.safetensors", "d.csv", "--has-target", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    printed = float(res.stdout.split("accuracy")[1].split()[0])
    model = fn.load(tmp_path / "b.safetensors")
    assert printed == pytest.approx(np.mean(model.predict(X) == y), abs=1e-4)
    assert printed > 0.7  # overlapping blobs; chance is 1/3
    np.save(tmp_path / "x.npy", X[:5])
    res = run("predict", "b.safetensors", "x.npy", cwd=tmp_path)
    assert res.returncode == 0 and len(res.stdout.split()) == 5


def test_train_regression_npz(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    np.savez(tmp_path / "r.npz", X=X, y=y)
    res = run("train", "--data", "r.npz", "--task", "regression", "--epochs", "40",
              "--no-progress", "--lr", "0.01", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    mse = float(res.stdout.split("test MSE")[1].split()[0])
    assert mse < 0.05 * y.var()


def test_gradcheck_command():
    res = run("gradcheck", "--keep-prob", "0.8")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "passed" in res.stdout


@pytest.mark.parametrize("argv,msg", [
    (["train", "--data", "nope.csv"], "data must be"),
    (["train", "--keep-prob", "0", "--epochs", "1"], "keep_prob"),
    (["train", "--batch-size", "0", "--epochs", "1"], "batch_size"),
    (["predict", "missing.safetensors", "digits"], ""),
])
def test_errors_are_messages_not_tracebacks(tmp_path, capsys, monkeypatch, argv, msg):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except OSError:  # a missing model file is an OSError, as for open()
        code = 2
    err = capsys.readouterr().err
    assert code == 2
    assert msg in err
    assert "Traceback" not in err


def test_corrupt_model_file(tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    code = main(["predict", str(tmp_path / "bad.safetensors"), "digits"])
    assert code == 2 and "header" in capsys.readouterr().err


# ---- data files: regular files only, nothing allocated beyond what the file holds -------------

from fastnn import search  # noqa: E402

POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/zero")
LOADERS = {"train": lambda p: fn.cli.load_data(str(p)), "search": search.load_data}


def _fifo_unblocker(path):
    def unblock():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    return unblock


@POSIX_ONLY
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_data_fifo_is_refused_without_blocking(tmp_path, loader):
    import threading
    fifo = tmp_path / "d.csv"
    os.mkfifo(fifo)
    out = {}

    def target():
        try:
            LOADERS[loader](fifo)
        except BaseException as exc:  # handed to the test
            out["exc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    stuck = thread.is_alive()
    if stuck:
        _fifo_unblocker(fifo)()
        thread.join(10)
    assert not stuck, "reading a FIFO data file blocked"
    assert isinstance(out.get("exc"), fn.FormatError) and "regular file" in str(out["exc"])


@POSIX_ONLY
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_data_symlink_to_a_device_is_refused_unread(tmp_path, loader):
    """A .csv symlinked to /dev/zero: refused, not read (in a child capped at 4 GB of address
    space, since an unbounded read would take all the memory)."""
    import resource
    link = tmp_path / "d.csv"
    os.symlink("/dev/zero", link)
    call = {"train": "fastnn.cli.load_data(sys.argv[1])",
            "search": "fastnn.search.load_data(sys.argv[1])"}[loader]
    code = ("import sys, fastnn, fastnn.cli\n"
            "try:\n"
            f"    {call}\n"
            "except fastnn.FormatError as exc:\n"
            "    print('FormatError', exc)\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    root = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True,
                         text=True, timeout=120, preexec_fn=limit, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "FormatError" in res.stdout and "regular file" in res.stdout


def _npy_claiming(n_values):
    """The bytes of an .npy file whose header claims n_values float64 values; holds 100."""
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (n_values, 2)})
    return buf.getvalue() + bytes(1600)


def _peak_of(call):
    """(what call() returned or raised, peak bytes allocated meanwhile)."""
    import tracemalloc
    tracemalloc.start()
    try:
        try:
            out = call()
        except Exception as exc:  # handed to the test
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("case", ["train npy", "train npz", "search npz", "predict npy"])
def test_data_file_claiming_more_than_it_holds(tmp_path, case, capsys):
    """An .npy header (alone or inside an .npz) claiming 10**9 rows in a 2 kB file: refused
    before anything is allocated for the claim."""
    import zipfile
    blob = _npy_claiming(10**9)
    if case.endswith("npy"):
        path = tmp_path / "d.npy"
        path.write_bytes(blob)
    else:
        path = tmp_path / "d.npz"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("X.npy", blob)
            z.writestr("y.npy", blob)
    if case == "predict npy":
        model = tmp_path / "m.safetensors"
        fn.MLP(2, [fn.Dense(2, "softmax")]).save(model)
        code, peak = _peak_of(lambda: main(["predict", str(model), str(path)]))
        message = capsys.readouterr().err
        assert code == 2
    else:
        exc, peak = _peak_of(lambda: LOADERS[case.split()[0]](path))
        assert isinstance(exc, fn.FormatError)
        message = str(exc)
    assert peak < 10 * path.stat().st_size + 1_000_000
    assert "claims" in message


def test_data_files_through_symlinks_still_load(tmp_path):
    X, y = fn.datasets.blobs(n=30, seed=1)
    np.savez(tmp_path / "r.npz", X=X, y=y)
    np.save(tmp_path / "t.npy", np.column_stack([X, y]))
    os.symlink(tmp_path / "r.npz", tmp_path / "link.npz")
    os.symlink(tmp_path / "t.npy", tmp_path / "link.npy")
    for loaded in (fn.cli.load_data(str(tmp_path / "link.npz")),
                   search.load_data(tmp_path / "link.npz"),
                   fn.cli.load_data(str(tmp_path / "link.npy"))):
        np.testing.assert_array_equal(loaded[0], X)
        np.testing.assert_array_equal(loaded[1], y)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_data_csv_that_is_not_numeric_is_a_format_error(tmp_path, loader):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,0\n3,x,1\n")
    with pytest.raises(fn.FormatError, match="numeric CSV"):
        LOADERS[loader](path)


def test_version_and_build_info():
    res = run("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"fastnn {fn.__version__}"
    res = run("--version", "--verbose")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"fastnn {fn.__version__}"
    info = fn._core.build_info()
    assert [l.split(":")[0].strip() for l in lines[1:]] == list(info)
    assert f"openmp_runtime: {info['openmp_runtime']}" in res.stdout
