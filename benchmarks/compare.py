"""Head-to-head comparison of fastnn with PyTorch, scikit-learn and fastnn's NumPy reference.

A thin wrapper: the comparison lives in :mod:`fastnn.bench` (also ``fastnn bench`` and
``python -m fastnn.bench``).  ``python benchmarks/compare.py --help`` lists the options.
"""
import sys

from fastnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
