"""The documentation's Python snippets run: every ```python block of a page, in order, in one
namespace per page (as a reader pasting them one after the other would), in a scratch folder."""
import pathlib
import re

import pytest

import fastnn as fn

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.rglob("*.md")) if DOCS.is_dir() else []
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page):
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_tutorial_pages_have_snippets():
    if not PAGES:
        pytest.skip("docs/ is not shipped here")
    tutorial = [p for p in PAGES if p.parent.name == "tutorial"]
    assert len(tutorial) >= 15
    assert all(blocks(p) for p in tutorial), [p.name for p in tutorial if not blocks(p)]


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)],
                         ids=lambda p: str(p.relative_to(DOCS)))
def test_snippets_run(page, tmp_path, monkeypatch, capsys):
    text = page.read_text(encoding="utf-8")
    if "sklearn" in text:
        pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    try:
        for i, code in enumerate(blocks(page)):
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
    finally:
        fn.set_num_threads(None)
    assert capsys.readouterr().out  # every page's snippets show their results
