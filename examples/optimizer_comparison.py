"""The course's optimizer comparison: mini-batch gradient descent, momentum and Adam.

The same 3-layer network (2-5-2-1: relu, relu, sigmoid; He initialisation) is trained on the
``moons`` data (300 points, noise 0.2) for the same number of epochs with mini-batches of 64,
once per optimizer, and the final cost and training accuracy are printed as a table.  With the
course's tiny learning rate (0.0007) momentum barely differs from plain mini-batch gradient
descent, while Adam reaches a much lower cost and a higher accuracy.

    python examples/optimizer_comparison.py
    python examples/optimizer_comparison.py --epochs 5000 --seed 3 --plot costs.png
"""
import argparse
import time

import numpy as np

import fastnn as fn


def optimizers(lr, beta, beta1, beta2):
    return {
        "mini-batch GD": fn.optim.SGD(lr),
        f"momentum (beta={beta})": fn.optim.Momentum(lr, beta=beta),
        "Adam": fn.optim.Adam(lr, beta1=beta1, beta2=beta2),
    }


def compare(epochs=5000, seed=0, lr=0.0007, batch_size=64, n=300, noise=0.2, beta=0.9,
            beta1=0.9, beta2=0.999, dtype="float32"):
    """Train one model per optimizer; returns {name: (history, accuracy, seconds)}."""
    X, y = fn.datasets.moons(n=n, seed=seed, noise=noise)
    results = {}
    for name, opt in optimizers(lr, beta, beta1, beta2).items():
        model = fn.MLP(2, [fn.Dense(5, "relu"), fn.Dense(2, "relu"), fn.Dense(1, "sigmoid")],
                       dtype=dtype, seed=seed)          # the same initial weights for each
        trainer = fn.Trainer(model, optimizer=opt, batch_size=batch_size, seed=seed)
        t0 = time.perf_counter()
        history = trainer.fit(X, y, epochs=epochs, progress=False)
        seconds = time.perf_counter() - t0
        accuracy = float(np.mean(model.predict(X) == y))
        results[name] = (history, accuracy, seconds)
    return results


def print_table(results, epochs):
    width = max(len(name) for name in results)
    print(f"{'optimizer':<{width}}  {'final cost':>10}  {'accuracy':>8}  {'time':>7}")
    for name, (history, accuracy, seconds) in results.items():
        print(f"{name:<{width}}  {history['loss'][-1]:>10.4f}  {accuracy:>8.1%}  "
              f"{seconds:>6.2f}s")
    print(f"({epochs} epochs each)")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (history, _, _) in results.items():
        ax.plot(history["epoch"], history["loss"], label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cost")
    ax.set_title("moons, 2-5-2-1 network, mini-batches of 64")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"cost curves written to {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5000, help="epochs per optimizer (course: 5000)")
    p.add_argument("--seed", type=int, default=0, help="data and initialisation seed")
    p.add_argument("--lr", type=float, default=0.0007, help="learning rate (course: 0.0007)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--plot", metavar="PNG", help="write the cost curves (needs matplotlib)")
    args = p.parse_args(argv)
    results = compare(epochs=args.epochs, seed=args.seed, lr=args.lr,
                      batch_size=args.batch_size, dtype=args.dtype)
    print_table(results, args.epochs)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
