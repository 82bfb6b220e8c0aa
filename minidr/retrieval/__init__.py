"""Retrieval: BM25 through pyserini, faiss indexes, the embedding cache, dense search,
and re-ranking."""
