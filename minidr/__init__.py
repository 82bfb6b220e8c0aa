"""minidr: the library behind "Training Dense Retrievers, Reproduced".

What the chapters use, in one place::

    from minidr import get_profile, load_minimarco, evaluate, compare, BM25, record_result
"""
from .config import PROFILES, Profile, ProfileError, get_profile
from .cost import CostMeter
from .data import DataNotFoundError, MiniMarco, Split, load_minimarco
from .evaluate import compare, evaluate, evaluate_splits, per_query
from .formats import DataFormatError, rank, read_trec_run, write_trec_run
from .results import leaderboard, load_results, record_result
from .sparse import BM25

__version__ = "0.1.0"

__all__ = ["PROFILES", "Profile", "ProfileError", "get_profile", "CostMeter",
           "DataNotFoundError", "MiniMarco", "Split", "load_minimarco", "compare", "evaluate",
           "evaluate_splits", "per_query", "DataFormatError", "rank", "read_trec_run",
           "write_trec_run", "leaderboard", "load_results", "record_result", "BM25"]
