"""Links of the built book: every local href/src names a file, every #anchor an id.

The check is ``tools/check_book.py``'s (``python tools/check_book.py`` runs it with
screenshots). It reads the book in ``_build/html``, so it runs only where the book
has been built (``python3 tasks.py book``) and is skipped elsewhere; the small
fixture test below always runs.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "_build" / "html"


def _check_book():
    spec = importlib.util.spec_from_file_location(
        "check_book", ROOT / "tools" / "check_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_links = _check_book().check_links


def test_check_links_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.js").write_text("")
    (tmp_path / "_static" / "template.html").write_text('<a href="{{ nowhere }}">')
    (tmp_path / "index.html").write_text(
        '<h1 id="top">t</h1><a href="#top">ok</a> <a href="#gone">bad</a>'
        '<a href="sub/page.html#sec">ok</a> <a href="sub/page.html#nope">bad</a>'
        '<a href="https://example.org/x.html#y">external</a> <a href="#">top</a>'
        '<script src="_static/x.js?v=1"></script> <img src="_static/missing.png">'
        '<a href="sub/">folder</a> <a href="mailto:a@b.c">mail</a>')
    (tmp_path / "sub" / "page.html").write_text(
        '<section id="sec"><a name="old">x</a><a href="../index.html#top">up</a>'
        '<a href="#old">ok</a></section>')
    assert check_links(tmp_path) == [
        "index.html: missing anchor #gone",
        "index.html: missing anchor #nope (in sub/page.html)",
        "index.html: missing file _static/missing.png",
        "index.html: missing file sub/",
    ]


@pytest.mark.skipif(not (BUILT / "index.html").exists(),
                    reason="no built book in _build/html (python3 tasks.py book)")
def test_built_book_has_no_broken_links():
    problems = check_links(BUILT)
    assert not problems, (f"{len(problems)} broken links in {BUILT}:\n  "
                          + "\n  ".join(problems))
