"""Learning-rate decay on the course's moons: time-based, scheduled, exponential and step decay.

The setting of the course's decay exercise: the moons and the 2-5-2-1 network of
``optimizers.py`` (the course's data, weight draws and mini-batch order), mini-batch gradient
descent from lr0 = 0.1 for 5,000 epochs, with the rate changed between epochs:

- constant: ``lr0``;
- time-based, every epoch: ``lr0 / (1 + decay_rate * epoch)`` with decay_rate = 1, which the
  course shows decays far too fast (the rate is lr0 / 5000 by the end);
- scheduled (time-based at a fixed interval): ``lr0 / (1 + decay_rate * floor(epoch / 1000))``;
- exponential: ``lr0 * 0.999 ** epoch``;
- step: ``lr0 * 0.5 ** floor(epoch / 1000)``.

The course updates the rate at the end of an epoch, so epoch e trains with the rate of e - 1;
the schedules below are fastnn's, called with ``max(e - 1, 0)`` to match.

    python examples/lr_decay.py [--out DIR] [--quick]
"""
import sys

import fastnn as fn

import _course as course
from optimizers import ACTIVATIONS, DIMS

LR0 = 0.1


def _course_timing(schedule):
    """The course's timing: the rate of epoch e is computed at the end of epoch e - 1."""
    return lambda lr0, epoch: schedule(lr0, max(epoch - 1, 0))


def schedules(epochs):
    interval = max(epochs // 5, 1)
    return {
        "constant": fn.schedules.Constant(),
        "time-based, every epoch": fn.schedules.InverseTimeDecay(1.0),
        f"scheduled, every {interval}": fn.schedules.InverseTimeDecay(1.0, time_interval=interval),
        "exponential, 0.999^e": fn.schedules.ExponentialDecay(0.999),
        f"step, halved every {interval}": fn.schedules.StepDecay(interval, factor=0.5),
    }


def run(quick=False):
    """``{name: (model, history, accuracy)}``."""
    X, y = course.course_moons()
    epochs = 1000 if quick else 5000
    results = {}
    for name, schedule in schedules(epochs).items():
        model = course.mlp(DIMS, ACTIVATIONS)
        model.set_weights(course.course_weights(DIMS, course.he))
        trainer = fn.Trainer(model, optimizer=fn.optim.SGD(LR0), batch_size=64,
                             schedule=_course_timing(schedule))
        history = course.fit_in_course_order(trainer, X, y, epochs)
        results[name] = (model, history, course.accuracy(model, X, y))
    return results


def main(argv=None):
    args = course.options(__doc__, argv)
    results = run(args.quick)
    epochs = len(next(iter(results.values()))[1])
    print(f"moons, 2-5-2-1, mini-batch gradient descent from lr0 = {LR0}, {epochs} epochs")
    print(f"  {'schedule':<26} {'last lr':>9} {'final cost':>10} {'accuracy':>9}")
    for name, (_, history, acc) in results.items():
        print(f"  {name:<26} {history['lr'][-1]:>9.2e} {history['loss'][-1]:>10.4f} "
              f"{acc:>9.1%}")
    plt = course.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, (_, history, acc) in results.items():
        axes[0].semilogy(history["epoch"], history["lr"], label=name)
        axes[1].plot(history["epoch"], history["loss"], label=f"{name} ({acc:.1%})")
    axes[0].set_ylabel("learning rate (log)")
    axes[1].set_ylabel("training cost")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    course.save(fig, args.out, "lr_decay.png")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
