"""What this fastnn is built with and runs on: :func:`show_config`.

Design: a report only; every fact comes from the compiled core (``fastnn._core``), which decides
the instruction set once per process (``src_c/cpu.c``: ``FASTNN_ISA``, else the best the CPU runs).
"""
import warnings

from . import _core
from ._threads import get_num_threads
from ._version import __version__

__all__ = ["show_config"]


def _warn_if_isa_fell_back():
    """FASTNN_ISA asked for an instruction set this CPU (or build) cannot run: say what runs."""
    requested = _core.isa_requested()
    if requested is not None and requested != _core.get_isa():
        warnings.warn(f"FASTNN_ISA={requested!r} is not available here "
                      f"(supported: {', '.join(_core.isas_supported())}); "
                      f"using {_core.get_isa()!r}", RuntimeWarning, stacklevel=3)


def show_config(print_out=True):
    """Print and return how fastnn is built and what it runs on this machine.

    Parameters
    ----------
    print_out : bool, default True
        Print the report; the dict is returned either way.

    Returns
    -------
    dict
        ``version``; ``openmp`` (bool) and ``threads`` (what fastnn's calls use now);
        ``isa_compiled`` (instruction sets with kernels in this build), ``isa_supported`` (of
        those, what this CPU and OS run), ``isa_requested`` (``FASTNN_ISA``, or None) and
        ``isa`` (in use); ``gemm_kernel`` (its GEMM table) and ``gemm_tiles``: per compiled
        instruction set and dtype, the micro-tile ``mr`` x ``nr`` and cache blocks ``kc``, ``mc``,
        ``nc`` (elements); ``limited_api`` (the Python Limited API version of an abi3 build, or
        None) and ``openmp_runtime`` (the OpenMP library the kernels call, as loaded).
    """
    build = _core.build_info()
    cfg = {
        "version": __version__,
        "openmp": _core.has_openmp(),
        "openmp_runtime": build["openmp_runtime"],
        "limited_api": build["limited_api"],
        "threads": get_num_threads(),
        "isa_compiled": list(_core.isas_compiled()),
        "isa_supported": list(_core.isas_supported()),
        "isa_requested": _core.isa_requested(),
        "isa": _core.get_isa(),
        "gemm_kernel": _core.gemm_kernel_name(),
        "gemm_tiles": {isa: {dt: _core.gemm_tile(isa, size)
                             for dt, size in (("float32", 4), ("float64", 8))}
                       for isa in _core.isas_compiled()},
    }
    if print_out:
        lines = [f"fastnn {cfg['version']}",
                 f"  OpenMP:          {'yes' if cfg['openmp'] else 'no (serial kernels)'}, "
                 f"{cfg['threads']} thread(s); runtime {cfg['openmp_runtime']}",
                 "  Python API:      "
                 + (f"Limited API {cfg['limited_api']} (abi3)" if cfg["limited_api"]
                    else "this Python version only"),
                 f"  ISAs compiled:   {', '.join(cfg['isa_compiled'])}",
                 f"  ISAs supported:  {', '.join(cfg['isa_supported'])}",
                 f"  ISA in use:      {cfg['isa']}"
                 + (f" (FASTNN_ISA={cfg['isa_requested']})" if cfg["isa_requested"] else ""),
                 "  GEMM tiles (mr x nr; kc, mc, nc):"]
        for isa, per_dtype in cfg["gemm_tiles"].items():
            for dt, t in per_dtype.items():
                lines.append(f"    {isa:8s}{dt:8s} {t['mr']:2d} x {t['nr']:2d}; "
                             f"{t['kc']}, {t['mc']}, {t['nc']}")
        print("\n".join(lines))
    return cfg
