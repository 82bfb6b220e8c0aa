"""Substrate: what several chapters share and train once: the warm start and the
teacher's labels of the training queries."""
