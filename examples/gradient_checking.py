"""Gradient checking, the course's exercise: a correct backward pass passes, a planted bug is caught.

Part 1 is the course's own exercise.  A 3-layer network (4 inputs, relu 5, relu 3, sigmoid 1)
written out in NumPy the course's way (columns are examples), on the course's test case: after
``np.random.seed(1)``, ``x = randn(4, 3)``, then ``W1 = randn(5, 4)``, ``b1 = randn(5, 1)``,
``W2 = randn(3, 5)``, ``b2 = randn(3, 1)``, ``W3 = randn(1, 3)``, ``b3 = randn(1, 1)``, with
labels ``[1, 1, 0]``.  The course's backward pass carries two planted bugs (``dW2`` doubled and
``db1`` with ``4/m`` for ``1/m``); ``fastnn.gradcheck(f, params)`` nudges every entry of the
parameters by ``eps = 1e-7`` and compares the central differences with the gradients:

    difference = ||d_num - d||_2 / (||d_num||_2 + ||d||_2)

The course's checker reports 0.285 for the buggy pass (and passes below 2e-7 once fixed); the
per-array breakdown points at ``W2`` and ``b1``.

Part 2 checks a fastnn model the same way: the model form ``fastnn.gradcheck(model, X, y)``
checks the object it is given, so a subclass whose ``loss_and_grads`` adds a penalty to the
cost but forgets its gradient is caught, and the same subclass with the gradient passes.

    python examples/gradient_checking.py [--out DIR] [--quick]
"""
import sys

import numpy as np

import fastnn as fn

import _course as course

COURSE_BUGGY_DIFFERENCE = 0.285


def course_test_case():
    np.random.seed(1)
    x = np.random.randn(4, 3)
    y = np.array([[1, 1, 0]])
    params = {}
    for name, shape in (("W1", (5, 4)), ("b1", (5, 1)), ("W2", (3, 5)), ("b2", (3, 1)),
                        ("W3", (1, 3)), ("b3", (1, 1))):
        params[name] = np.random.randn(*shape)
    return x, y, params


def course_network(X, Y, planted_bugs):
    """``f(params) -> (cost, grads)``: forward and backward of the course's network."""
    m = X.shape[1]

    def f(p):
        Z1 = p["W1"] @ X + p["b1"]
        A1 = np.maximum(Z1, 0)
        Z2 = p["W2"] @ A1 + p["b2"]
        A2 = np.maximum(Z2, 0)
        Z3 = p["W3"] @ A2 + p["b3"]
        A3 = 1 / (1 + np.exp(-Z3))
        cost = np.sum(-Y * np.log(A3) - (1 - Y) * np.log(1 - A3)) / m

        dZ3 = A3 - Y
        dW3 = dZ3 @ A2.T / m
        db3 = np.sum(dZ3, axis=1, keepdims=True) / m
        dA2 = p["W3"].T @ dZ3
        dZ2 = dA2 * (A2 > 0)
        dW2 = dZ2 @ A1.T / m * (2 if planted_bugs else 1)
        db2 = np.sum(dZ2, axis=1, keepdims=True) / m
        dA1 = p["W2"].T @ dZ2
        dZ1 = dA1 * (A1 > 0)
        dW1 = dZ1 @ X.T / m
        db1 = (4 if planted_bugs else 1) * np.sum(dZ1, axis=1, keepdims=True) / m
        return cost, {"dZ3": dZ3, "dW3": dW3, "db3": db3, "dA2": dA2, "dZ2": dZ2,
                      "dW2": dW2, "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}
    return f


class PenaltyWithoutGradient(fn.MLP):
    """Adds ``0.05 * ||W of layer 0||^2`` to the cost and forgets to add its gradient."""

    def loss_and_grads(self, X, y, **kwargs):
        cost, grads = super().loss_and_grads(X, y, **kwargs)
        return cost + 0.05 * np.sum(self.get_weights()["0.W"] ** 2), grads


class PenaltyWithGradient(PenaltyWithoutGradient):
    """The same penalty with its gradient ``0.1 * W``."""

    def loss_and_grads(self, X, y, **kwargs):
        cost, grads = super().loss_and_grads(X, y, **kwargs)
        grads["0.W"] = grads["0.W"] + 0.1 * self.get_weights()["0.W"]
        return cost, grads


def run(quick=False):
    """``{name: GradcheckResult}`` for the four checks."""
    x, y, params = course_test_case()
    results = {
        "course network, planted bugs": fn.gradcheck(course_network(x, y, True), params),
        "course network, fixed": fn.gradcheck(course_network(x, y, False), params),
    }
    X, labels = fn.datasets.moons(n=30 if quick else 100, seed=0)
    for name, cls in (("MLP subclass, gradient forgotten", PenaltyWithoutGradient),
                      ("MLP subclass, gradient added", PenaltyWithGradient)):
        model = cls(2, [fn.Dense(6, "tanh"), fn.Dense(4, "tanh"), fn.Dense(1, "sigmoid")],
                    dtype="float64", seed=0)
        results[name] = fn.gradcheck(model, X, labels)
    return results


def main(argv=None):
    args = course.options(__doc__, argv)
    results = run(args.quick)
    for name, result in results.items():
        print(f"{name}: {result}")
        print("    " + ", ".join(f"{k} {v:.1e}" for k, v in result.per_array.items()))
    print(f"(the course reports a difference of {COURSE_BUGGY_DIFFERENCE} for its buggy "
          f"backward pass)")
    plt = course.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, names in zip(axes, (list(results)[:2], list(results)[2:])):
        width = 0.4
        for j, name in enumerate(names):
            per = results[name].per_array
            xs = np.arange(len(per)) + (j - 0.5) * width
            ax.bar(xs, [max(v, 1e-16) for v in per.values()], width, label=name)
            ax.set_xticks(np.arange(len(per)), list(per))
        ax.axhline(2e-7, color="k", linestyle="--", linewidth=0.8, label="threshold 2e-7")
        ax.set_yscale("log")
        ax.set_ylabel("relative difference")
        ax.legend(fontsize=7)
    course.save(fig, args.out, "gradient_checking.png")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
