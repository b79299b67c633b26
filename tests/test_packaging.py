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


@pytest.mark.parametrize("var, value", [("FASTNN_ISA", "generic"), ("FASTNN_GEMM_KERNEL", "generic")])
def test_forced_generic_kernel_in_a_subprocess(var, value):
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_ISA", "FASTNN_GEMM_KERNEL")}
    env[var] = value
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
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "fastnn").glob("*.py")}
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
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
                   check=True)
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
