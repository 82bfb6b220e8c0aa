"""The repository's URL comes from one place: ``_config.yml``'s ``repository.url``.

The book's launch buttons and repository button are built from it; the README, the
book's pages and the notebooks (their "Open in Colab" badges, the Colab setup cell
that clones the repository) write it out by hand. Move or rename the repository
and this test lists every place that still names the old one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# The forms that name a repository: github.com/<owner>/<repo>, Colab's
# colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>, and the
# GitHub Pages site <owner>.github.io/<repo>.
NAME = r"[A-Za-z0-9_.-]+"
FORMS = {
    "GitHub": re.compile(rf"https?://(?:www\.)?github\.com/({NAME})/({NAME})"),
    "Colab": re.compile(rf"colab\.research\.google\.com/github/({NAME})/({NAME})"
                        rf"(?:/blob/({NAME})/([^\s)\]\"'`]+))?"),
    "Pages": re.compile(rf"https?://({NAME})\.github\.io/({NAME})"),
}
# GitHub repositories other than this one that a page may cite on purpose, as
# "owner/repo". Anything else that looks like a repository URL must be ours.
OTHER_REPOSITORIES: set[str] = set()


def configured() -> tuple[str, str]:
    """(``owner/repo``, branch) from _config.yml's ``repository`` section."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url, branch = config["repository"]["url"], config["repository"]["branch"]
    match = FORMS["GitHub"].fullmatch(url.rstrip("/"))
    assert match, f"_config.yml: repository.url {url!r} is not a GitHub repository"
    return f"{match[1]}/{match[2]}", branch


def texts() -> list[tuple[str, str]]:
    """(where, text): README.md, book/*.md, and every notebook cell's source."""
    out = [("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))]
    for page in sorted((ROOT / "book").glob("*.md")):
        out.append((f"book/{page.name}", page.read_text(encoding="utf-8")))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for number, cell in enumerate(cells, start=1):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            out.append((f"{path.relative_to(ROOT).as_posix()} cell {number}", source))
    return out


def repository(owner: str, name: str) -> str:
    name = name.rstrip(".")  # a URL that ends a sentence
    return f"{owner}/{name.removesuffix('.git')}"


def wrong_urls(repo: str, branch: str) -> list[str]:
    """Each URL that names another repository, another branch, or a missing file."""
    problems = []
    for where, text in texts():
        for form, pattern in FORMS.items():
            for match in pattern.finditer(text):
                found = repository(match[1], match[2])
                if form == "Pages":  # owner.github.io is case-insensitive
                    found, expected = found.lower(), repo.lower()
                else:
                    expected = repo
                if found != expected and found not in OTHER_REPOSITORIES:
                    problems.append(
                        f"{where}: {match[0]} names {found}, not {expected}")
                elif form == "Colab" and match[3]:
                    path = match[4].rstrip(".>")  # a sentence's end; an autolink's
                    if match[3] != branch:
                        problems.append(f"{where}: {match[0]} opens branch {match[3]!r}"
                                        f", not repository.branch {branch!r}")
                    elif "<" not in path and not (ROOT / path).is_file():
                        problems.append(f"{where}: {match[0]} opens {path}, which "
                                        "is not in the repository")
    return problems


def test_a_wrong_url_is_reported(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": [
            "[badge](https://colab.research.google.com/github/me/repo/blob/main/"
            "notebooks/01_x.ipynb)\n",
            "[old](https://colab.research.google.com/github/me/repo/blob/dev/"
            "notebooks/01_x.ipynb)"]},
        {"cell_type": "code", "source": "run('https://github.com/someone/fork.git')"},
    ]}))
    (tmp_path / "README.md").write_text(
        "See https://github.com/me/repo. Site: https://me.github.io/repo/, not "
        "https://me.github.io/other/. Open `https://colab.research.google.com/github/"
        "me/repo/blob/main/notebooks/02_gone.ipynb` or .../notebooks/<file>.ipynb\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert sorted(wrong_urls("me/repo", "main")) == [
        "README.md: colab.research.google.com/github/me/repo/blob/main/notebooks/"
        "02_gone.ipynb opens notebooks/02_gone.ipynb, which is not in the repository",
        "README.md: https://me.github.io/other names me/other, not me/repo",
        "notebooks/01_x.ipynb cell 1: colab.research.google.com/github/me/repo/"
        "blob/dev/notebooks/01_x.ipynb opens branch 'dev', not repository.branch "
        "'main'",
        "notebooks/01_x.ipynb cell 2: https://github.com/someone/fork.git names "
        "someone/fork, not me/repo",
    ]


def test_config_names_a_github_repository():
    repo, branch = configured()
    assert repo.count("/") == 1 and branch


def test_every_repository_url_is_the_configured_one():
    repo, branch = configured()
    problems = wrong_urls(repo, branch)
    assert not problems, (
        f"_config.yml's repository.url is https://github.com/{repo} (branch {branch}); "
        "these places name another repository or file:\n  " + "\n  ".join(problems))


def test_the_check_sees_the_urls():
    """Guard against a pattern that silently matches nothing."""
    repo, _ = configured()
    found = [where for where, text in texts()
             if any(repository(m[1], m[2]) == repo
                    for pattern in FORMS.values() for m in pattern.finditer(text))]
    assert any(w == "README.md" for w in found), "README.md names no repository URL"
    assert any(w.startswith("notebooks/") for w in found), "no notebook names one"
