"""Build fastnn's compiled core: the C kernels of src_c/ and the Cython wrapper fastnn/_core.pyx.

OpenMP is used when the compiler has it (probed with a tiny program); otherwise the build warns
loudly and the kernels run serially.  Only baseline flags for the target are used: the AVX2
kernels are selected at run time (function attributes + CPU detection), so a wheel runs on any
x86-64.  Set FASTNN_NO_OPENMP=1 to force the serial build.

FASTNN_SANITIZE=1 builds the extension with AddressSanitizer and UndefinedBehaviorSanitizer (the
sanitizer job of .ci/run): every report aborts the process.  Such a build must be run with the
sanitizer runtime preloaded (LD_PRELOAD of libasan), since the Python interpreter is not built
with it.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _compiler_accepts(flags, code):
    """True when the C compiler builds and links `code` with `flags`."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    tmp = tempfile.mkdtemp(prefix="fastnn-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        cmd = cc + flags + [src, "-o", os.path.join(tmp, "probe")]
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OPENMP_PROBE = """
#include <omp.h>
int main(void) { int n = 0;
#pragma omp parallel reduction(+:n)
  n += 1;
  return n > 0 && omp_get_max_threads() > 0 ? 0 : 1; }
"""

if sys.platform == "win32":
    compile_args, link_args, omp_flags = ["/O2", "/fp:precise"], [], ["/openmp"]
else:
    compile_args = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-std=c11", "-fvisibility=hidden"]
    link_args = []
    omp_flags = ["-fopenmp"]

if os.environ.get("FASTNN_SANITIZE", "") not in ("", "0") and sys.platform != "win32":
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer", "-g"]
    compile_args += sanitize
    link_args += sanitize

use_openmp = os.environ.get("FASTNN_NO_OPENMP", "") in ("", "0") and (
    sys.platform == "win32" or _compiler_accepts(omp_flags, OPENMP_PROBE))
if use_openmp:
    compile_args += omp_flags
    link_args += omp_flags
else:
    warnings.warn(
        "\n*** fastnn: the C compiler has no OpenMP support; building the SERIAL kernels. ***\n"
        "*** Training will use one core. Install a compiler with OpenMP (gcc, or clang with libomp). ***",
        stacklevel=1)

sources = ["fastnn/_core.pyx"] + sorted(glob("src_c/*.c"))
extensions = [
    Extension(
        "fastnn._core",
        sources=sources,
        include_dirs=["src_c", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        depends=sorted(glob("src_c/*.h")),
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
        compile_time_env={"FASTNN_OPENMP": use_openmp},
    ),
)
