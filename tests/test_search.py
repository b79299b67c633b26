"""fastnn.search: sampling scales, coarse-to-fine narrowing, the journal (resume, duplicates,
corrupt lines), failures, parallel back ends (threads, processes, Dask) and the CLI hook."""

import argparse
import collections
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnn as fn
from fastnn import search as S
from fastnn._threads import get_num_threads, threads

# ---- helpers ---------------------------------------------------------------------------------

def chi2_uniform(t, lo, hi, bins=30):
    """Pearson's chi-square statistic of samples t against U(lo, hi) over equal bins."""
    counts, _ = np.histogram(t, bins=bins, range=(lo, hi))
    expected = len(t) / bins
    return float(((counts - expected) ** 2 / expected).sum())


# 99.9% quantile of chi-square with 29 degrees of freedom: a correct sampler stays below it
# (the seeds are fixed, so this never flakes); a sampler on the wrong scale is far above.
CHI2_29_999 = 58.3


def rng(seed=0):
    return np.random.default_rng(seed)


def bowl(config, seed):
    """A cheap deterministic objective: best at lr = 10**-2.5, beta = 1 - 10**-2."""
    lr_term = (math.log10(config["lr"]) + 2.5) ** 2
    beta_term = (math.log10(1 - config.get("beta", 0.99)) + 2) ** 2
    return {"val_error": lr_term + beta_term, "seed": seed}


class Counting:
    """Counts calls (thread-safe); raises KeyboardInterrupt on call number ``crash_at``."""

    def __init__(self, crash_at=None):
        self.calls = 0
        self.crash_at = crash_at
        self.lock = threading.Lock()

    def __call__(self, config, seed):
        with self.lock:
            self.calls += 1
            n = self.calls
        if self.crash_at is not None and n == self.crash_at:
            raise KeyboardInterrupt  # "the machine went down" in the middle of the search
        return bowl(config, seed)


SPACE = {"lr": S.LogUniform(1e-5, 1e-1), "beta": S.OneMinusLogUniform(0.9, 0.9999),
         "layers": S.IntUniform(1, 4), "act": S.Choice(["relu", "tanh"]), "epochs": 3}


def summary(search):
    return [(r["trial_id"], r["config"], r["seed"], r["status"], r["metrics"])
            for r in search.results]


def journal_lines(path):
    """The trial records of a journal (its first line is the header, not a record)."""
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    assert S._HEADER_KEY in lines[0]
    return lines[1:]


@pytest.fixture(scope="module")
def digits_split():
    X, y = fn.datasets.digits()
    Xtr, Xd, _, ytr, yd, _ = fn.data.train_dev_test_split(X, y, 0.25, 0, seed=0)
    return Xtr, ytr, Xd, yd


# ---- spaces ----------------------------------------------------------------------------------

def test_log_uniform_samples_the_exponent_uniformly():
    sp = S.LogUniform(1e-4, 1e-1)
    x = np.array([sp.sample(rng(i)) for i in range(6000)])
    assert x.min() >= 1e-4 and x.max() <= 1e-1
    assert chi2_uniform(np.log10(x), -4, -1) < CHI2_29_999
    # Each decade gets a third of the trials (a linear sampler puts 90% in the last one).
    decades = np.histogram(np.log10(x), bins=3, range=(-4, -1))[0] / x.size
    np.testing.assert_allclose(decades, 1 / 3, atol=0.03)
    # A linear sampler fails the same test: the check has teeth.
    lin = rng(1).uniform(1e-4, 1e-1, size=6000)
    assert chi2_uniform(np.log10(lin), -4, -1) > 100 * CHI2_29_999


def test_one_minus_log_uniform_samples_one_minus_beta_log_uniformly():
    sp = S.OneMinusLogUniform(0.9, 0.999)
    b = np.array([sp.sample(rng(i)) for i in range(6000)])
    assert b.min() >= 0.9 and b.max() <= 0.999
    assert chi2_uniform(np.log10(1 - b), -3, -1) < CHI2_29_999
    # beta in [0.9, 0.99) is as likely as in [0.99, 0.999]; uniformly it would be 91%.
    assert abs(np.mean(b < 0.99) - 0.5) < 0.03
    lin = rng(1).uniform(0.9, 0.999, size=6000)
    assert chi2_uniform(np.log10(1 - lin), -3, -1) > 100 * CHI2_29_999


def test_uniform_int_uniform_and_choice_sampling():
    u = np.array([S.Uniform(0.5, 1.0).sample(rng(i)) for i in range(6000)])
    assert u.min() >= 0.5 and u.max() <= 1.0
    assert chi2_uniform(u, 0.5, 1.0) < CHI2_29_999

    ints = np.array([S.IntUniform(3, 7).sample(rng(i)) for i in range(5000)])
    assert ints.dtype.kind == "i" and set(ints.tolist()) == {3, 4, 5, 6, 7}  # both ends included
    np.testing.assert_allclose(np.bincount(ints)[3:] / ints.size, 0.2, atol=0.03)

    logints = np.array([S.IntUniform(1, 999, log=True).sample(rng(i)) for i in range(6000)])
    assert logints.min() >= 1 and logints.max() <= 999
    # log-uniform over the integers: 1..9, 10..99, 100..999 equally likely.
    shares = np.histogram(logints, bins=[1, 10, 100, 1000])[0] / logints.size
    np.testing.assert_allclose(shares, 1 / 3, atol=0.03)

    opts = [S.Choice(["a", "b", 3]).sample(rng(i)) for i in range(3000)]
    for o in ("a", "b", 3):
        assert abs(opts.count(o) / 3000 - 1 / 3) < 0.04


def test_scale_round_trip_and_bounds():
    cases = [(S.LogUniform(1e-4, 1e-1), 3e-3, math.log10(3e-3), (-4, -1)),
             (S.OneMinusLogUniform(0.9, 0.999), 0.99, -2.0, (-3, -1)),
             (S.Uniform(-1.0, 2.0), 0.25, 0.25, (-1, 2)),
             (S.IntUniform(16, 256, log=True), 64, math.log10(64),
              (math.log10(16), math.log10(256))),
             (S.Choice(["sgd", "adam"]), "adam", 1.0, (0, 1))]
    for sp, value, t, bounds in cases:
        assert sp.to_scale(value) == pytest.approx(t)
        assert sp.from_scale(sp.to_scale(value)) == pytest.approx(value)
        np.testing.assert_allclose(sp.bounds, bounds)


def test_space_validation():
    with pytest.raises(ValueError, match="0 < low"):
        S.LogUniform(0.0, 1.0)
    with pytest.raises(ValueError, match="high < 1"):
        S.OneMinusLogUniform(0.9, 1.0)
    with pytest.raises(ValueError, match="low must be <= high"):
        S.Uniform(2.0, 1.0)
    with pytest.raises(TypeError, match="integer"):
        S.IntUniform(1.5, 3)
    with pytest.raises(ValueError, match="distinct"):
        S.Choice([1, 1])
    with pytest.raises(TypeError, match="JSON"):
        S.Choice([object()])
    with pytest.raises(TypeError, match="Generator"):
        S.Uniform(0, 1).sample(0)
    with pytest.raises(TypeError, match="space"):
        S.RandomSearch({}, 2, objective=bowl)
    with pytest.raises(ValueError, match="fork"):
        S.RandomSearch(SPACE, 2, objective=bowl, backend="process", mp_context="fork")
    with pytest.raises(ValueError, match="top_k"):
        S.RandomSearch(SPACE, 2, top_k=3, objective=bowl)
    with pytest.raises(TypeError, match="cannot be pickled"):
        S.RandomSearch(SPACE, 2, backend="process", objective=lambda c, s: {}).fit()


# ---- narrowing -------------------------------------------------------------------------------

def test_narrow_is_the_box_on_the_sampling_scale():
    sp = S.LogUniform(1e-5, 1.0)          # log10 range [-5, 0], width 5
    nar = sp.narrow([1e-3, 1e-2], margin=0.1)
    assert isinstance(nar, S.LogUniform)
    # Box [-3, -2] widened by 0.1 * 5 each side, in log10: not the linear box.
    assert nar.low == pytest.approx(10 ** -3.5)
    assert nar.high == pytest.approx(10 ** -1.5)
    assert sp.narrow([1e-3, 1e-2], margin=0.0).bounds == pytest.approx((-3, -2))
    # Clipped to the current space.
    assert sp.narrow([1e-5, 0.5], margin=0.2).low == 1e-5
    assert sp.narrow([1e-5, 0.5], margin=0.2).high == 1.0

    beta = S.OneMinusLogUniform(0.9, 0.9999)   # log10(1-beta) in [-4, -1]
    nb = beta.narrow([0.99, 0.995], margin=0.0)
    assert isinstance(nb, S.OneMinusLogUniform)
    assert (nb.low, nb.high) == (pytest.approx(0.99), pytest.approx(0.995))
    nb = beta.narrow([0.99, 0.995], margin=0.1)
    assert nb.bounds == pytest.approx((math.log10(0.005) - 0.3, -2 + 0.3))

    assert S.Uniform(0, 10).narrow([2, 3], margin=0.1).bounds == pytest.approx((1, 4))
    ni = S.IntUniform(16, 1024, log=True).narrow([64, 128], margin=0.0)
    assert (ni.low, ni.high, ni.log) == (64, 128, True)
    assert S.IntUniform(1, 10).narrow([5], margin=0.1).bounds == (4, 6)
    assert S.Choice(["a", "b", "c"]).narrow(["c", "a", "c"]).options == ["a", "c"]


def test_rounds_narrow_around_the_top_k_coarse_to_fine():
    search = S.RandomSearch(SPACE, 12, rounds=3, top_k=3, n_jobs=1, objective=bowl, seed=3,
                            margin=0.1).fit()
    assert len(search.results) == 36 and len(search.spaces) == 3
    for r in range(2):
        prev, nxt = search.spaces[r], search.spaces[r + 1]
        done = sorted((x for x in search.results if x["round"] == r),
                      key=lambda x: x["metrics"]["val_error"])
        top = done[:3]
        for name in ("lr", "beta", "layers", "act"):
            assert nxt[name] == prev[name].narrow([x["config"][name] for x in top], 0.1)
        # The lr box, on the log scale, holds the top-k and is narrower than before.
        ts = [math.log10(x["config"]["lr"]) for x in top]
        lo, hi = nxt["lr"].bounds
        assert lo <= min(ts) and max(ts) <= hi
        assert hi - lo < prev["lr"].bounds[1] - prev["lr"].bounds[0]
        for x in search.results:
            if x["round"] == r + 1:
                assert nxt["lr"].low <= x["config"]["lr"] <= nxt["lr"].high
                assert x["config"]["act"] in nxt["act"].options
        assert nxt["epochs"] == 3
    # Coarse to fine pays off on this bowl: the best of round 2 beats the best of round 0.
    best = {r: min(x["metrics"]["val_error"] for x in search.results if x["round"] == r)
            for r in range(3)}
    assert best[2] < best[0]
    assert search.best is search.results[0]
    assert search.best["metrics"]["val_error"] == min(best.values())


# ---- the journal -----------------------------------------------------------------------------

def test_journal_resume_never_repeats_finished_trials(tmp_path):
    path = tmp_path / "j.jsonl"
    first = Counting()
    S.RandomSearch(SPACE, 4, n_jobs=1, objective=first, journal=path).fit()
    assert first.calls == 4 and len(journal_lines(path)) == 4

    more = Counting()
    resumed = S.RandomSearch(SPACE, 8, n_jobs=1, objective=more, journal=path).fit()
    assert more.calls == 4                      # exactly the 4 unfinished trials
    assert resumed.n_run == 4
    assert len(journal_lines(path)) == 8
    fresh = S.RandomSearch(SPACE, 8, n_jobs=1, objective=bowl).fit()
    assert summary(resumed) == summary(fresh)   # identical to a run that never stopped

    again = Counting()
    S.RandomSearch(SPACE, 8, n_jobs=1, objective=again, journal=path).fit()
    assert again.calls == 0


def test_resume_after_a_crash_inside_a_later_round(tmp_path):
    path = tmp_path / "j.jsonl"
    crashing = Counting(crash_at=7)  # round 0 done (4 trials), round 1 dies on its 3rd trial
    with pytest.raises(KeyboardInterrupt):
        S.RandomSearch(SPACE, 4, rounds=2, top_k=2, n_jobs=1, objective=crashing,
                       journal=path).fit()
    assert len(journal_lines(path)) == 6

    resume = Counting()
    resumed = S.RandomSearch(SPACE, 4, rounds=2, top_k=2, n_jobs=1, objective=resume,
                             journal=path).fit()
    assert resume.calls == 2
    fresh = S.RandomSearch(SPACE, 4, rounds=2, top_k=2, n_jobs=1, objective=bowl).fit()
    assert summary(resumed) == summary(fresh)
    assert resumed.spaces == fresh.spaces


def test_journal_records_are_complete_json_lines(tmp_path):
    path = tmp_path / "j.jsonl"
    S.RandomSearch(SPACE, 3, n_jobs=1, objective=bowl, journal=path, seed=5).fit()
    recs = journal_lines(path)
    assert [r["trial_id"] for r in recs] == ["s5-r0-t0000", "s5-r0-t0001", "s5-r0-t0002"]
    for r in recs:
        assert set(r) >= {"trial_id", "round", "index", "seed", "config", "metrics", "status",
                          "error", "time"}
        assert r["status"] == "ok" and r["error"] is None and r["time"] >= 0
        assert r["metrics"]["val_error"] == bowl(r["config"], r["seed"])["val_error"]
        assert r["config"]["epochs"] == 3


def test_duplicate_journal_records_are_counted_once(tmp_path):
    path = tmp_path / "j.jsonl"
    S.RandomSearch(SPACE, 4, n_jobs=1, objective=bowl, journal=path).fit()
    lines = path.read_text().splitlines()[1:]  # after the header
    # A cluster re-ran two trials and both copies were appended (e.g. by two drivers).
    with open(path, "a") as f:
        f.write(lines[1] + "\n" + lines[3] + "\n")
    calls = Counting()
    search = S.RandomSearch(SPACE, 4, n_jobs=1, objective=calls, journal=path).fit()
    assert calls.calls == 0
    assert len(search.results) == 4
    assert len({r["trial_id"] for r in search.results}) == 4
    assert len(S.read_journal(path)) == 4


def test_corrupt_journal_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "j.jsonl"
    S.RandomSearch(SPACE, 4, n_jobs=1, objective=bowl, journal=path).fit()
    lines = path.read_text().splitlines()  # the header, then trials 0..3
    # Lose trial 3 to a crash mid-write (truncated, no newline) and add garbage lines.
    path.write_text("\n".join(lines[:4]) + "\nnot json\n[1, 2]\n" + lines[4][:25])
    calls = Counting()
    with pytest.warns(RuntimeWarning, match="skipped 3 corrupt line"):
        search = S.RandomSearch(SPACE, 4, n_jobs=1, objective=calls, journal=path).fit()
    assert calls.calls == 1                      # only the trial whose line was truncated
    assert [r["status"] for r in search.results] == ["ok"] * 4
    # The new record starts on its own line: it parses.
    assert json.loads(path.read_text().splitlines()[-1])["trial_id"] == "s0-r0-t0003"


def test_journal_of_another_space_is_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    S.RandomSearch(SPACE, 2, n_jobs=1, objective=bowl, journal=path).fit()
    other = dict(SPACE, lr=S.LogUniform(1e-3, 1e-2))
    with pytest.raises(ValueError, match="another space"):
        S.RandomSearch(other, 2, n_jobs=1, objective=bowl, journal=path).fit()


# ---- failures --------------------------------------------------------------------------------

def flaky(config, seed):
    if config["act"] == "tanh":
        raise ValueError(f"no tanh today (lr={config['lr']})")
    return bowl(config, seed)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, n_jobs):
    path = tmp_path / "j.jsonl"
    search = S.RandomSearch(SPACE, 10, rounds=2, n_jobs=n_jobs, objective=flaky,
                            journal=path).fit()
    r0 = [r for r in search.results if r["round"] == 0]
    failed = [r for r in r0 if r["status"] == "failed"]
    assert failed and len(failed) < len(r0)       # the seed gives both kinds
    for r in failed:
        assert r["config"]["act"] == "tanh"
        assert r["error"].startswith("ValueError: no tanh today")
        assert r["metrics"] == {}
    assert len(search.results) == 20              # round 1 ran in full
    assert search.best["status"] == "ok"
    # Failed trials sort last and are journalled; round 1 only samples what worked.
    statuses = [r["status"] for r in search.results]
    assert statuses == sorted(statuses, key=lambda s: s != "ok")
    assert search.spaces[1]["act"].options == ["relu"]
    assert sum(r["status"] == "failed" for r in journal_lines(path)) == len(failed)
    calls = Counting()
    S.RandomSearch(SPACE, 10, rounds=2, n_jobs=1, objective=calls, journal=path).fit()
    assert calls.calls == 0                       # failed trials are finished trials too
    assert "failed trial(s)" in search.to_table()


def test_bad_objective_results_fail_the_trial():
    def bad(config, seed):
        return {"val_error": float("nan")} if config["act"] == "relu" else {"loss": 1.0}
    with pytest.warns(RuntimeWarning, match="all 4 trials failed"):
        search = S.RandomSearch(SPACE, 4, n_jobs=1, objective=bad).fit()
    errors = {r["config"]["act"]: r["error"] for r in search.results}
    assert "finite number" in errors["relu"] and "has no 'val_error'" in errors["tanh"]
    assert search.best is None


# ---- parallel back ends ----------------------------------------------------------------------

def test_threads_context_manager_is_thread_local():
    outer = get_num_threads()
    seen = {}
    with threads(1):
        assert get_num_threads() == 1
        t = threading.Thread(target=lambda: seen.setdefault("other", get_num_threads()))
        t.start()
        t.join()
        with threads(None):
            assert get_num_threads() == 1   # None leaves the budget as it is
    assert seen["other"] == outer            # other threads keep their own budget
    assert get_num_threads() == outer
    with pytest.raises(RuntimeError), threads(1):
        raise RuntimeError
    assert get_num_threads() == outer        # restored on an exception
    with pytest.raises(ValueError), threads(0):
        pass


def report_threads(config, seed):
    return {"val_error": config["lr"], "threads": get_num_threads(),
            "thread": threading.current_thread().name}


def test_thread_workers_share_the_cores():
    cores = get_num_threads()
    search = S.RandomSearch(SPACE, 6, n_jobs=2, objective=report_threads).fit()
    assert {r["metrics"]["threads"] for r in search.results} == {max(1, cores // 2)}
    assert all(r["metrics"]["thread"].startswith("fastnn-search") for r in search.results)
    serial = S.RandomSearch(SPACE, 6, n_jobs=1, objective=report_threads).fit()
    assert {r["metrics"]["threads"] for r in serial.results} == {cores}
    forced = S.RandomSearch(SPACE, 2, n_jobs=2, objective=report_threads,
                            threads_per_trial=3).fit()
    assert {r["metrics"]["threads"] for r in forced.results} == {3}
    assert get_num_threads() == cores        # nothing leaked into the calling thread


DIGITS_SPACE = {"lr": S.LogUniform(3e-3, 3e-2), "n_hidden": S.IntUniform(16, 64, log=True),
                "keep_prob": S.Uniform(0.8, 1.0), "batch_size": S.Choice([32, 64]),
                "optimizer": "adam", "epochs": 4}


def test_builtin_objective_finds_a_good_config_on_digits(digits_split, tmp_path):
    Xtr, ytr, Xd, yd = digits_split
    search = S.RandomSearch(DIGITS_SPACE, 4, rounds=2, top_k=2, seed=0).fit(Xtr, ytr, Xd, yd)
    assert search.best["metrics"]["val_error"] < 0.1
    assert set(search.best["metrics"]) >= {"val_error", "val_loss", "loss", "error", "epochs"}
    assert search.best["metrics"]["epochs"] == 4
    table = search.to_table()
    assert table.splitlines()[0].split()[:4] == ["rank", "trial_id", "round", "val_error"]
    assert len(table.splitlines()) == 1 + 8
    fig = search.plot(tmp_path / "search.png")
    assert (tmp_path / "search.png").stat().st_size > 0
    scales = {ax.get_xlabel(): ax.get_xscale() for ax in fig.axes if ax.get_visible()}
    assert scales == {"lr": "log", "n_hidden": "log", "keep_prob": "linear",
                      "batch_size": "linear"}


def test_thread_parallel_results_equal_serial(digits_split):
    Xtr, ytr, Xd, yd = digits_split
    space = dict(DIGITS_SPACE, epochs=2)
    serial = S.RandomSearch(space, 4, n_jobs=1, seed=7).fit(Xtr, ytr, Xd, yd)
    parallel = S.RandomSearch(space, 4, n_jobs=2, seed=7).fit(Xtr, ytr, Xd, yd)
    assert summary(parallel) == summary(serial)
    assert all(r["status"] == "ok" for r in serial.results)
    # Worker processes (the objective and its data sent once per worker) agree as well.
    procs = S.RandomSearch(space, 4, n_jobs=2, backend="process", seed=7).fit(Xtr, ytr, Xd, yd)
    assert summary(procs) == summary(serial)


def test_builtin_objective_settings_and_errors(digits_split):
    Xtr, ytr, Xd, yd = digits_split
    obj = S.MLPObjective(Xtr, ytr, Xd, yd, base={"epochs": 1, "dtype": "float64"})
    model, trainer, c = obj.build({"optimizer": "momentum", "lr": 0.05, "beta": 0.95,
                                   "beta1": 0.5, "n_layers": 2, "n_hidden": 20,
                                   "lr_decay": 1.0}, seed=3)
    assert [layer.units for layer in model.layers] == [20, 20, 10]
    assert model.dtype == np.float64 and model.seed == 3
    assert trainer.optimizer.get_config()["beta"] == 0.95       # beta1 ignored for momentum
    assert trainer.schedule(0.05, 2) == pytest.approx(0.05 / 3)  # the course's decay
    assert c["epochs"] == 1
    assert abs(obj.X.mean()) < 1e-6                              # standardised once
    with pytest.raises(ValueError, match="unknown keys"):
        obj({"learning_rate": 0.1}, 0)
    with pytest.raises(ValueError, match="unknown keys"):
        S.MLPObjective(Xtr, ytr, Xd, yd, base={"epoch": 3})
    with pytest.raises(TypeError, match="needs the training and dev sets"):
        S.RandomSearch(DIGITS_SPACE, 2).fit()
    with pytest.raises(TypeError, match="no data"):
        S.RandomSearch(SPACE, 2, objective=bowl).fit(Xtr, ytr, Xd, yd)


def dies_sometimes(config, seed):
    if config["act"] == "tanh" and config["lr"] > 1e-3:
        time.sleep(0.1)
        os._exit(3)  # a worker process that dies (segfault, OOM kill ...)
    time.sleep(0.4)  # still running when a killer next to it takes the pool down
    return bowl(config, seed)


def test_process_workers_and_a_trial_that_kills_its_worker(tmp_path):
    search = S.RandomSearch(SPACE, 6, n_jobs=2, backend="process", objective=dies_sometimes,
                            journal=tmp_path / "j.jsonl").fit()
    killers = [r for r in search.results
               if r["config"]["act"] == "tanh" and r["config"]["lr"] > 1e-3]
    assert killers and len(killers) < 6
    # Trials 0 and 1 run together first; one of them kills its worker, the other is innocent.
    assert sum(r in killers for r in search.results if r["index"] < 2) == 1
    for r in search.results:
        if r in killers:
            assert r["status"] == "failed" and "worker died" in r["error"]
        else:  # innocent trials that shared the pool with a killer were retried and succeeded
            assert r["status"] == "ok"
            assert r["metrics"]["val_error"] == bowl(r["config"], r["seed"])["val_error"]
    assert len(journal_lines(tmp_path / "j.jsonl")) == 6


def test_dask_cluster_executor(digits_split):
    distributed = pytest.importorskip("distributed")
    Xtr, ytr, Xd, yd = digits_split
    space = dict(DIGITS_SPACE, epochs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = S.RandomSearch(space, 4, executor=client.get_executor(), seed=7)
        dask.fit(Xtr, ytr, Xd, yd)
    serial = S.RandomSearch(space, 4, n_jobs=1, seed=7).fit(Xtr, ytr, Xd, yd)
    assert summary(dask) == summary(serial)


# ---- results and CLI -------------------------------------------------------------------------

def test_results_need_fit_and_dataframe_needs_pandas():
    search = S.RandomSearch(SPACE, 2, n_jobs=1, objective=bowl)
    with pytest.raises(fn._validation.NotFittedError):
        search.to_table()
    search.fit()
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            search.as_dataframe()
    else:
        df = search.as_dataframe()
        assert list(df["trial_id"]) == [r["trial_id"] for r in search.results]


def test_cli_on_a_data_file(tmp_path, capsys):
    X, y = fn.datasets.blobs(n=300, n_features=4, centers=3, seed=0)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    parser = S.add_cli_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--data", str(tmp_path / "d.npz"), "--trials", "3", "--rounds",
                              "2", "--epochs", "2", "--jobs", "2", "--journal",
                              str(tmp_path / "j.jsonl"), "--plot", str(tmp_path / "p.png"),
                              "--output", str(tmp_path / "m.safetensors")])
    assert S.run_cli(args) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "best: s0-r" in out and "trial s0-r1-t0002" in out and '"lr"' in out
    assert len(journal_lines(tmp_path / "j.jsonl")) == 6
    assert (tmp_path / "p.png").exists()
    assert fn.load(tmp_path / "m.safetensors").n_inputs == 4

    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",", header="a,b,c,d,y",
               comments="")
    Xc, yc = S.load_data(tmp_path / "d.csv")
    np.testing.assert_allclose(Xc, X)
    assert yc.dtype.kind == "i" and np.array_equal(yc, y)
    bad = parser.parse_args(["--data", str(tmp_path / "missing.npz")])
    assert S.run_cli(bad) == 2
    assert "error" in capsys.readouterr().err


# ---- Ctrl-C and kill -9 of a search (child processes, every wait bounded) --------------------

def touch(directory, name):
    with open(os.path.join(directory, name), "w"):
        pass


def marked(config, seed):
    """Marks ``slow-<seed>`` in ``config["dir"]`` when a slow trial starts (it then sleeps a
    minute) and ``done-<seed>`` just before any trial returns."""
    if config["slow"]:
        touch(config["dir"], f"slow-{seed}")
        time.sleep(60)
    touch(config["dir"], f"done-{seed}")
    return {"val_error": config["lr"]}


class MarkedMLP(S.MLPObjective):
    """The built-in objective, marked like :func:`marked`; slow trials train a million
    epochs."""

    def __call__(self, config, seed):
        config = dict(config)
        directory, slow = config.pop("dir"), config.pop("slow")
        config["epochs"] = 10 ** 6 if slow else 1
        if slow:
            touch(directory, f"slow-{seed}")
        out = super().__call__(config, seed)
        touch(directory, f"done-{seed}")
        return out


_SEARCH_CHILD = r"""
import sys
import fastnn as fn
from fastnn import search as S
import test_search as T
backend, directory, journal, seed = sys.argv[1:]
space = {"slow": S.Choice([False, True]), "lr": S.LogUniform(1e-3, 1e-1), "dir": directory}
if backend == "thread":
    X, y = fn.datasets.blobs(n=200, seed=0)
    objective = T.MarkedMLP(X, y, X, y, base={"n_hidden": 8})
else:
    objective = T.marked
print("started", flush=True)
S.RandomSearch(space, 8, n_jobs=2, backend=backend, journal=journal, seed=int(seed),
               objective=objective).fit()
"""


def _interrupt_seed():
    """A search seed whose 8 trials start fast, then slow, fast..., with a fast trial before
    the second slow one (it finishes while the first slow one runs) and trials left after it:
    with 2 workers the search gets stuck on its first two slow trials."""
    for seed in range(100):
        slow = [S.sample_config({"slow": S.Choice([False, True])}, seed, 0, i)["slow"]
                for i in range(8)]
        second = [i for i, s in enumerate(slow) if s][1:2]
        if second and slow[0] and not slow[1] and second[0] < 6:
            return seed
    raise AssertionError("no seed found")


def _proc_start(pid):
    """(state, start time) of a process from /proc, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], fields[19]


def _descendants(root):
    """Every process below ``root`` (pid, start time), read from /proc."""
    children = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry))
    found, todo = [], [root]
    while todo:
        for pid in children[todo.pop()]:
            start = _proc_start(pid)
            if start is not None:
                found.append((pid, start[1]))
                todo.append(pid)
    return found


def _alive(procs):
    """Those of ``procs`` still running (not gone, not a zombie, not a reused pid)."""
    alive = []
    for pid, start in procs:
        now = _proc_start(pid)
        if now is not None and now[1] == start and now[0] != "Z":
            alive.append((pid, start))
    return alive


def _wait_for(predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _start_search(tmp_path, backend, seed):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [here, os.path.dirname(os.path.dirname(fn.__file__))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    child = subprocess.Popen([sys.executable, "-c", _SEARCH_CHILD, backend, str(tmp_path),
                              str(tmp_path / "j.jsonl"), str(seed)], env=env, cwd=here,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stuck = _wait_for(lambda: len(list(tmp_path.glob("slow-*"))) >= 2, 120)
    return child, stuck


def _stop(child, procs):
    """Kill what a failed test left running: the child and the processes seen below it."""
    for pid, _ in _alive(procs):
        os.kill(pid, signal.SIGKILL)
    if child.poll() is None:
        child.kill()
    child.communicate(timeout=60)


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")


@needs_proc
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_ctrl_c_journals_finished_trials_and_stops_at_once(tmp_path, backend):
    """Ctrl-C while two slow trials run: the search stops within seconds (slow built-in trials
    stop at their next epoch, worker processes are ended) instead of waiting for them, and
    the journal holds exactly the trials that finished, once each; resuming runs the rest."""
    seed = _interrupt_seed()
    child, stuck = _start_search(tmp_path, backend, seed)
    procs = _descendants(child.pid)
    try:
        assert stuck, child.stderr.read() if child.poll() is not None else "no slow trials"
        time.sleep(0.5)  # the trials that finished before the slow ones are long done
        t0 = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the search did not stop within 20 s of Ctrl-C")
        assert time.monotonic() - t0 < 10
        assert child.returncode != 0 and "KeyboardInterrupt" in err
        assert _wait_for(lambda: not _alive(procs), 10), "worker processes outlived the search"
    finally:
        _stop(child, procs)
    done = {int(p.name.split("-")[1]) for p in tmp_path.glob("done-*")}
    records = journal_lines(tmp_path / "j.jsonl")
    assert len(records) == len({r["trial_id"] for r in records})
    assert {r["seed"] for r in records} == done and done
    assert all(r["status"] == "ok" and not r["config"]["slow"] for r in records)

    more = Counting()
    # Resumed by a counting stand-in for the same objective (the journal checks fingerprints).
    with open(tmp_path / "j.jsonl") as f:
        header = json.loads(f.readline())
    more.fingerprint = lambda: header["fingerprint"]["objective"]
    space = {"slow": S.Choice([False, True]), "lr": S.LogUniform(1e-3, 1e-1),
             "dir": str(tmp_path)}
    S.RandomSearch(space, 8, n_jobs=1, journal=tmp_path / "j.jsonl", seed=seed,
                   objective=more).fit()
    assert more.calls == 8 - len(done)
    assert len(journal_lines(tmp_path / "j.jsonl")) == 8


@needs_proc
def test_kill_9_of_a_process_search_leaves_no_worker_behind(tmp_path):
    """SIGKILL gives the search no chance to clean up: its worker processes notice that it is
    gone and exit (and so do the helper processes of multiprocessing)."""
    child, stuck = _start_search(tmp_path, "process", _interrupt_seed())
    procs = _descendants(child.pid)
    try:
        assert stuck, child.stderr.read() if child.poll() is not None else "no slow trials"
        assert len(procs) >= 2
        child.kill()
        child.wait(timeout=60)  # not communicate: surviving workers would hold its pipes open
        survivors = [] if _wait_for(lambda: not _alive(procs), 15) else _alive(procs)
        assert not survivors, f"{len(survivors)} of {len(procs)} processes survived"
    finally:
        _stop(child, procs)


# ---- which search a journal belongs to -------------------------------------------------------

def small_blobs(seed=0, n=120):
    X, y = fn.datasets.blobs(n=n, n_features=4, centers=3, seed=seed)
    Xtr, Xd, _, ytr, yd, _ = fn.data.train_dev_test_split(X, y, 0.25, 0, seed=0)
    return Xtr, ytr, Xd, yd


TINY = {"lr": S.LogUniform(1e-3, 1e-1), "n_hidden": 4, "epochs": 2}


def test_resume_with_other_data_is_refused_or_starts_afresh(tmp_path):
    """Resuming a journal with other data must never return the earlier run's results."""
    path = tmp_path / "j.jsonl"
    first = S.RandomSearch(TINY, 2, n_jobs=1, journal=path).fit(*small_blobs(0))
    other = small_blobs(1)
    with pytest.raises(ValueError, match="other data or other fixed settings.*data"):
        S.RandomSearch(TINY, 2, n_jobs=1, journal=path).fit(*other)
    # One changed label is other data too.
    Xtr, ytr, Xd, yd = small_blobs(0)
    yd = yd.copy()
    yd[0] = (yd[0] + 1) % 3
    with pytest.raises(ValueError, match="other data"):
        S.RandomSearch(TINY, 2, n_jobs=1, journal=path).fit(Xtr, ytr, Xd, yd)
    # So is another fixed setting of the objective.
    with pytest.raises(ValueError, match=r"fixed settings \(objective\.base\.l2"):
        S.RandomSearch(TINY, 2, n_jobs=1, journal=path, base={"l2": 0.1}).fit(*small_blobs(0))
    with pytest.raises(ValueError, match="another metric"):
        S.RandomSearch(TINY, 2, n_jobs=1, journal=path, metric="val_loss").fit(*small_blobs(0))
    # Starting afresh: the results are those of the new data, as a search without journal.
    fresh = S.RandomSearch(TINY, 2, n_jobs=1, journal=path, resume=False).fit(*other)
    assert fresh.n_run == 2
    alone = S.RandomSearch(TINY, 2, n_jobs=1).fit(*other)
    assert summary(fresh) == summary(alone) != summary(first)
    assert len(journal_lines(path)) == 2
    # ... and the journal now belongs to the new search: it resumes without running anything.
    again = S.RandomSearch(TINY, 2, n_jobs=1, journal=path).fit(*other)
    assert again.n_run == 0 and summary(again) == summary(alone)


def test_journal_without_header_is_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    S.RandomSearch(SPACE, 2, n_jobs=1, objective=bowl, journal=path).fit()
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(ValueError, match="no header"):
        S.RandomSearch(SPACE, 2, n_jobs=1, objective=bowl, journal=path).fit()
    # An empty file is a new journal.
    path.write_text("")
    S.RandomSearch(SPACE, 2, n_jobs=1, objective=bowl, journal=path).fit()
    assert len(journal_lines(path)) == 2


class Fingerprinted:
    def __init__(self, tag):
        self.tag = tag

    def fingerprint(self):
        return {"tag": self.tag}

    def __call__(self, config, seed):
        return bowl(config, seed)


def test_objective_fingerprint_is_checked(tmp_path):
    path = tmp_path / "j.jsonl"
    S.RandomSearch(SPACE, 2, n_jobs=1, objective=Fingerprinted("a"), journal=path).fit()
    with pytest.raises(ValueError, match="objective.tag"):
        S.RandomSearch(SPACE, 2, n_jobs=1, objective=Fingerprinted("b"), journal=path).fit()
    calls = Counting()
    S.RandomSearch(SPACE, 2, n_jobs=1, objective=Fingerprinted("a"), journal=path).fit()
    S.RandomSearch(SPACE, 2, n_jobs=1, objective=bowl, journal=tmp_path / "k.jsonl").fit()
    with pytest.raises(ValueError, match="objective"):
        S.RandomSearch(SPACE, 2, n_jobs=1, objective=calls, journal=path).fit()
    assert calls.calls == 0


def test_fingerprint_is_sha256_of_dtype_shape_and_bytes():
    import hashlib
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 0], dtype=np.int64)
    h = hashlib.sha256()
    for x in (a, b):
        h.update(f"{x.dtype.str}{x.shape};".encode())
        h.update(x.tobytes())
    assert fn.data.fingerprint(a, b) == h.hexdigest()
    assert fn.data.fingerprint(a.T.copy(), b) != fn.data.fingerprint(a, b)  # shape counts
    assert fn.data.fingerprint(a.astype(np.float64), b) != fn.data.fingerprint(a, b)
    assert fn.data.fingerprint(np.asfortranarray(a), b) == fn.data.fingerprint(a, b)
    with pytest.raises(TypeError, match="objects"):
        fn.data.fingerprint(np.array([{}], dtype=object))


@needs_proc
def test_read_journal_refuses_a_fifo_unread(tmp_path):
    fifo = tmp_path / "j.jsonl"
    os.mkfifo(fifo)
    result = {}

    def target():  # would block forever on a FIFO opened for reading without a writer
        try:
            S.read_journal(fifo)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            result["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "read_journal blocked on a FIFO"
    assert isinstance(result.get("exc"), fn.FormatError) and "FIFO" in str(result["exc"])
    with pytest.raises(fn.FormatError, match="directory"):
        S.read_journal(tmp_path)


# ---- bounds and laziness ---------------------------------------------------------------------

def test_n_trials_is_bounded_and_specs_are_drawn_lazily(tmp_path):
    with pytest.raises(ValueError, match="n_trials"):
        S.RandomSearch(SPACE, S.MAX_TRIALS + 1)
    stop = Counting(crash_at=4)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):  # a million trials: only those run are drawn
        S.RandomSearch(SPACE, S.MAX_TRIALS, n_jobs=1, objective=stop,
                       journal=tmp_path / "j.jsonl").fit()
    assert time.perf_counter() - t0 < 5
    assert len(journal_lines(tmp_path / "j.jsonl")) == 3
    stop = Counting(crash_at=4)
    with pytest.raises(KeyboardInterrupt):
        S.RandomSearch(SPACE, S.MAX_TRIALS, n_jobs=2, objective=stop).fit()
    assert stop.calls <= 6


# ---- results: the training-error column, refit, plot ----------------------------------------

def test_dataframe_keeps_the_training_error_and_names_the_failure_reason():
    Xtr, ytr, Xd, yd = small_blobs(0)
    space = dict(TINY, n_hidden=S.Choice([4, "many"]))
    search = S.RandomSearch(space, 4, n_jobs=1, seed=1).fit(Xtr, ytr, Xd, yd)
    try:
        rows = search.as_dataframe().to_dict("records")
    except ImportError:  # no pandas: the rows it is built from
        rows = search._rows()
        for row in rows:
            row.setdefault("error", math.nan)
    assert {row["status"] for row in rows} == {"ok", "failed"}
    for row, rec in zip(rows, search.results):
        if rec["status"] == "ok":
            assert row["error"] == rec["metrics"]["error"] and 0 <= row["error"] <= 1
            assert row["reason"] is None
        else:
            assert "many" in row["reason"] and math.isnan(row["error"])


def test_refit_trains_the_best_config_again_into_a_usable_model(tmp_path):
    Xtr, ytr, Xd, yd = small_blobs(0, n=200)
    labels = np.array(["ant", "bee", "cat"])
    search = S.RandomSearch(dict(TINY, epochs=3), 3, n_jobs=1).fit(
        Xtr * 10 + 5, labels[ytr], Xd * 10 + 5, labels[yd])
    model = search.refit()
    # Same config, same seed, same data: the trial's model exactly, taking raw features and
    # predicting the original labels.
    assert set(model.predict(Xd * 10 + 5)) <= set(labels)
    err = np.mean(model.predict(Xd * 10 + 5) != labels[yd])
    assert err == pytest.approx(search.best["metrics"]["val_error"], abs=1e-12)
    model.save(tmp_path / "m.safetensors")
    loaded = fn.load(tmp_path / "m.safetensors")
    assert np.array_equal(loaded.predict(Xd * 10 + 5), model.predict(Xd * 10 + 5))
    # On train + dev: the best trial's epochs, on more rows.
    both = search.refit(include_dev=True)
    assert not np.array_equal(both.get_weights()["0.W"], model.get_weights()["0.W"])
    assert both.training_config_["seed"] == search.best["seed"]
    with pytest.raises(TypeError, match="built-in objective"):
        S.RandomSearch(SPACE, 2, n_jobs=1, objective=bowl).fit().refit()


def test_plot_uses_log_axes_for_log_scale_spaces(tmp_path):
    pytest.importorskip("matplotlib")
    search = S.RandomSearch(SPACE, 4, n_jobs=1, objective=bowl).fit()
    fig = search.plot(tmp_path / "p.png")
    axes = {ax.get_xlabel(): ax for ax in fig.axes if ax.get_visible()}
    assert axes["lr"].get_xscale() == "log" and axes["1 - beta"].get_xscale() == "log"
    assert axes["layers"].get_xscale() == "linear"
    with open(tmp_path / "p.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ---- pruning -----------------------------------------------------------------------------

def _rec(status, curve):
    return {"status": status, "curve": [[i, v] for i, v in enumerate(curve)]}


def test_median_pruner_against_the_median_of_finished_curves():
    p = S.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    done = [_rec("ok", [5, 4, 3]), _rec("ok", [6, 2, 1]), _rec("pruned", [0, 0]),
            _rec("ok", [7, 3])]
    assert p.prepare(done[:2], "val_error") == {}  # fewer than 3 finished
    prepared = p.prepare(done, "val_error")
    assert prepared == {0: 6.0, 1: 3.0, 2: 2.0}      # pruned trials do not count
    assert not p.prune(prepared, 0, 100.0)           # warm-up step
    assert p.prune(prepared, 1, 3.5) and not p.prune(prepared, 1, 3.0)
    assert p.prune(prepared, 2, 2.1) and not p.prune(prepared, 3, 1e9)  # no data at step 3


def test_successive_halving_keeps_the_best_third_at_each_rung():
    p = S.SuccessiveHalvingPruner(min_steps=2, reduction_factor=3)
    assert [s for s in range(60) if p._is_rung(s)] == [1, 5, 17, 53]
    done = [_rec("ok", [0, v]) for v in (1.0, 2.0, 3.0, 4.0, 5.0)] + [_rec("pruned", [0, 0.5])]
    prepared = p.prepare(done, "val_error")
    assert prepared == {1: [0.5, 1.0, 2.0, 3.0, 4.0, 5.0]}
    # With the newcomer: 7 values, keep the best 7 // 3 = 2.
    assert not p.prune(prepared, 1, 0.9) and p.prune(prepared, 1, 1.5)
    assert not p.prune(prepared, 0, 100.0) and not p.prune(prepared, 2, 100.0)
    assert not p.prune({}, 1, 100.0)                 # the first trial at a rung goes on


def test_pruned_built_in_trials_stop_early_and_are_recorded(tmp_path):
    Xtr, ytr, Xd, yd = small_blobs(0, n=160)
    space = {"lr": S.LogUniform(1e-4, 1e-1), "n_hidden": 4, "epochs": 6}
    path = tmp_path / "j.jsonl"
    search = S.RandomSearch(space, 12, n_jobs=1, journal=path,
                            pruner=S.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    search.fit(Xtr, ytr, Xd, yd)
    plain = S.RandomSearch(space, 12, n_jobs=1).fit(Xtr, ytr, Xd, yd)
    pruned = [r for r in search.results if r["status"] == "pruned"]
    assert pruned, "nothing was pruned"
    finished = []
    for rec in search.results:
        same = next(p for p in plain.results if p["trial_id"] == rec["trial_id"])
        # Each trial reported its dev error after every epoch; pruning cuts the curve short.
        steps = [s for s, _ in rec["curve"]]
        assert steps == list(range(len(steps)))
        if rec["status"] == "ok":
            assert len(steps) == 6 and rec["metrics"] == same["metrics"]
            finished.append(rec)
        else:
            step, value = rec["curve"][-1]
            assert 1 <= step < 5 and rec["metrics"] == {"val_error": value, "step": step}
            # It was worse than the median of the trials finished before it started.
            before = [f for f in finished if f["index"] < rec["index"]]
            assert len(before) >= 3
            assert value > np.median([f["curve"][step][1] for f in before])
    assert search.best["status"] == "ok"
    assert "pruned" in search.to_table()
    assert [r["status"] for r in journal_lines(path)].count("pruned") == len(pruned)
    with pytest.raises(ValueError, match="another pruner"):
        S.RandomSearch(space, 12, n_jobs=1, journal=path, pruner="successive_halving").fit(
            Xtr, ytr, Xd, yd)


def test_report_outside_a_search_does_nothing_and_checks_steps():
    S.report(0, 1.0)  # not in a trial: no effect

    def objective(config, seed):
        S.report(0, 1.0)
        S.report(0, 0.5)
        return {"val_error": 0.5}

    search = S.RandomSearch({"lr": S.LogUniform(1e-3, 1e-1)}, 1, n_jobs=1,
                            objective=objective)
    with pytest.warns(RuntimeWarning, match="all 1 trials failed"):
        search.fit()
    assert "steps must increase" in search.results[0]["error"]


def test_space_files_round_trip_and_errors(tmp_path):
    data = S.space_to_dict(SPACE)
    assert S.space_from_dict(json.loads(json.dumps(data))) == SPACE
    assert data["lr"] == {"type": "log_uniform", "low": 1e-5, "high": 1e-1}
    with pytest.raises(ValueError, match=r"space\['lr'\]: type must be one of"):
        S.space_from_dict({"lr": {"type": "loguniform", "low": 1, "high": 2}})
    with pytest.raises(ValueError, match=r"space\['lr'\].*missing \['high'\]"):
        S.space_from_dict({"lr": {"type": "log_uniform", "low": 1}})
    with pytest.raises(ValueError, match=r"space\['lr'\]: LogUniform needs"):
        S.space_from_dict({"lr": {"type": "log_uniform", "low": 0, "high": 1}})
