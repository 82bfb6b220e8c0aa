"""The committed chapters: what the published book shows must be real, complete output.

The book is built from the notebooks' kept outputs (it does not execute them),
so these checks guard what a reader sees: every code cell ran, without errors,
figures were kept, and the outputs come from a real profile (cpu or gpu), not
the ci smoke profile.
"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks")
                   .glob("*.ipynb"))


def _outputs(nb):
    return [o for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", [])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kept_outputs_are_complete(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    visible = [c for c in code
               if "remove-cell" not in c.get("metadata", {}).get("tags", [])
               and "parameters" not in c.get("metadata", {}).get("tags", [])]
    assert all(c.get("execution_count") for c in visible), (
        f"{path.name}: a code cell never ran")
    outputs = _outputs(nb)
    assert not [o for o in outputs if o["output_type"] == "error"], (
        f"{path.name}: kept an error")
    assert any("image/png" in o.get("data", {}) for o in outputs), (
        f"{path.name}: no figure kept")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kept_outputs_come_from_a_real_profile(path):
    text = "".join("".join(o.get("text", ""))
                   for o in _outputs(json.loads(path.read_text(encoding="utf-8"))))
    profiles = set(re.findall(r"^profile:? (\w+)", text, flags=re.M))
    assert profiles and profiles <= {"cpu", "gpu", "colab"}, (
        f"{path.name}: kept outputs from {profiles}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kept_outputs_hold_no_progress_walls(path):
    """One final line per loop:
    no carriage-return redraws, no wall of stream outputs."""
    from minidr.core.notebook_outputs import stream_problems

    problems = stream_problems(json.loads(path.read_text(encoding="utf-8")))
    assert not problems, (f"{path.name}: {problems[:3]} "
                          "(re-run `python3 tasks.py execute`)")


MAX_LINE = 88  # the project's line length for code, as in tests/test_line_length.py


def long_code_lines(nb: dict, name: str) -> list[str]:
    """``name: cell i, line n: (length > MAX_LINE) text`` for each code line too long.

    ``i`` is the cell's index in the notebook (markdown cells count), ``n`` the
    line's number within the cell, from 1.
    """
    return [f"{name}: cell {i}, line {n}: ({len(line)} > {MAX_LINE}) {line.strip()}"
            for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
            for n, line in enumerate("".join(cell["source"]).splitlines(), start=1)
            if len(line) > MAX_LINE]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_fit_the_page(path):
    """The book prints code cells as they are: no line runs off the page."""
    problems = long_code_lines(json.loads(path.read_text(encoding="utf-8")), path.name)
    assert not problems, (f"{len(problems)} code lines longer than {MAX_LINE} "
                          "characters; wrap them by hand:\n" + "\n".join(problems))


def test_a_long_code_line_is_reported_with_cell_and_line():
    code = ["x = 1\n", "y = '" + "a" * 90 + "'"]
    nb = {"cells": [{"cell_type": "markdown", "source": ["z" * 100]},
                    {"cell_type": "code", "source": code}]}
    assert long_code_lines(nb, "nb.ipynb") == [
        f"nb.ipynb: cell 1, line 2: (96 > {MAX_LINE}) y = '{'a' * 90}'"]
