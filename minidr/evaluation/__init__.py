"""Evaluation: ir_measures metrics with paired bootstrap intervals, quality curves, and
the expected-score check."""
