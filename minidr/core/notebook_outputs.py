"""What a stored notebook keeps of a stream: its final state, not every refresh.

A progress bar redraws its line with a carriage return; a notebook executed
for the book would store each redraw. :func:`clean_outputs` merges a cell's
consecutive stream outputs of the same name and keeps, of every line, what a
terminal would finally show (the text after its last ``\\r``), then drops
what is left empty. ``python3 tasks.py execute`` applies it before saving; a
unit test checks every committed notebook (:func:`stream_problems`).

Example::

    >>> nb = {"cells": [{"cell_type": "code", "outputs": [
    ...     {"output_type": "stream", "name": "stderr",
    ...      "text": "train: 10%\\rtrain: 100%\\n"},
    ...     {"output_type": "stream", "name": "stderr", "text": "done\\n"}]}]}
    >>> clean_outputs(nb)["cells"][0]["outputs"]
    [{'output_type': 'stream', 'name': 'stderr', 'text': 'train: 100%\\ndone\\n'}]
"""
from __future__ import annotations

import re

__all__ = ["final_text", "clean_outputs", "stream_problems", "MAX_STREAMS_PER_CELL"]

MAX_STREAMS_PER_CELL = 4


_CURSOR = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")       # ANSI cursor moves of nested bars


def final_text(text: str) -> str:
    """Each line as a terminal finally shows it:
    the part after its last carriage return."""
    lines = _CURSOR.sub("", text).split("\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in lines)


def _text(output: dict) -> str:
    t = output.get("text", "")
    return "".join(t) if isinstance(t, list) else t


def clean_outputs(nb) -> dict:
    """Merge each cell's consecutive same-name streams and resolve carriage returns,
    in place."""
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        merged: list[dict] = []
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged
                    and merged[-1].get("output_type") == "stream"
                    and merged[-1]["name"] == out["name"]):
                merged[-1]["text"] = _text(merged[-1]) + _text(out)
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                text = "\n".join(l for l in final_text(_text(out)).split("\n")
                                 if l.strip())
                out["text"] = text + "\n" if text else ""
        cell["outputs"] = [o for o in merged
                           if o.get("output_type") != "stream" or o["text"].strip()]
    return nb


def stream_problems(nb, max_streams: int = MAX_STREAMS_PER_CELL) -> list[str]:
    """What a stored notebook should not hold:
    progress redraws, or walls of stream outputs."""
    problems = []
    for i, cell in enumerate(nb["cells"]):
        streams = [o for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream"]
        if len(streams) > max_streams:
            problems.append(f"cell {i}: {len(streams)} stream outputs "
                            f"(at most {max_streams})")
        if any("\r" in _text(o) for o in streams):
            problems.append(f"cell {i}: a carriage-return progress stream")
    return problems
