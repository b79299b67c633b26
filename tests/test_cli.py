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
