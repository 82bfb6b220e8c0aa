"""minidr: the library behind "Training Dense Retrievers, Reproduced".

What the chapters use, in one place::

    from minidr import (get_profile, load_minimarco, evaluate, compare, BM25,
                        record_result)
    from minidr import BiEncoder, DenseIndex, fit, dense_runs   # the dense chapters

The package is arranged by role; each layer imports only the layers above it
in this list, and no method imports another method::

    core/        profiles, paths, atomic writes, cost meter, progress, results records
    data/        MiniMARCO, file formats, subset ids, teacher labels on disk
    evaluation/  metrics and paired bootstrap (ir_measures), quality curves,
                 expected scores
    models/      the Encoder base and protocol, bi-encoder, cross-encoder, backbones,
                 teacher
    retrieval/   BM25 (pyserini), faiss index, embedding cache, dense search, re-ranking
    training/    trainer and fit(), recipes, batches, losses, negatives, mining,
                 fixed index
    methods/     one module per technique: dpr, ance, ltre, star, adore, bert_cat, mlm
    substrate/   what several chapters share: the warm start, the teacher's labels

The dense names (which need torch) are imported on first use, so the sparse
chapters and the command line start quickly.
"""
import warnings
from importlib import import_module

# tqdm.auto warns in notebooks without ipywidgets (transformers imports it); the
# text progress bars it falls back to are what the book wants anyway.
warnings.filterwarnings("ignore", message="IProgress not found")

from .core.config import PROFILES, Profile, ProfileError, get_profile
from .core.cost import CostMeter
from .core.results import leaderboard, load_results, record_result
from .data.formats import DataFormatError, rank, read_trec_run, write_trec_run
from .data.minimarco import DataNotFoundError, MiniMarco, Split, load_minimarco
from .data.teacher_labels import load_teacher_labels
from .evaluation.metrics import compare, evaluate, evaluate_splits, per_query
from .retrieval.bm25 import BM25

__version__ = "0.1.0"

# name -> module, for the names loaded lazily (PEP 562)
_LAZY = {"BiEncoder": "models.bi_encoder", "CrossEncoder": "models.cross_encoder",
         "Encoder": "models.encoder", "RetrievalEncoder": "models.encoder",
         "load_backbone": "models.loading", "load_teacher": "models.teacher",
         "save_model": "models.registry", "list_models": "models.registry",
         "resolve_model": "models.registry",
         "DenseIndex": "retrieval.index", "dense_runs": "retrieval.dense",
         "encode_corpus": "retrieval.dense", "search_splits": "retrieval.dense",
         "Trainer": "training.trainer", "TrainConfig": "training.trainer",
         "fit": "training.trainer", "training_examples": "training.batches",
         "warm_start": "substrate.warm_start"}

__all__ = ["PROFILES", "Profile", "ProfileError", "get_profile", "CostMeter",
           "DataNotFoundError", "MiniMarco", "Split", "load_minimarco",
           "load_teacher_labels", "compare", "evaluate", "evaluate_splits", "per_query",
           "DataFormatError", "rank", "read_trec_run", "write_trec_run", "leaderboard",
           "load_results", "record_result", "BM25", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'minidr' has no attribute {name!r}")
