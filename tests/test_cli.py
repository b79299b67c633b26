"""The fastnn command, run as a user would (a subprocess), and its error handling."""
import json
import os
import re
import signal
import subprocess
import sys
import time

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
    printed = float(res.stderr.split("accuracy")[1].split()[0])  # the score goes to stderr
    model = fn.load(tmp_path / "b.safetensors")
    assert printed == pytest.approx(np.mean(model.predict(X) == y), abs=1e-4)
    assert printed > 0.7  # overlapping blobs; chance is 1/3
    # The predictions go to stdout, one per row, as the labels were written: 2, not 2.0.
    assert res.stdout.split() == [str(v) for v in model.predict(X)]
    assert set(res.stdout.split()) <= {"0", "1", "2"}
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


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """A folder of files that are not what the commands expect."""
    d = tmp_path_factory.mktemp("bad")
    (d / "adir").mkdir()
    (d / "notes.txt").write_text("hi\n")
    (d / "empty.csv").write_text("")
    (d / "words.csv").write_text("a,b,c\n1,2,x\n")
    (d / "garbage.npy").write_bytes(b"\x93NUMPYgarbage")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04garbage")
    (d / "bad.safetensors").write_bytes(b"\x00" * 64)
    np.save(d / "one_d.npy", np.arange(10.0))
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(d / "nokeys.npz", A=np.zeros((3, 3)))
    np.savez(d / "nan.npz", X=np.full((20, 2), np.nan), y=np.arange(20) % 2)
    np.savez(d / "oneclass.npz", X=np.ones((30, 3)), y=np.zeros(30, int))
    np.save(d / "x3.npy", np.ones((5, 3)))
    X, y = fn.datasets.blobs(n=60, n_features=4, seed=0)  # 4 features: moons has 2
    model = fn.MLP(4, [fn.Dense(3, "softmax")])
    fn.Trainer(model).fit(X, y, epochs=1, progress=False)
    model.save(d / "good.safetensors")
    return d


BAD_INVOCATIONS = [
    # no or unknown command, unknown or malformed options
    [], ["nope"], ["train", "--bogus"], ["predict"], ["train", "--epochs", "x"],
    ["train", "--layers", "abc"], ["train", "--layers", "0"], ["train", "--layers", "99999999999"],
    ["train", "--lr", "fast"], ["train", "--activation", "swish"], ["train", "--dtype", "int8"],
    # files that are missing, directories or not data
    ["predict", "missing.safetensors", "digits"], ["predict", "adir", "digits"],
    ["predict", "digits", "digits"], ["predict", "notes.txt", "digits"],
    ["predict", "bad.safetensors", "digits"], ["predict", "good.safetensors", "missing.csv"],
    ["predict", "good.safetensors", "adir"], ["predict", "good.safetensors", "x3.npy"],
    ["predict", "good.safetensors", "garbage.npy"], ["predict", "good.safetensors", "objects.npy"],
    ["predict", "good.safetensors", "empty.csv"], ["predict", "good.safetensors", "moons"],
    ["train", "--data", "nope.csv"], ["train", "--data", "adir"], ["train", "--data", "notes.txt"],
    ["train", "--data", "empty.csv"], ["train", "--data", "words.csv"],
    ["train", "--data", "one_d.npy"], ["train", "--data", "objects.npy"],
    ["train", "--data", "garbage.npy"], ["train", "--data", "garbage.npz"],
    ["train", "--data", "nokeys.npz"], ["train", "--data", "nan.npz"],
    ["train", "--data", "oneclass.npz"],
    # outputs that cannot be written (checked before training)
    ["train", "--output", "adir"], ["train", "--output", ""], ["train", "--output", "  "],
    ["train", "--output", "no/such/folder/m.safetensors"],
    ["train", "--output", "notes.txt/m.safetensors"], ["train", "--plot", "adir"],
    ["train", "--plot", "no/such/folder/curves.png"],
    ["predict", "good.safetensors", "moons", "--output", "adir"],
    ["predict", "good.safetensors", "moons", "--output", "no/such/p.csv"],
    # values out of range
    ["train", "--lr", "1e300", "--epochs", "1"], ["train", "--l2", "1e300", "--epochs", "1"],
    ["train", "--lr", "nan"], ["train", "--lr", "-1"], ["train", "--lr", "inf"],
    ["train", "--decay", "-1"], ["train", "--decay", "nan"], ["train", "--decay", "inf"],
    ["train", "--seed", "-1"], ["train", "--seed", str(2 ** 64)],
    ["train", "--seed", "99999999999999999999999"], ["train", "--epochs", "-1"],
    ["train", "--keep-prob", "0"], ["train", "--keep-prob", "2"], ["train", "--batch-size", "0"],
    ["train", "--dev-size", "2"], ["train", "--test-size", "-0.5"], ["train", "--patience", "-1"],
    ["train", "--threads", "0"], ["train", "--threads", "99999999999999999999"],
    ["train", "--beta", "1.5"], ["train", "--l2", "-1"],
    ["train", "--layers", "2000000000,2000000000", "--epochs", "1"],
    ["train", "--layers", "1000000000,1000000000", "--epochs", "1"],
    ["gradcheck", "--rows", "0"], ["gradcheck", "--rows", "-1"], ["gradcheck", "--seed", "-1"],
    ["gradcheck", "--seed", str(2 ** 64)], ["gradcheck", "--l2", "nan"],
    ["gradcheck", "--layers", "99999999999"], ["gradcheck", "--keep-prob", "0"],
    ["search", "--trials", "0"], ["search", "--rounds", "0"], ["search", "--top-k", "0"],
    ["search", "--jobs", "0"], ["search", "--dev-size", "2"], ["search", "--seed", "-1"],
    ["search", "--seed", str(2 ** 64)], ["search", "--epochs", "0"], ["search", "--epochs", "-1"],
    ["search", "--data", "adir"], ["search", "--data", "missing.npz"],
    ["search", "--data", "garbage.npz"], ["search", "--data", "words.csv"],
    ["search", "--data", "empty.csv"], ["search", "--data", "nan.npz"],
    ["search", "--journal", "adir"], ["search", "--plot", "no/such/folder/p.png"],
    ["bench", "--repeat", "0"], ["bench", "--cases", "nope"], ["bench", "--threads", "0"],
    # thread counts far beyond the cores, trial counts beyond any search
    ["train", "--threads", "5000"], ["search", "--threads", "5000"],
    ["search", "--trials", "1e20"], ["search", "--trials", str(10 ** 20)],
    # search spaces and fixed values that cannot work: refused before the first trial
    ["search", "--space", "nope.txt"], ["search", "--space", "notes.txt"],
    ["search", "--space", "{not json"], ["search", "--space", "missing.json"],
    ["search", "--space", '{"lr": {"type": "log_uniform", "low": 0, "high": 1}}'],
    ["search", "--space", '{"lr": {"type": "gaussian"}}'],
    ["search", "--lr", "nan"], ["search", "--keep-prob", "2"], ["search", "--dev-size", "0"],
    # starting points that are not there, or not what they should be
    ["train", "--resume", "adir"], ["train", "--resume", "missing.ckpt"],
    ["train", "--resume", "bad.safetensors"], ["train", "--finetune", "missing.safetensors"],
    ["train", "--resume", "a", "--finetune", "b"], ["train", "--base-error", "2"],
    ["train", "--base-error", "-0.1"], ["train", "--verbose", "3"],
    ["train", "--data", "moons", "--finetune", "good.safetensors"],
]


def run_main(argv, capsys):
    """``fastnn argv`` in this process: (exit status, stderr lines but the progress bar)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # the parser exits
        code = exc.code
    finally:
        fn.set_num_threads(None)
    err = capsys.readouterr().err
    lines = [l for l in re.split(r"[\r\n]+", err) if l.strip() and not re.match(r"epoch \d+:", l)]
    return code, lines, err


@pytest.mark.parametrize("argv", BAD_INVOCATIONS, ids=" ".join)
def test_bad_invocations_are_one_line_and_status_2(argv, bad_files, capsys, monkeypatch):
    """Any bad invocation: one line on stderr, naming the command, exit status 2, and no
    traceback (an exception escaping main fails this test)."""
    monkeypatch.chdir(bad_files)
    code, lines, err = run_main(argv, capsys)
    assert code == 2, err
    assert len(lines) == 1, err
    assert re.match(r"fastnn( \w+)?: ", lines[0]) and "Traceback" not in err


@pytest.mark.parametrize("argv,words", [
    (["train", "--decay", "-1"], ["--decay", "-1"]),
    (["train", "--output", ""], ["--output", "''"]),
    (["train", "--seed", str(2 ** 64)], ["--seed", str(2 ** 64)]),
    (["train", "--data", "adir"], ["adir", "directory"]),
    (["predict", "missing.safetensors", "digits"], ["model", "missing.safetensors"]),
    (["train", "--lr", "1e300", "--epochs", "1"], ["diverged", "learning rate"]),
    (["train", "--layers", "1000000000,1000000000", "--epochs", "1"], ["memory"]),
    (["search", "--data", "garbage.npz"], ["garbage.npz"]),
])
def test_error_lines_name_what_is_wrong(argv, words, bad_files, capsys, monkeypatch):
    monkeypatch.chdir(bad_files)
    code, lines, err = run_main(argv, capsys)
    assert code == 2 and len(lines) == 1
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("argv", [["predict", "missing.safetensors", "digits"],
                                  ["train", "--output", "adir"], ["train", "--seed", "-1"]])
def test_bad_invocations_as_a_user_runs_them(argv, bad_files):
    res = run(*argv, cwd=bad_files)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


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

    asan = "libasan" in os.environ.get("LD_PRELOAD", "")

    def limit():  # AddressSanitizer reserves terabytes of address space: it caps RSS instead
        if not asan:
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    root = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if asan:
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":hard_rss_limit_mb=4096"
    res = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True,
                         text=True, timeout=120, preexec_fn=limit, env=env, cwd=HERE)
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


def test_ctrl_c_during_train_saves_the_last_finished_epoch(tmp_path):
    """Ctrl-C in `fastnn train` keeps the work done: the model of the last finished epoch is
    saved where --output says, one line on stderr says so, and the exit status is 130."""
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        child = subprocess.Popen([sys.executable, "-m", "fastnn", "train", "--epochs", "100000",
                                  "--output", "m.safetensors"], cwd=tmp_path, stdout=out,
                                 stderr=err)
    try:
        deadline = time.monotonic() + 120
        while "epoch   2 " not in out_path.read_text() and time.monotonic() < deadline \
                and child.poll() is None:
            time.sleep(0.05)
        assert "epoch   2 " in out_path.read_text(), out_path.read_text() + err_path.read_text()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    err = err_path.read_text()
    assert child.returncode == 130, err
    # stderr also holds the progress bar (redrawn with carriage returns)
    lines = [l for l in re.split(r"[\r\n]+", err) if l.strip() and not re.match(r"epoch \d+:", l)]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "m.safetensors" in lines[0] and "saved" in lines[0]
    last = int(lines[0].split("model of epoch ")[1].split()[0])
    assert last >= 2 and f"epoch {last:3d} " in out_path.read_text()
    model = fn.load(tmp_path / "m.safetensors")
    X, y = fn.datasets.digits()
    assert (model.predict(X) == y).mean() > 0.9  # trained, standardizer and classes included


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


# ---- train: resume, fine-tune, verbosity, base error, early stopping, --plot ------------------

def _weights_equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_resume_continues_a_checkpoint_exactly(tmp_path):
    """Two epochs, then --resume for two more: the same model as four epochs in one run."""
    common = ("train", "--data", "moons", "--layers", "6", "--verbose", "0")
    res = run(*common, "--epochs", "4", "-o", "four.safetensors", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = run(*common, "--epochs", "2", "-o", "two.safetensors", "--checkpoint", "c.ckpt",
              cwd=tmp_path)
    assert res.returncode == 0 and "continue with --resume" in res.stdout, res.stderr
    res = run("train", "--data", "moons", "--epochs", "2", "--resume", "c.ckpt", "--verbose", "0",
              "-o", "resumed.safetensors", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "resuming c.ckpt after epoch 1" in res.stdout
    four, two = fn.load(tmp_path / "four.safetensors"), fn.load(tmp_path / "two.safetensors")
    resumed = fn.load(tmp_path / "resumed.safetensors")
    assert _weights_equal(resumed, four) and not _weights_equal(two, four)


def test_finetune_starts_from_the_saved_model(tmp_path):
    X, y = fn.datasets.blobs(n=120, n_features=3, seed=5)
    labels = np.array(["ant", "bee", "cat"])[y]
    with open(tmp_path / "d.csv", "w") as f:  # text labels, one of them quoted
        f.write("a,b,c,label\n")
        for row, label in zip(X, labels):
            f.write(",".join(map(repr, row.tolist())) + f',"{label}"\n')
    res = run("train", "--data", "d.csv", "--layers", "5", "--epochs", "3", "--verbose", "0",
              "-o", "base.safetensors", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    base = fn.load(tmp_path / "base.safetensors")
    assert base.classes_.tolist() == ["ant", "bee", "cat"]
    res = run("train", "--data", "d.csv", "--finetune", "base.safetensors", "--epochs", "2",
              "--lr", "0.01", "--verbose", "0", "-o", "tuned.safetensors", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "fine-tuning base.safetensors" in res.stdout
    # The oracle: the same two epochs through the API, from the saved model, on the training
    # split of the same seed.
    Xtr, _, _, ytr, _, _ = fn.data.train_dev_test_split(X, labels, 0.15, 0.15, seed=0,
                                                        stratify=True)
    expected = fn.load(tmp_path / "base.safetensors")
    fn.Trainer(expected, optimizer=fn.optim.Adam(lr=0.01), batch_size=32, seed=0).fit(
        Xtr, ytr, epochs=2, progress=False)
    tuned = fn.load(tmp_path / "tuned.safetensors")
    assert _weights_equal(tuned, expected) and not _weights_equal(tuned, base)
    res = run("predict", "tuned.safetensors", "d.csv", "--has-target", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == tuned.predict(X).tolist()
    assert f"accuracy {np.mean(tuned.predict(X) == labels):.4f}" in res.stderr
    # Data the saved model cannot take.
    res = run("train", "--data", "moons", "--finetune", "base.safetensors", cwd=tmp_path)
    assert res.returncode == 2 and "takes 3 features" in res.stderr


def test_verbosity_levels_and_no_progress_bar_residue_off_a_terminal(tmp_path):
    args = ("train", "--data", "moons", "--layers", "4", "--epochs", "3", "-o", "m.safetensors")
    default = run(*args, cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stderr == ""  # stderr is a pipe: no progress bar, no carriage returns
    assert len(re.findall(r"^epoch +\d+ ", default.stdout, re.M)) == 3
    two = run(*args, "--verbose", "2", cwd=tmp_path)
    assert two.stderr == "" and len(re.findall(r"^epoch +\d+ ", two.stdout, re.M)) == 3
    zero = run(*args, "--verbose", "0", cwd=tmp_path)
    assert zero.returncode == 0 and zero.stderr == ""
    assert not re.findall(r"^epoch", zero.stdout, re.M) and "model saved" in zero.stdout


def test_base_error_enters_the_diagnosis(tmp_path):
    res = run("train", "--data", "moons", "--layers", "4", "--epochs", "2", "--verbose", "0",
              "--base-error", "0.1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    train_err = float(res.stdout.split("train error")[1].split()[0])
    bias = float(res.stdout.split("avoidable bias")[1].split("%")[0]) / 100
    assert bias == pytest.approx(train_err - 0.1, abs=1e-4)


def test_early_stopping_says_when_it_fired(tmp_path):
    res = run("train", "--data", "moons", "--layers", "16", "--epochs", "300", "--lr", "0.05",
              "--patience", "2", "--verbose", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = [l for l in res.stdout.splitlines() if l.startswith("early stopping")][0]
    last = int(line.split("after epoch ")[1].split(":")[0])
    best = int(line.split("weights of epoch ")[1].split()[0])
    assert last < 299 and best == last - 3
    epochs = re.findall(r"^epoch +(\d+) .*val_loss ([\d.]+)", res.stdout, re.M)
    assert int(epochs[-1][0]) == last
    losses = [float(v) for _, v in epochs]
    assert losses[best] == min(losses)
    res = run("train", "--data", "moons", "--layers", "4", "--epochs", "2", "--patience", "50",
              "--verbose", "0", cwd=tmp_path)
    assert "early stopping did not fire in 2 epoch(s)" in res.stdout


def _without_matplotlib(tmp_path):
    hide = tmp_path / "hide"
    (hide / "matplotlib").mkdir(parents=True)
    (hide / "matplotlib" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'matplotlib'\")\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(hide), os.path.dirname(os.path.dirname(fn.__file__))]))


@pytest.mark.parametrize("command", ["train", "search"])
def test_plot_without_matplotlib_fails_before_any_work(tmp_path, command):
    env = _without_matplotlib(tmp_path)
    res = subprocess.run([sys.executable, "-m", "fastnn", command, "--data", "moons",
                          "--epochs", "2", "--plot", "p.png", "-o", "m.safetensors"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip() == (f"fastnn {command}: error: --plot needs matplotlib: pip "
                                  f"install 'fastnn[plot]'")
    assert "epoch" not in res.stdout and "trial" not in res.stdout
    assert not (tmp_path / "m.safetensors").exists()


# ---- predict: every kind of model, labels as written ----------------------------------------

def test_predict_regression_and_binary_models(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -1.0, 0.5])
    reg = fn.MLP(3, [fn.Dense(4, "tanh"), fn.Dense(1, "linear")])
    fn.Trainer(reg).fit(X, y, epochs=2, progress=False)
    reg.save(tmp_path / "reg.safetensors")
    np.save(tmp_path / "r.npy", np.column_stack([X, y]))
    res = run("predict", "reg.safetensors", "r.npy", "--has-target", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(np.array(res.stdout.split(), dtype=np.float32),
                                  reg.predict(X))
    mse = float(res.stderr.split("mean squared error")[1].split()[0])
    assert mse == pytest.approx(np.mean((reg.predict(X) - y) ** 2), rel=1e-4)

    binary = fn.MLP(3, [fn.Dense(4, "tanh"), fn.Dense(1, "sigmoid")])
    target = (y > 0).astype(int)
    fn.Trainer(binary).fit(X, target, epochs=2, progress=False)
    binary.classes_ = np.array([-1.0, 1.0])  # classes kept as floats: printed as -1 and 1
    binary.save(tmp_path / "bin.safetensors")
    np.savetxt(tmp_path / "b.csv", np.column_stack([X, 2 * target - 1]), delimiter=",")
    res = run("predict", "bin.safetensors", "b.csv", "--has-target", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    expected = [str(int(v)) for v in binary.predict(X)]
    assert res.stdout.split() == expected and set(expected) <= {"-1", "1"}
    assert f"accuracy {np.mean(binary.predict(X) == 2 * target - 1):.4f}" in res.stderr
    res = run("predict", "bin.safetensors", "b.csv", "--has-target", "-o", "p.csv",
              cwd=tmp_path)
    assert res.returncode == 0 and (tmp_path / "p.csv").read_text().split() == expected


# ---- search from the command line ------------------------------------------------------------

def test_search_command_with_a_space_file_fixed_options_and_refit(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.toml").write_text(
        'lr = {type = "log_uniform", low = 1e-3, high = 1e-1}\n'
        'batch_size = {type = "choice", options = [16, 32]}\n')
    pytest.importorskip("tomllib")  # Python 3.11+ (older ones need tomli)
    argv = ["search", "--data", "moons", "--space", "space.toml", "--trials", "2", "--rounds",
            "1", "--jobs", "1", "--epochs", "2", "--layers", "5", "--refit", "train+dev",
            "--journal", "j.jsonl", "-o", "best.safetensors"]
    code, _, _ = run_main(argv, capsys)
    assert code == 0
    records = [json.loads(l) for l in (tmp_path / "j.jsonl").read_text().splitlines()[1:]]
    assert len(records) == 2
    for rec in records:
        assert set(rec["config"]) == {"lr", "batch_size", "epochs", "hidden"}
        assert rec["config"]["hidden"] == [5] and rec["config"]["epochs"] == 2
        assert 1e-3 <= rec["config"]["lr"] <= 1e-1 and rec["config"]["batch_size"] in (16, 32)
    model = fn.load(tmp_path / "best.safetensors")
    assert [l.units for l in model.layers] == [5, 2] and model.standardizer is not None
    # Same command, other data: refused, not answered with the earlier results.
    code, lines, _ = run_main([*argv[:2], "circles", *argv[3:]], capsys)
    assert code == 2 and "other data" in lines[0]
    code, _, _ = run_main([*argv[:2], "circles", *argv[3:], "--fresh"], capsys)
    assert code == 0
