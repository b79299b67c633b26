"""Mini-batch gradient descent, momentum and Adam on the course's moons, as the course runs them.

The course's optimisation exercise: 300 points of ``make_moons(noise=.2)`` drawn after
``np.random.seed(3)``, a 2-5-2-1 network (relu, relu, sigmoid) with the course's He
initialisation drawn after ``np.random.seed(3)``, mini-batches of 64 in the course's order (a
permutation seeded 11, 12, ... before each epoch), learning rate 0.0007, 5,000 epochs; momentum
with beta = 0.9, Adam with beta1 = 0.9, beta2 = 0.999, eps = 1e-8 and bias correction.  The course
reports training accuracies of 71.7 % (gradient descent), 71.7 % (momentum) and 94.3 % (Adam):
with so small a learning rate momentum barely differs from plain gradient descent, while Adam's
per-parameter step sizes get much further in the same number of steps.

The same runs are repeated with fastnn's own shuffling (``Trainer(seed=0)``, other permutations):
the figures do not hinge on the course's order (they agree to the fourth digit of the cost).

    python examples/optimizers.py [--out DIR] [--quick]
"""
import sys
import time

import fastnn as fn

import _course as course

COURSE = {"mini-batch GD": 0.717, "momentum": 0.717, "Adam": 0.943}
DIMS = [2, 5, 2, 1]
ACTIVATIONS = ["relu", "relu", "sigmoid"]


def optimizers(lr=0.0007):
    return {"mini-batch GD": fn.optim.SGD(lr),
            "momentum": fn.optim.Momentum(lr, beta=0.9),
            "Adam": fn.optim.Adam(lr, beta1=0.9, beta2=0.999, eps=1e-8)}


def run(quick=False, course_order=True):
    """Train one model per optimizer; returns ``{name: (model, history, accuracy, seconds)}``."""
    X, y = course.course_moons()
    epochs = 500 if quick else 5000
    results = {}
    for name, opt in optimizers().items():
        model = course.mlp(DIMS, ACTIVATIONS)
        model.set_weights(course.course_weights(DIMS, course.he))
        trainer = fn.Trainer(model, optimizer=opt, batch_size=64, seed=0)
        t0 = time.perf_counter()
        if course_order:
            history = course.fit_in_course_order(trainer, X, y, epochs)
        else:
            history = trainer.fit(X, y, epochs=epochs, progress=False)
        results[name] = (model, history, course.accuracy(model, X, y),
                         time.perf_counter() - t0)
    return results


def report(results, title, course_figures):
    print(title)
    print(f"  {'optimizer':<14} {'final cost':>10} {'accuracy':>9}"
          + (f" {'course':>7}" if course_figures else "") + f" {'time':>7}")
    for name, (_, history, acc, seconds) in results.items():
        print(f"  {name:<14} {history['loss'][-1]:>10.4f} {acc:>9.1%}"
              + (f" {COURSE[name]:>7.1%}" if course_figures else "") + f" {seconds:>6.2f}s")


def main(argv=None):
    args = course.options(__doc__, argv)
    epochs = 500 if args.quick else 5000
    results = run(args.quick)
    report(results, f"moons, course order, {epochs} epochs", course_figures=not args.quick)
    own = run(args.quick, course_order=False)
    report(own, f"moons, fastnn's own shuffling (seed 0), {epochs} epochs", course_figures=False)

    plt = course.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    X, y = course.course_moons()
    for name, (_, history, _, _) in results.items():
        axes[0].plot(history["epoch"], history["loss"], label=name)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training cost")
    axes[0].set_title("2-5-2-1 on moons, lr 0.0007, batches of 64", fontsize=9)
    axes[0].legend()
    for ax, (name, (model, _, acc, _)) in zip(axes[1:], results.items()):
        course.boundary(ax, model, X, y, f"{name}: {acc:.1%} train accuracy")
    course.save(fig, args.out, "optimizers.png")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
