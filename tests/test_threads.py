"""Thread control: one place decides, threadpoolctl and the environment are obeyed."""
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
