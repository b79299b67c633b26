"""Smoke tests of the head-to-head comparison (fastnn.bench): it runs and reports sane figures.

Tiny data, one round; no timing is asserted.  Peers that are not installed must be skipped
cleanly, which the last test forces by hiding torch and scikit-learn.
"""
import argparse
import json
import sys

import pytest

from fastnn import bench


def _run(tmp_path, *argv):
    path = tmp_path / "bench.json"
    status = bench.main(["--quick", "--repeat", "1", "--threads", "1", "--json", str(path),
                         *argv])
    assert status == 0
    return json.loads(path.read_text())


def _positive(x):
    return isinstance(x, (int, float)) and x > 0 and x == x and x != float("inf")


def test_tiny_case_json(tmp_path, capsys):
    doc = _run(tmp_path, "--cases", "tiny-b64")
    out = capsys.readouterr().out
    assert "tiny-b64" in out and "samples/s" in out
    env = doc["environment"]
    assert env["threads"] == 1
    assert isinstance(env["threadpools"], list)
    assert "OPENBLAS_CORETYPE" in env["env"]
    assert doc["quick"] is True and doc["repeat"] == 1
    (case,) = doc["cases"]
    assert case["case"] == "tiny-b64" and case["kind"] == "train"
    assert case["sizes"] == [2, 20, 20, 2] and case["batch_size"] == 64
    assert _positive(case["flop_per_epoch"])
    res = case["results"]
    assert set(res) == {"fastnn", "torch", "sklearn", "reference", "gemm_floor"}
    assert res["fastnn"]["ratio_to_fastnn"] == 1.0
    for peer, r in res.items():
        if "skipped" in r:
            assert peer in ("torch", "sklearn")
            continue
        assert len(r["times_s"]) == 1
        for key in ("median_s", "samples_per_s", "gflops", "ratio_to_fastnn"):
            assert _positive(r[key]), (peer, key, r[key])


def test_micro_cases(tmp_path):
    doc = _run(tmp_path, "--cases", "adam,dropout,gemm,peak,threads", "--peers", "fastnn")
    cases = {c["case"]: c for c in doc["cases"]}
    assert cases["adam"]["n_params"] == 535_818
    assert _positive(cases["adam"]["results"]["fastnn"]["step_s"])
    assert _positive(cases["dropout"]["results"]["fastnn"]["ns_per_element"])
    for r in cases["gemm"]["results"].values():
        assert _positive(r["fastnn_gflops"]) and _positive(r["blas_gflops"])
    assert set(cases["peak"]["results"]) == {"float32_1t", "float64_1t"}    # --threads 1
    for r in cases["peak"]["results"].values():
        assert _positive(r["fastnn_gflops"]) and _positive(r["blas_gflops"])
    th = cases["threads"]["results"]
    if "skipped" not in th:
        assert th["n_samples"] > 0 and th["fastnn_threads"] == 1
        assert 0 <= th["max_runnable"] <= th["max_threads"]
    for row in doc["targets"]:
        assert set(row) == {"case", "target", "measured", "met", "note"}


def test_targets_name_the_rate_they_need():
    """A speed target against a peer, restated as the GEMM rate it needs, is checked against
    the best rate measured here: 1.44e11 FLOP, peer 2 s, goal 4x -> 288.8 GFLOP/s."""
    cases = [{"case": "mnist-b128", "dtype": "float32", "flop_per_epoch": 1.444e11,
              "results": {"fastnn": {"ratio_to_fastnn": 1.0, "median_s": 1.0},
                          "torch": {"ratio_to_fastnn": 2.0, "median_s": 2.0},
                          "gemm_floor": {"ratio_to_fastnn": 0.8, "median_s": 0.8,
                                         "gflops": 180.5}}},
             {"case": "peak", "threads": 2,
              "results": {"float32_2t": {"threads": 2, "fastnn_gflops": 100.0,
                                         "blas_gflops": 150.0},
                          "float32_1t": {"threads": 1, "fastnn_gflops": 500.0,
                                         "blas_gflops": 500.0}}}]
    (row,) = [r for r in bench._targets(cases) if "torch" in r[1]]
    case, target, measured, met, note = row
    assert measured == "2.00x" and not met
    assert note == "needs 289 GFLOP/s; GEMM floor 180; best GEMM here 150 (unreachable)"
    # below the best rate but above the floor's: said so, not called unreachable
    cases[1]["results"]["float32_2t"]["blas_gflops"] = 300.0
    (row,) = [r for r in bench._targets(cases) if "torch" in r[1]]
    assert row[4] == "needs 289 GFLOP/s; GEMM floor 180; best GEMM here 300 (above the floor)"


def test_peer_subset_and_flop_count(tmp_path):
    doc = _run(tmp_path, "--cases", "tiny-b64", "--peers", "fastnn,gemm_floor")
    assert set(doc["cases"][0]["results"]) == {"fastnn", "gemm_floor"}
    assert bench.epoch_flop((784, 512, 256, 10), 60000) == pytest.approx(1.444e11, rel=1e-3)


def test_missing_peers_are_skipped(tmp_path, monkeypatch):
    for name in ("torch", "sklearn", "sklearn.neural_network"):
        monkeypatch.setitem(sys.modules, name, None)      # import raises ImportError
    doc = _run(tmp_path, "--cases", "tiny-b64")
    res = doc["cases"][0]["results"]
    assert "skipped" in res["torch"] and "skipped" in res["sklearn"]
    assert _positive(res["fastnn"]["median_s"]) and _positive(res["reference"]["median_s"])


def test_bad_arguments():
    assert bench.main(["--cases", "nope"]) == 2
    assert bench.main(["--peers", "torch"]) == 2
    assert bench.main(["--repeat", "0"]) == 2


def test_cli_hooks():
    parser = bench.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--quick", "--cases", "tiny-b64"])
    assert args.quick and args.cases == "tiny-b64" and args.repeat == 3
    assert callable(bench.run)


def test_ab_builds_loads_two_builds_side_by_side(capsys):
    """benchmarks/ab_builds.py (kernel A/B in one process): the same build twice runs, and each
    copy is a module of its own."""
    import importlib.util
    import os

    import fastnn as fn
    path = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "ab_builds.py")
    if not os.path.exists(path):
        pytest.skip("benchmarks/ not beside the tests")
    spec = importlib.util.spec_from_file_location("ab_builds", path)
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    so = fn._core.__file__
    assert ab.main([so, so, "--what", "gemm", "--rounds", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "fwd1 128x784x512" in out and out.count("build1") >= 6
