"""Thread control: one place decides, threadpoolctl and the environment are obeyed."""
import json
import os
import subprocess
import sys

import pytest

import fastnn as fn

# Subprocesses run outside the source tree, so they import the installed fastnn.
HERE = os.path.dirname(os.path.abspath(__file__))


def test_set_num_threads_and_reset():
    default = fn.get_num_threads()
    fn.set_num_threads(1)
    try:
        assert fn.get_num_threads() == 1
    finally:
        fn.set_num_threads(None)
    assert fn.get_num_threads() == default
    with pytest.raises(ValueError, match="n"):
        fn.set_num_threads(0)


def test_default_is_usable_cores():
    if not fn._core.has_openmp():
        assert fn.get_num_threads() == 1
        return
    assert fn.get_num_threads() == min(len(os.sched_getaffinity(0)), fn._core.omp_max_threads())


def test_threadpoolctl_sees_and_limits_fastnn():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fn._core.has_openmp():
        pytest.skip("built without OpenMP")
    apis = {info["user_api"] for info in threadpoolctl.threadpool_info()}
    assert "openmp" in apis
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fn.get_num_threads() == 1


@pytest.mark.parametrize("value,ok", [("1", True), ("2", True), ("0", False), ("x", False)])
def test_environment_variable(value, ok):
    env = dict(os.environ, FASTNN_NUM_THREADS=value)
    res = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_num_threads())"],
                         env=env, cwd=HERE, capture_output=True, text=True)
    if ok:
        expected = value if fn._core.has_openmp() else "1"
        assert res.stdout.strip() == expected
    else:
        assert res.returncode != 0 and "FASTNN_NUM_THREADS" in res.stderr


_OVERSUB_CHILD = r"""
import json, sys, threading, time
import numpy as np
import fastnn as fn
from fastnn.bench import _ThreadSampler

X, y = fn.datasets.synthetic_mnist(4096, seed=0)
def fit():
    model = fn.MLP(784, [fn.Dense(256), fn.Dense(10, "softmax")], seed=0)
    fn.Trainer(model, fn.optim.Adam(1e-3), batch_size=128, seed=0).fit(
        X, y, epochs=int(sys.argv[1]), progress=False)

fit()                                   # warm-up: the OpenMP team exists
np.dot(X[:512].T, X[:512])              # and the BLAS pool has run, as in a user's script
time.sleep(0.3)
with _ThreadSampler() as alone:
    fit()
# Control: two fits at once from two Python threads, each with its own 2-thread team,
# really are oversubscribed; the sampler must see it (teams kept whole whatever the load).
fn._threads._ADAPT_TO_LOAD = False
pair = [threading.Thread(target=fit) for _ in range(2)]
with _ThreadSampler() as both:
    for t in pair: t.start()
    for t in pair: t.join()
print(json.dumps({"alone": alone.summary(), "both": both.summary()}))
"""


def test_fit_never_runs_more_threads_than_given():
    """No oversubscription, measured by the OS: during a fit with 2 fastnn threads at most 2 of
    the process's threads (any pool: fastnn's OpenMP team, numpy's OpenBLAS) are runnable, while
    two concurrent fits, the control, show more."""
    if not (os.path.isdir("/proc/self/task") and fn._core.has_openmp()):
        pytest.skip("needs Linux /proc and an OpenMP build")
    env = dict(os.environ, FASTNN_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _OVERSUB_CHILD, "6"], env=env, cwd=HERE,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    alone, both = out["alone"], out["both"]
    assert alone["n_samples"] >= 50
    assert 1 <= alone["max_runnable"] <= 2, alone
    assert both["max_runnable"] >= 3, both       # the instrument does see oversubscription


def test_openmp_spin_setting_stays_out_of_the_environment():
    """fastnn loads its OpenMP runtime with a short spin (spinning threads steal the cores of a
    busy machine), but leaves no variable behind for other libraries or child processes, and a
    policy the user chose stands."""
    code = ("import os, fastnn; print(os.environ.get('GOMP_SPINCOUNT'), "
            "os.environ.get('KMP_BLOCKTIME'), os.environ.get('OMP_WAIT_POLICY'))")
    pythonpath = os.path.dirname(os.path.dirname(fn.__file__))
    base = {k: v for k, v in os.environ.items()
            if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_WAIT_POLICY")}
    base["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=base, timeout=60, cwd=HERE)
    assert out.stdout.split() == ["None", "None", "None"], out.stderr
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(base, OMP_WAIT_POLICY="passive"), timeout=60, cwd=HERE)
    assert out.stdout.split() == ["None", "None", "passive"], out.stderr


def test_team_size_leaves_the_cores_other_processes_use(monkeypatch):
    """A team sized for the moment: threads asked for, less the cores other runnable tasks hold
    (a thread waiting at every barrier for a descheduled sibling is worse than no thread)."""
    from fastnn import _threads
    monkeypatch.setattr(_threads, "_usable_cores", lambda: 4)
    for elsewhere, asked, want in ((0, 4, 4), (1, 4, 3), (3, 4, 1), (9, 4, 1), (0, 2, 2),
                                   (None, 4, 4), (2, 1, 1)):
        monkeypatch.setattr(_threads, "_runnable_elsewhere", lambda e=elsewhere: e)
        assert _threads.team_size(asked) == want, (elsewhere, asked)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_team_size_sees_a_busy_process():
    from fastnn import _threads
    cores = _threads._usable_cores()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)
        assert _threads._runnable_elsewhere() >= 1
        assert _threads.team_size(cores) <= max(1, cores - 1)
    finally:
        hog.kill()
        hog.wait()


_FORK_SPIN_CHILD = r"""
import ctypes, os, fastnn
lib = ctypes.CDLL(fastnn._core.build_info()["openmp_runtime"] or None)
blocktime = getattr(lib, "kmp_get_blocktime", None)      # LLVM's libomp (and Intel's)
def state():
    return "%s,%s" % (os.environ.get("KMP_BLOCKTIME"), blocktime() if blocktime else "-")
print("parent", state(), flush=True)
pid = os.fork()
if pid == 0:
    print("child", state(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("after", state(), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_short_spin_holds_in_a_forked_child_and_leaves_no_variable():
    """LLVM's libomp (the runtime of the Linux wheels) reads KMP_BLOCKTIME at its first call and
    again inside fork(), in the child: both times it must read fastnn's 1 ms, and the variable
    must be gone from the parent's and the child's environment afterwards."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(fn.__file__))
    out = subprocess.run([sys.executable, "-c", _FORK_SPIN_CHILD], capture_output=True,
                         text=True, env=env, timeout=60, cwd=HERE)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split() for line in out.stdout.splitlines())
    assert set(lines) == {"parent", "child", "after"}, out.stdout
    for who, state in lines.items():
        variable, blocktime = state.split(",")
        assert variable == "None", (who, out.stdout)
        assert blocktime in ("1", "-"), (who, out.stdout)


def test_concurrent_inference_calls_share_the_threads():
    """Each of k inference calls running at once gets n // k threads (at least 1): Python
    threads predicting on one model do not each start a full team."""
    from fastnn import _threads
    teams = [_threads.enter_call(4, False) for _ in range(5)]
    try:
        assert teams == [4, 2, 1, 1, 1]
    finally:
        for _ in teams:
            _threads.leave_call()
    assert _threads.enter_call(4, False) == 4
    _threads.leave_call()
    assert _threads._calls_running == 0
