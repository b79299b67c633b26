"""Build fastnn's compiled core: the C kernels of src_c/ and the Cython wrapper fastnn/_core.pyx.

OpenMP is used when the compiler has it (probed with a tiny program); otherwise the build warns
loudly and the kernels run serially.  Only baseline flags for the target are used: the AVX2
kernels are selected at run time (function attributes + CPU detection), so a wheel runs on any
x86-64.  Set FASTNN_NO_OPENMP=1 to force the serial build.

The OpenMP runtime is the compiler's own (libgomp with gcc) unless FASTNN_OPENMP_LIB names another
shared library to link instead: LLVM's libomp implements GCC's GOMP_ entry points, so gcc's
-fopenmp code runs on it.  wheels/build.sh links a libomp built for an old glibc this way, because
the libgomp of a current distribution would raise the wheel's glibc floor.

On CPython 3.11 and later the extension is built against the Python Limited API of 3.11 (one
`abi3` module and wheel for every later CPython too); earlier Pythons, free-threaded builds (which
have no Limited API), Cython older than 3.1 and FASTNN_LIMITED_API=0 get a build for the running
interpreter only.  3.11 is the floor because the buffer protocol that typed memoryviews use
(Py_buffer) entered the Limited API in 3.11.

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
from Cython import __version__ as cython_version
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
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return done.returncode == 0
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
    # The kernels use GCC and Clang extensions (vector types, per-function target attributes)
    # and OpenMP 4.5 clauses: MSVC, which setuptools uses on Windows, compiles none of them.
    sys.exit("fastnn builds with gcc or clang on Linux and macOS; MSVC cannot compile its "
             "kernels. On Windows, install it under WSL.")
compile_args = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-std=c11", "-fvisibility=hidden"]
link_args = []
# Apple's clang has OpenMP but no runtime and no omp.h: only with FASTNN_OPENMP_LIB (libomp).
omp_flags = ["-Xpreprocessor", "-fopenmp"] if sys.platform == "darwin" else ["-fopenmp"]

if os.environ.get("FASTNN_SANITIZE", "") not in ("", "0"):
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer", "-g"]
    compile_args += sanitize
    link_args += sanitize

# Another OpenMP runtime than the compiler's: compiled with the compiler's flags, linked with the
# library itself (not -fopenmp, which would add libgomp) and an RPATH to find it before
# auditwheel grafts it into the wheel.
omp_lib = os.environ.get("FASTNN_OPENMP_LIB", "")
omp_link = omp_flags
if omp_lib:
    if not os.path.isfile(omp_lib):
        sys.exit(f"FASTNN_OPENMP_LIB must name an OpenMP shared library, got {omp_lib!r}")
    omp_lib = os.path.abspath(omp_lib)
    omp_link = [omp_lib, "-Wl,-rpath," + os.path.dirname(omp_lib)]
    if sys.platform == "darwin":       # the runtime's own omp.h, beside its lib/ (a prefix)
        omp_flags = omp_flags + ["-I" + os.path.join(os.path.dirname(os.path.dirname(omp_lib)),
                                                     "include")]

use_openmp = os.environ.get("FASTNN_NO_OPENMP", "") in ("", "0") and (
    _compiler_accepts(omp_flags + omp_link, OPENMP_PROBE))
if use_openmp:
    compile_args += omp_flags
    link_args += omp_link
elif omp_lib:
    sys.exit(f"FASTNN_OPENMP_LIB={omp_lib}: the compiler cannot build an OpenMP program with it")
else:
    warnings.warn(
        "\n*** fastnn: the C compiler has no OpenMP support; building the SERIAL kernels. ***\n"
        "*** Training will use one core. Install a compiler with OpenMP (gcc, or clang with "
        "libomp). ***",
        stacklevel=1)

LIMITED_API = "0x030B0000"     # 3.11: Py_buffer (typed memoryviews) is in the Limited API
limited_api = (sys.version_info >= (3, 11)
               and not sysconfig.get_config_var("Py_GIL_DISABLED")
               and tuple(int(v) for v in cython_version.split(".")[:2]) >= (3, 1)
               and os.environ.get("FASTNN_LIMITED_API", "") != "0")
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
if limited_api:
    macros.append(("Py_LIMITED_API", LIMITED_API))

sources = ["fastnn/_core.pyx"] + sorted(glob("src_c/*.c"))
extensions = [
    Extension(
        "fastnn._core",
        sources=sources,
        include_dirs=["src_c", np.get_include()],
        define_macros=macros,
        py_limited_api=limited_api,
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
    # The wheel's tag: cp311-abi3 (installable on every CPython >= 3.11) for a Limited API build.
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if limited_api else {},
)
