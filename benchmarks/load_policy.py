"""How fastnn's OpenMP wait policy behaves on a quiet machine and beside one busy process.

An OpenMP thread that reaches a barrier first spins before it sleeps.  fastnn loads its runtime
with a short spin (``fastnn/_threads.py``); this script measures what that costs on a quiet
machine and what it saves when another process keeps one core busy, against the runtime's own
default spin (``GOMP_SPINCOUNT=300000``) and against one thread.

Each measurement is a fresh interpreter that trains (or predicts) and prints its time; rounds of
every configuration are interleaved and medians reported.  The two ratios checked:

* busy:  default settings / the better of 1 thread and the default, beside a busy process (<= 1.1)
* quiet: default settings / the runtime's default spin on a quiet machine             (<= 1.03)

Usage: ``python benchmarks/load_policy.py [--rounds 5]`` (unset OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE in the command to run as a user's machine would).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = {
    # MNIST-shaped net, batch 128, 20,000 rows (a third of an epoch)
    "mnist-b128": """
import time, numpy as np, fastnn as fn
X, y = fn.datasets.synthetic_mnist(20000, seed=0)
X = X.astype(np.float32)
m = fn.MLP(784, [fn.Dense(512), fn.Dense(256), fn.Dense(10, "softmax")])
t = fn.Trainer(m, batch_size=128)
t0 = time.perf_counter(); t.fit(X, y, epochs=1, progress=False); print(time.perf_counter() - t0)
""",
    # the `fastnn train` default: digits, 64-128-64-10, batch 32
    "digits": """
import time, numpy as np, fastnn as fn
X, y = fn.datasets.digits()
m = fn.MLP(64, [fn.Dense(128), fn.Dense(64), fn.Dense(10, "softmax")])
t = fn.Trainer(m, batch_size=32)
t0 = time.perf_counter(); t.fit(X, y, epochs=20, progress=False); print(time.perf_counter() - t0)
""",
    # inference, 10,000 rows of the MNIST-shaped net
    "predict-10k": """
import time, numpy as np, fastnn as fn
X = np.random.default_rng(0).standard_normal((10000, 784)).astype(np.float32)
m = fn.MLP(784, [fn.Dense(512), fn.Dense(256), fn.Dense(10, "softmax")])
m.predict_proba(X)
ts = []
for _ in range(5):
    t0 = time.perf_counter(); m.predict_proba(X); ts.append(time.perf_counter() - t0)
print(sorted(ts)[2])
""",
}

CONFIGS = {
    "default": {},                                   # fastnn's own policy, all cores
    "runtime-spin": {"GOMP_SPINCOUNT": "300000"},    # the OpenMP runtime's default spin
    "passive": {"OMP_WAIT_POLICY": "passive"},
    "1-thread": {"FASTNN_NUM_THREADS": "1"},
}

BUSY = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


def run_case(code, env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "KMP_BLOCKTIME",
                        "FASTNN_NUM_THREADS")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    return float(out.stdout.split()[-1])


def measure(rounds, busy):
    times = {(c, k): [] for c in CASES for k in CONFIGS}
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        time.sleep(0.5 if busy else 0.0)
        for _ in range(rounds):
            for case, code in CASES.items():
                for name, env in CONFIGS.items():
                    times[(case, name)].append(run_case(code, env))
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return {key: statistics.median(v) for key, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="write the medians to this file")
    args = p.parse_args(argv)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown CPU")
    print(f"CPU: {cpu}; {os.cpu_count()} logical CPUs; loadavg at start "
          f"{open('/proc/loadavg').read().split()[0]}")
    result = {"quiet": measure(args.rounds, False), "busy": measure(args.rounds, True)}
    print(f"{'case':<12} {'condition':<6} " + " ".join(f"{k:>13}" for k in CONFIGS)
          + "   ratio (target)")
    for case in CASES:
        for cond in ("quiet", "busy"):
            med = result[cond]
            row = " ".join(f"{med[(case, k)]:>12.3f}s" for k in CONFIGS)
            if cond == "quiet":
                ratio = med[(case, "default")] / med[(case, "runtime-spin")]
                note = f"default/runtime-spin {ratio:.3f} (<= 1.03)"
            else:
                best = min(med[(case, "1-thread")], med[(case, "default")])
                ratio = med[(case, "default")] / best
                note = f"default/best {ratio:.3f} (<= 1.1)"
            print(f"{case:<12} {cond:<6} {row}   {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({cond: {f"{c}/{k}": v for (c, k), v in med.items()}
                       for cond, med in result.items()}, f, indent=1)


if __name__ == "__main__":
    main()
