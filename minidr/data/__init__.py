"""Data: MiniMARCO (corpus, splits, judgments, published runs), file formats, subset
ids, and the teacher's labels on disk."""
