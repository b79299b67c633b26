"""The layering of the package, checked: which module may import which, and how big a module is.

The import graph is read from the source (the AST of every module of ``fastnn/``), so that an
import inside a function counts as much as one at the top: a lazy import hides a cycle from the
interpreter, not from a reader.  The one exception is a module-level ``__getattr__`` (PEP 562):
it forwards a name that moved to its new home, runs only when a caller asks for that old name,
and is no dependency of the module's own code.  Importing a submodule runs its package's
``__init__`` first; that edge comes with the import system and is not counted either, but
importing the package ``fastnn`` itself (``import fastnn``, ``from . import __version__``) is
an edge to ``fastnn/__init__.py``, which imports most of the package.
"""
import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

import fastnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent
# Children import the fastnn this process imported (the installed one in CI: a clean clone's
# source tree holds no compiled core), from outside the source tree.
CHILD_ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastnn.__file__)))
PACKAGE = ROOT / "fastnn"

# The modules that may be longer than a newcomer can hold in their head, and why.
LONG_MODULES = {
    "reference.py": "the oracle: a list of short NumPy twins, one per kernel",
    "bench.py": "the benchmark harness moves under benchmarks/ next",
}
MAX_LINES = 600


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
COMPILED = {_module_name(p) for p in PACKAGE.rglob("*.pyx")}


def _is_package(name):
    return MODULES.get(name, pathlib.Path()).name == "__init__.py"


def _imports(name):
    """The absolute names a module imports (wherever in the module), except inside a
    module-level ``__getattr__``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    forwarders = {id(node) for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"}
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()

    def visit(node):
        if id(node) in forwarders:
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES or sub in COMPILED else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _internal_edges(name):
    return {t for t in GRAPH[name] if t in MODULES or t in COMPILED}


def test_no_import_cycle():
    # Depth-first search; a back edge is a cycle, reported as the chain of modules.
    state, stack, cycles = {}, [], []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for target in sorted(_internal_edges(name) - COMPILED):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_io_is_below_model_and_trainer():
    # io reads and writes tensors and metadata; the model and the trainer build themselves
    # from what it returns.
    assert "fastnn.io" in GRAPH["fastnn.model"] and "fastnn.io" in GRAPH["fastnn.trainer"]
    assert not GRAPH["fastnn.io"] & {"fastnn.model", "fastnn.trainer", "fastnn"}


def _closure(name):
    seen, todo = set(), [name]
    while todo:
        for target in _internal_edges(todo.pop()):
            if target not in seen:
                seen.add(target)
                if target in MODULES:
                    todo.append(target)
    return seen


def test_reference_imports_no_compiled_module():
    assert not _closure("fastnn.reference") & (COMPILED | {"fastnn"})
    # And when run: the oracle loaded on its own, outside the package, loads no compiled code.
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('oracle', {str(PACKAGE / 'reference.py')!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "assert not [m for m in sys.modules if m.startswith('fastnn')], sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE, env=CHILD_ENV)


def test_package_imports_no_benchmarks_or_tests():
    for name, targets in GRAPH.items():
        bad = {t for t in targets if t.split(".")[0] in ("benchmarks", "tests", "conftest")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_c_sources_include_no_python_header():
    include = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
    for path in sorted((ROOT / "src_c").glob("*.[ch]")):
        for header in include.findall(path.read_text(encoding="utf-8")):
            assert not (header == "Python.h" or header.startswith("numpy/")
                        or "arrayobject" in header), f"{path.name} includes {header}"


# A __main__ module runs the command when imported.
@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith(".__main__")))
def test_each_module_imports_alone(name):
    subprocess.run([sys.executable, "-c", f"import {name}"], check=True, cwd=HERE, env=CHILD_ENV)


def test_modules_are_short():
    long = {}
    for name, path in MODULES.items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and path.relative_to(PACKAGE).as_posix() not in LONG_MODULES:
            long[name] = n
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_table_agrees_with_the_compiled_enums():
    # The compiled module exports the C enums; the Python tables that cannot import it (the
    # oracle) or name the same things in another form must list the same names, in C order.
    from fastnn import _core, layers, optim
    from fastnn import reference as ref
    assert list(ref.ACTIVATION_FUNCTIONS) + ["softmax"] == list(_core.ACTIVATION_CODES)
    assert list(ref.LOSS_NAMES) == sorted(_core.LOSS_CODES, key=_core.LOSS_CODES.get)
    assert sorted(_core.ACTIVATION_CODES.values()) == list(range(len(_core.ACTIVATION_CODES)))
    assert layers.ACTIVATION_CODES == _core.ACTIVATION_CODES
    assert set(optim._CLASSES) == set(_core.OPTIMIZER_CODES)
