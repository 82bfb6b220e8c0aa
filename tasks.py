#!/usr/bin/env python3
"""Set up and run the book's two jobs with nothing but python3.

    python3 tasks.py book    # create .venv, install, build the HTML book into
                             # _build/html
    python3 tasks.py test    # create .venv, install, run unit tests, notebooks (nbval),
                             # strict book build
    python3 tasks.py execute [NOTEBOOK ...]   # re-run notebooks in place (default
                                              # profile: cpu), refreshing the outputs
                                              # the book shows

The virtual environment is reinstalled only when requirements.txt or
pyproject.toml change. Environment: MINIDR_DATA (default: ../shared/data/
msmarco-passage if it exists), MINIDR_PROFILE (default for `test`: ci).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".minidr-installed"
CELL_TIMEOUT = 600  # seconds per notebook cell under nbval


def sh(*cmd: str | Path, env: dict | None = None) -> None:
    shown = (str(c) if len(str(c)) < 80 else str(c).strip().splitlines()[0] + " ..."
             for c in cmd)
    print("+", " ".join(shown), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=True)


def ensure_env() -> None:
    """Create .venv and install requirements.txt and minidr (editable),
    once per change."""
    digest = hashlib.sha256(b"".join(
        (ROOT / f).read_bytes()
        for f in ("requirements.txt", "pyproject.toml"))).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = (BIN / "python", "-m", "pip")
    sh(*pip, "install", "--upgrade", "--quiet", "pip")
    sh(*pip, "install", "--quiet", "-r", "requirements.txt")
    sh(*pip, "install", "--quiet", "--no-deps", "-e", ".")
    STAMP.write_text(digest)


def run_env(profile: str | None) -> dict:
    env = dict(os.environ)
    shared = ROOT.parent / "shared" / "data" / "msmarco-passage"
    if "MINIDR_DATA" not in env and shared.is_dir():
        env["MINIDR_DATA"] = str(shared)
    if profile and "MINIDR_PROFILE" not in env:
        env["MINIDR_PROFILE"] = profile
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def book(env: dict) -> None:
    sh(BIN / "jupyter-book", "build", ROOT, "--warningiserror", "--nitpick",
       "--keep-going", env=env)
    print(f"\nThe book: {ROOT / '_build' / 'html' / 'index.html'}")


def test(env: dict) -> None:
    """Unit tests and doctests, every notebook and every solution under nbval, the
    expected scores, the book."""
    py = BIN / "python"
    sh(py, "-m", "pytest", "tests", "minidr", "--doctest-modules", "-q", env=env)
    results = ROOT / "_build" / "ci-results"  # this run's records, nothing stale
    shutil.rmtree(results, ignore_errors=True)
    nb_env = {**env, "MINIDR_RESULTS": str(results), "MINIDR_PROGRESS": "final"}
    sh(py, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
       f"--nbval-cell-timeout={CELL_TIMEOUT}", "-p", "no:cacheprovider", "notebooks",
       "solutions", "-q", env=nb_env)    # the teachers' solutions run under ci too
    sh(py, "-m", "minidr", "check-scores", "--profile", env.get("MINIDR_PROFILE", "ci"),
       "--results", results, env=env)
    book(env)


EXECUTE = """
import os, sys, time, nbformat
from pathlib import Path
from nbclient import NotebookClient
from minidr.core.notebook_outputs import clean_outputs
from minidr.core.runtimes import record_runtime, runtime_line
profile = os.environ.get("MINIDR_PROFILE", "cpu")
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    NotebookClient(nb, timeout=None, kernel_name="python3",
                   resources={"metadata": {"path": "notebooks"}}).execute()
    seconds = time.time() - start
    record_runtime(Path(path).stem, profile, seconds)
    for cell in nb.cells:  # the header's run-time line: recomputed with this run's time
        if "chapter-runtime" in cell.metadata.get("tags", []):
            line = runtime_line(Path(path).stem) + "\\n"    # what the cell prints
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=line)]
    clean_outputs(nb)
    nbformat.write(nb, path)
    print(f"executed {path} in {seconds:.0f} s", flush=True)
"""


def execute(env: dict, notebooks: list[str]) -> None:
    """Run notebooks in place under $MINIDR_PROFILE (default cpu):
    the outputs the book shows.

    Loops print one final line each (MINIDR_PROGRESS=final), and the saved
    outputs are cleaned of any progress stream a library still wrote.
    """
    paths = notebooks or sorted(str(p.relative_to(ROOT))
                                for p in (ROOT / "notebooks").glob("*.ipynb"))
    sh(BIN / "python", "-c", EXECUTE, *paths, env={**env, "MINIDR_PROGRESS": "final"})


def main(argv: list[str]) -> int:
    if (not argv or argv[0] not in ("book", "test", "execute")
            or (argv[0] != "execute" and len(argv) > 1)):
        print(__doc__)
        return 2
    ensure_env()
    if argv[0] == "book":
        book(run_env(None))
    elif argv[0] == "test":
        test(run_env("ci"))
    else:
        execute(run_env("cpu"), argv[1:])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as e:
        print(f"\nfailed: {' '.join(map(str, e.cmd))} (exit {e.returncode})",
              file=sys.stderr)
        sys.exit(e.returncode or 1)
