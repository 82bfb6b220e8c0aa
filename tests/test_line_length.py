"""Code lines fit the page: at most 88 characters in minidr/, tests/ and tasks.py.

The book quotes the library and readers study it side by side with the chapters,
so long calls are wrapped by hand at natural argument boundaries rather than left
to run off the screen. The notebooks' code cells are checked in test_notebooks.py.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the project's line length, as in `ruff check --select E501 --line-length 88`
MAX_LINE = 88

NOT_YET_CHECKED: set[str] = set()         # every file is checked


def checked_files() -> list[Path]:
    """Every minidr/**/*.py, tests/*.py and tasks.py, less ``NOT_YET_CHECKED``."""
    files = [*(ROOT / "minidr").rglob("*.py"), *(ROOT / "tests").glob("*.py"),
             ROOT / "tasks.py"]
    return sorted(p for p in files
                  if p.relative_to(ROOT).as_posix() not in NOT_YET_CHECKED)


def long_lines(path: Path) -> list[str]:
    """``file:line: (length > MAX_LINE) text`` for each line of ``path``
    that is too long."""
    where = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    return [f"{where}:{n}: ({len(line)} > {MAX_LINE}) {line.strip()}"
            for n, line in enumerate(lines, start=1) if len(line) > MAX_LINE]


def test_code_lines_fit_the_page():
    files = checked_files()
    assert ROOT / "tasks.py" in files and ROOT / "minidr" / "__init__.py" in files
    problems = [problem for path in files for problem in long_lines(path)]
    assert not problems, (f"{len(problems)} lines longer than {MAX_LINE} characters; "
                          "wrap them by hand:\n" + "\n".join(problems))


def test_a_long_line_is_reported_with_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    path = tmp_path / "example.py"
    path.write_text("short = 1\n" + "x = '" + "y" * 90 + "'\n", encoding="utf-8")
    assert long_lines(path) == [f"example.py:2: (96 > {MAX_LINE}) x = '{'y' * 90}'"]
