"""The course examples under examples/: each runs as one command, prints its figures, writes its
PNG, and shows what the course shows (checked against the course's published figures and
against formulas)."""
import math
import pathlib

import numpy as np
import pytest

import fastnn as fn

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
if not (EXAMPLES / "_course.py").exists():
    pytest.skip("examples/ is not shipped here", allow_module_level=True)


@pytest.fixture
def examples(monkeypatch):
    """Import an example by name (they import their sibling _course.py)."""
    import importlib
    monkeypatch.syspath_prepend(str(EXAMPLES))
    fn.set_num_threads(1)
    yield importlib.import_module
    fn.set_num_threads(None)


def _png(out, name):
    path = pathlib.Path(out) / name
    assert path.stat().st_size > 5000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_optimizers_reproduce_the_course(examples, tmp_path, capsys):
    """5,000 epochs, as the course: 71.7 %, 71.7 %, 94.3 % training accuracy (to 0.5 points)."""
    ex = examples("optimizers")
    results = ex.run()
    for name, want in ex.COURSE.items():
        assert abs(results[name][2] - want) <= 0.005, (name, results[name][2])


def test_optimizers_course_order_is_the_course_loop(examples):
    """Three epochs of Adam driven in the course's order agree with the course's loop written
    out in NumPy (its permutation, its update with bias correction)."""
    ex = examples("optimizers")
    course = examples("_course")
    X, y = course.course_moons()
    model = course.mlp(ex.DIMS, ex.ACTIVATIONS)
    start = course.course_weights(ex.DIMS, course.he)
    model.set_weights(start)
    trainer = fn.Trainer(model, optimizer=fn.optim.Adam(0.0007), batch_size=64)
    course.fit_in_course_order(trainer, X, y, epochs=3)

    p = {k: v.copy() for k, v in start.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    s = {k: np.zeros_like(a) for k, a in p.items()}
    t, seed = 0, 10
    for _ in range(3):
        seed += 1
        np.random.seed(seed)
        order = np.random.permutation(300)
        for k in range(0, 300, 64):
            idx = order[k:k + 64]
            Xb, yb = X[idx], y[idx][:, None]
            A1 = np.maximum(Xb @ p["0.W"] + p["0.b"], 0)
            A2 = np.maximum(A1 @ p["1.W"] + p["1.b"], 0)
            A3 = 1 / (1 + np.exp(-(A2 @ p["2.W"] + p["2.b"])))
            dZ3 = (A3 - yb) / len(idx)
            dZ2 = dZ3 @ p["2.W"].T * (A2 > 0)
            dZ1 = dZ2 @ p["1.W"].T * (A1 > 0)
            g = {"2.W": A2.T @ dZ3, "2.b": dZ3.sum(0), "1.W": A1.T @ dZ2, "1.b": dZ2.sum(0),
                 "0.W": Xb.T @ dZ1, "0.b": dZ1.sum(0)}
            t += 1
            for key in p:
                v[key] = 0.9 * v[key] + 0.1 * g[key]
                s[key] = 0.999 * s[key] + 0.001 * g[key] ** 2
                p[key] -= 0.0007 * (v[key] / (1 - 0.9 ** t)) / (
                    np.sqrt(s[key] / (1 - 0.999 ** t)) + 1e-8)
    got = model.get_weights()
    for key in p:
        np.testing.assert_allclose(got[key], p[key], rtol=1e-9, atol=1e-12)


def test_optimizers_quick(examples, tmp_path, capsys):
    results = examples("optimizers").main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for word in ("mini-batch GD", "momentum", "Adam", "final cost", "fastnn's own shuffling"):
        assert word in out
    gd, mom, adam = (results[k] for k in ("mini-batch GD", "momentum", "Adam"))
    assert adam[2] > gd[2] + 0.2                          # Adam beats GD clearly
    assert adam[1]["loss"][-1] < 0.5 * gd[1]["loss"][-1]
    assert abs(mom[1]["loss"][-1] - gd[1]["loss"][-1]) < 0.01   # momentum tracks GD at lr 7e-4
    _png(tmp_path, "optimizers.png")


def test_initialization_reproduces_the_course(examples, tmp_path, capsys):
    ex = examples("initialization")
    results = ex.main(["--out", str(tmp_path)])
    for name, (train, test) in ex.COURSE.items():
        assert abs(results[name][2] - train) <= 0.005, (name, results[name][2])
        assert abs(results[name][3] - test) <= 0.005, (name, results[name][3])
    zeros = results["zeros"][1]["loss"]
    assert zeros[0] == zeros[-1] == pytest.approx(math.log(2))   # the symmetry never breaks
    assert results["large random"][1]["loss"][0] > 100            # saturated sigmoid
    assert "course (train / test)" in capsys.readouterr().out
    _png(tmp_path, "initialization.png")


def test_regularization_trades_train_for_test(examples, tmp_path):
    results = examples("regularization").main(["--quick", "--out", str(tmp_path)])
    none, l2, dropout = (results[k] for k in ("none", "L2, lambda 0.7", "dropout, keep 0.86"))
    gap = {k: r[2] - r[3] for k, r in results.items()}
    assert gap["none"] > gap["L2, lambda 0.7"] and gap["none"] > gap["dropout, keep 0.86"], gap
    assert none[2] > l2[2] and none[2] > dropout[2]          # the best fit of the training set
    assert none[3] < l2[3] and none[3] < dropout[3]          # and the worst of the test set
    # L2 shrinks the weights
    def w(r):
        return sum(np.sum(v ** 2) for k, v in r[0].get_weights().items() if k.endswith("W"))
    assert w(l2) < 0.5 * w(none)
    _png(tmp_path, "regularization.png")


def test_gradient_checking_catches_the_course_bugs(examples, tmp_path, capsys):
    ex = examples("gradient_checking")
    results = ex.main(["--quick", "--out", str(tmp_path)])
    buggy = results["course network, planted bugs"]
    assert not buggy.passed
    assert buggy.difference == pytest.approx(ex.COURSE_BUGGY_DIFFERENCE, abs=5e-4)
    assert buggy.per_array["W2"] > 0.1 and buggy.per_array["b1"] > 0.1
    assert all(v < 1e-6 for k, v in buggy.per_array.items() if k not in ("W2", "b1"))
    assert results["course network, fixed"].passed
    assert not results["MLP subclass, gradient forgotten"].passed
    assert results["MLP subclass, gradient forgotten"].per_array["0.W"] > 0.1
    assert results["MLP subclass, gradient added"].passed
    assert "FAILED" in capsys.readouterr().out
    _png(tmp_path, "gradient_checking.png")


def test_lr_decay_schedules_follow_their_formulas(examples, tmp_path):
    results = examples("lr_decay").main(["--quick", "--out", str(tmp_path)])
    epochs = 1000
    last = {k: r[1]["lr"][-1] for k, r in results.items()}
    e = epochs - 2            # the course's timing: the last epoch trains with the rate of e - 1
    assert last["constant"] == pytest.approx(0.1)
    assert last["time-based, every epoch"] == pytest.approx(0.1 / (1 + e))
    assert last["scheduled, every 200"] == pytest.approx(0.1 / (1 + e // 200))
    assert last["exponential, 0.999^e"] == pytest.approx(0.1 * 0.999 ** e)
    assert last["step, halved every 200"] == pytest.approx(0.1 * 0.5 ** (e // 200))
    # decaying every epoch stops learning early: the worst cost of the five
    costs = {k: r[1]["loss"][-1] for k, r in results.items()}
    assert max(costs, key=costs.get) == "time-based, every epoch"
    assert costs["scheduled, every 200"] < 0.5 * costs["time-based, every epoch"]
    _png(tmp_path, "lr_decay.png")


def test_batch_norm_rescues_a_deep_network(examples, tmp_path):
    results = examples("batch_norm").main(["--quick", "--out", str(tmp_path)])
    stuck = results["small init, no batch norm"][0]["loss"]
    assert abs(stuck[-1] - math.log(10)) < 0.01              # the cost of guessing
    history, dev_error = results["small init, batch norm"]
    assert history["loss"][-1] < 0.5 and dev_error < 0.15
    _png(tmp_path, "batch_norm.png")


def test_search_narrows_coarse_to_fine(examples, tmp_path, capsys):
    search = examples("search").main(["--quick", "--out", str(tmp_path)])
    first, second = search.spaces
    for name in ("lr", "l2"):
        assert first[name].low <= second[name].low < second[name].high <= first[name].high
        assert math.log10(second[name].high / second[name].low) < \
            math.log10(first[name].high / first[name].low)
    assert len(search.results) == 12
    assert search.best["metrics"]["val_error"] < 0.1
    assert "best: dev error" in capsys.readouterr().out
    _png(tmp_path, "search.png")
