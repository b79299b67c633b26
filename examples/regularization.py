"""No regularisation, L2 (lambda = 0.7) and dropout (keep_prob = 0.86): train vs test accuracy.

The course's regularisation exercise trains a 2-20-3-1 network (relu, relu, sigmoid; weights
``randn / sqrt(n_{l-1})`` drawn after ``np.random.seed(3)``) with 30,000 iterations of full-batch
gradient descent at learning rate 0.3 on a small 2-D data set, once without regularisation, once
with L2 (``lambda/(2m) sum ||W||^2``, lambda = 0.7) and once with inverted dropout on both hidden
layers (keep_prob = 0.86).  Its data set (positions on a football field) is not shipped with
fastnn, so this example builds its own in code: 120 noisy two-moons points to train on (noise
0.25, ``random_state=0``) and 1,000 more to test on (``random_state=1``).  The figures therefore
differ from the course's; the pattern is the course's: without regularisation the network fits
the training set best and the test set worst, and both remedies trade training accuracy for test
accuracy, shrinking the gap between the two.

    python examples/regularization.py [--out DIR] [--quick]
"""
import sys

import numpy as np

import fastnn as fn

import _course as course

DIMS = [2, 20, 3, 1]
ACTIVATIONS = ["relu", "relu", "sigmoid"]
VARIANTS = {"none": (0.0, 1.0), "L2, lambda 0.7": (0.7, 1.0), "dropout, keep 0.86": (0.0, 0.86)}


def data():
    import sklearn.datasets
    X, y = sklearn.datasets.make_moons(120, noise=0.25, random_state=0)
    X_test, y_test = sklearn.datasets.make_moons(1000, noise=0.25, random_state=1)
    return X, y, X_test, y_test


def run(quick=False):
    """``{name: (model, history, train accuracy, test accuracy)}``."""
    X, y, X_test, y_test = data()
    iterations = 10000 if quick else 30000
    results = {}
    for name, (l2, keep_prob) in VARIANTS.items():
        hidden = {"keep_prob": keep_prob}
        model = course.mlp(DIMS, ACTIVATIONS, dense={0: hidden, 1: hidden})
        model.set_weights(course.course_weights(DIMS, lambda n_prev: 1 / np.sqrt(n_prev)))
        trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.3), l2=l2, batch_size=len(X),
                             shuffle=False, seed=0)
        history = trainer.fit(X, y, epochs=iterations, progress=False)
        results[name] = (model, history, course.accuracy(model, X, y),
                         course.accuracy(model, X_test, y_test))
    return results


def main(argv=None):
    args = course.options(__doc__, argv)
    results = run(args.quick)
    iterations = len(next(iter(results.values()))[1])
    print(f"two moons (120 train, 1,000 test, noise 0.25), 2-20-3-1, {iterations} iterations")
    print(f"  {'regularisation':<19} {'train':>6} {'test':>6} {'gap':>6}")
    for name, (_, _, train, test) in results.items():
        print(f"  {name:<19} {train:>6.1%} {test:>6.1%} {train - test:>6.1%}")
    plt = course.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    X, y, _, _ = data()
    for ax, (name, (model, _, train, test)) in zip(axes, results.items()):
        course.boundary(ax, model, X, y, f"{name}: train {train:.1%}, test {test:.1%}")
    course.save(fig, args.out, "regularization.png")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
