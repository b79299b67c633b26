"""Test helpers: the instruction-set variants of the kernels (src_c/cpu.c) as pytest parameters.

Every ISA fastnn knows is a parameter; those this CPU (or build) cannot run skip, with a reason
that names the ISA, so a report shows what was not tested here.  ``using_isa`` switches the
variant in this process and restores the previous one.
"""
import contextlib
import itertools

import pytest

from fastnn import _core

ALL_ISAS = _core.isa_names()
RUNNABLE = _core.isas_supported()


def _skip_unless_runnable(*names):
    missing = [n for n in names if n not in RUNNABLE]
    return pytest.mark.skipif(bool(missing),
                              reason=f"this CPU or build cannot run {', '.join(missing)}")


ISA_PARAMS = [pytest.param(n, marks=_skip_unless_runnable(n), id=n) for n in ALL_ISAS]
PAIR_PARAMS = [pytest.param((a, b), marks=_skip_unless_runnable(a, b), id=f"{a}-{b}")
               for a, b in itertools.combinations(ALL_ISAS, 2)]


@contextlib.contextmanager
def using_isa(name):
    """Run the block with the kernels of ISA `name` (in this process)."""
    prev = _core.set_isa(name)
    try:
        yield name
    finally:
        _core.set_isa(prev)
