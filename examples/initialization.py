"""Zeros, large random and He initialisation on the course's circles.

The course's initialisation exercise: 300 training points of ``make_circles(noise=.05)`` drawn
after ``np.random.seed(1)``, 100 test points drawn after ``np.random.seed(2)``, a 2-10-5-1 network
(relu, relu, sigmoid), 15,000 iterations of full-batch gradient descent with learning rate 0.01.
The weights are drawn after ``np.random.seed(3)`` as the course draws them: all zeros, ``randn *
10`` ("large random") and ``randn * sqrt(2 / n_{l-1})`` (He); biases start at zero.

The course reports train / test accuracy of 50 % / 50 % (zeros: every unit of a layer computes
the same thing, the symmetry never breaks), 83 % / 86 % (large random: the sigmoid saturates, the
first cost is huge and learning is slow) and 99.3 % / 96 % (He).  The course's first cost with
large random weights is ``inf`` (``log(0)`` of a saturated sigmoid); fastnn computes the
cross-entropy from the logits, so it reports a large finite cost instead.

    python examples/initialization.py [--out DIR] [--quick]
"""
import sys

import numpy as np

import fastnn as fn

import _course as course

COURSE = {"zeros": (0.50, 0.50), "large random": (0.83, 0.86), "He": (0.993, 0.96)}
DIMS = [2, 10, 5, 1]
ACTIVATIONS = ["relu", "relu", "sigmoid"]
SCALES = {"zeros": lambda n_prev: 0.0, "large random": lambda n_prev: 10.0, "He": course.he}


def course_circles():
    import sklearn.datasets
    np.random.seed(1)
    X, y = sklearn.datasets.make_circles(n_samples=300, noise=0.05)
    np.random.seed(2)
    X_test, y_test = sklearn.datasets.make_circles(n_samples=100, noise=0.05)
    return X, y, X_test, y_test


def run(quick=False):
    """``{name: (model, history, train accuracy, test accuracy)}``."""
    X, y, X_test, y_test = course_circles()
    iterations = 1500 if quick else 15000
    results = {}
    for name, scale in SCALES.items():
        model = course.mlp(DIMS, ACTIVATIONS)
        model.set_weights(course.course_weights(DIMS, scale, seed=3))
        trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.01), batch_size=len(X),
                             shuffle=False)
        history = trainer.fit(X, y, epochs=iterations, progress=False)
        results[name] = (model, history, course.accuracy(model, X, y),
                         course.accuracy(model, X_test, y_test))
    return results


def main(argv=None):
    args = course.options(__doc__, argv)
    results = run(args.quick)
    iterations = len(next(iter(results.values()))[1])
    print(f"circles, 2-10-5-1, {iterations} iterations of gradient descent, lr 0.01")
    print(f"  {'initialisation':<14} {'first cost':>10} {'last cost':>9} {'train':>7} "
          f"{'test':>6}   course (train / test)")
    for name, (_, history, train, test) in results.items():
        ref = COURSE[name]
        print(f"  {name:<14} {history['loss'][0]:>10.4g} {history['loss'][-1]:>9.4f} "
              f"{train:>7.1%} {test:>6.1%}   {ref[0]:.1%} / {ref[1]:.0%}")
    plt = course.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for name, (_, history, _, _) in results.items():
        axes[0].semilogy(history["epoch"], history["loss"], label=name)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("training cost (log)")
    axes[0].legend()
    X, y, _, _ = course_circles()
    for ax, (name, (model, _, train, test)) in zip(axes[1:], results.items()):
        course.boundary(ax, model, X, y, f"{name}: train {train:.1%}, test {test:.0%}")
    course.save(fig, args.out, "initialization.png")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
