"""Batch norm on a deeper network: 8 hidden layers of 64 relu units on the digits.

Each hidden layer normalises ``Z = X W`` over the mini-batch, ``Z_norm = (Z - mu) /
sqrt(sigma^2 + eps)``, then scales and shifts it, ``gamma * Z_norm + beta``, before the relu.
The course's claim: the inputs of every layer keep a steady scale, so a deep network trains
quickly and is much less sensitive to its initial weights.  Here the same 8 x 64 network is
trained for 20 epochs of mini-batch gradient descent (lr 0.1, batches of 64) on the handwritten
digits (1,797 8x8 images, shipped with fastnn), with small initial weights (N(0, 1) * 0.01) and
with He's, each without and with batch norm.  With small weights the signal dies out over 8
layers and plain gradient descent stays at the cost of guessing (log 10 = 2.303); batch norm
trains the same network to a low dev error.  With He's weights the network trains either way.

    python examples/batch_norm.py [--out DIR] [--quick]
"""
import sys

import fastnn as fn

import _course as course


def data():
    X, y = fn.datasets.digits()
    X_train, X_dev, _, y_train, y_dev, _ = fn.data.train_dev_test_split(
        X, y, dev_size=0.2, test_size=0.2, seed=0, stratify=True)
    return X_train, y_train, X_dev, y_dev


def run(quick=False):
    """``{name: (history, dev error)}``."""
    X, y, X_dev, y_dev = data()
    epochs = 8 if quick else 20
    standardizer = fn.data.Standardizer().fit(X)
    results = {}
    for init in ("random", "he"):
        for batch_norm in (False, True):
            model = fn.MLP(64, [fn.Dense(64, "relu", init=init, batch_norm=batch_norm)
                                for _ in range(8)] + [fn.Dense(10, "softmax")], seed=0)
            model.standardizer = standardizer
            trainer = fn.Trainer(model, optimizer=fn.optim.SGD(0.1), batch_size=64, seed=0)
            history = trainer.fit(X, y, epochs=epochs, validation_data=(X_dev, y_dev),
                                  progress=False)
            name = f"{'small' if init == 'random' else 'He'} init, " \
                   f"{'batch norm' if batch_norm else 'no batch norm'}"
            results[name] = (history, history["val_error"][-1])
    return results


def main(argv=None):
    args = course.options(__doc__, argv)
    results = run(args.quick)
    epochs = len(next(iter(results.values()))[0])
    print(f"digits, 64-(64 relu x 8)-10, gradient descent lr 0.1, batches of 64, {epochs} epochs")
    print(f"  {'network':<30} {'first cost':>10} {'last cost':>9} {'dev error':>9}")
    for name, (history, dev_error) in results.items():
        print(f"  {name:<30} {history['loss'][0]:>10.3f} {history['loss'][-1]:>9.3f} "
              f"{dev_error:>9.1%}")
    plt = course.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, (history, dev_error) in results.items():
        ax.plot(history["epoch"], history["loss"], label=f"{name} (dev error {dev_error:.1%})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cost")
    ax.legend(fontsize=7)
    course.save(fig, args.out, "batch_norm.png")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
