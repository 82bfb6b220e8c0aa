"""minidr: the library behind "Training Dense Retrievers, Reproduced".

What the chapters use, in one place::

    from minidr import get_profile, load_minimarco, evaluate, compare, BM25, record_result
    from minidr import BiEncoder, DenseIndex, Trainer, dense_runs            # the dense chapters

The dense names (which need torch) are imported on first use, so the sparse
chapters and the command line start quickly.
"""
import warnings
from importlib import import_module

# tqdm.auto warns in notebooks without ipywidgets (transformers imports it); the
# text progress bars it falls back to are what the book wants anyway.
warnings.filterwarnings("ignore", message="IProgress not found")

from .config import PROFILES, Profile, ProfileError, get_profile
from .cost import CostMeter
from .data import DataNotFoundError, MiniMarco, Split, load_minimarco
from .evaluate import compare, evaluate, evaluate_splits, per_query
from .formats import DataFormatError, rank, read_trec_run, write_trec_run
from .results import leaderboard, load_results, record_result
from .sparse import BM25

__version__ = "0.1.0"

# name -> module, for the names loaded lazily (PEP 562)
_LAZY = {"BiEncoder": "models", "CrossEncoder": "cross_encoder", "load_backbone": "models",
         "DenseIndex": "index", "Trainer": "train", "TrainConfig": "train",
         "dense_runs": "dense", "encode_corpus": "dense", "train_dpr": "dpr",
         "training_examples": "dpr", "load_teacher": "teacher", "read_labels": "teacher"}

__all__ = ["PROFILES", "Profile", "ProfileError", "get_profile", "CostMeter",
           "DataNotFoundError", "MiniMarco", "Split", "load_minimarco", "compare", "evaluate",
           "evaluate_splits", "per_query", "DataFormatError", "rank", "read_trec_run",
           "write_trec_run", "leaderboard", "load_results", "record_result", "BM25", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'minidr' has no attribute {name!r}")
