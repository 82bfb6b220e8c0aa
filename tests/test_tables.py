"""minidr.evaluation.tables: each column gets the format its name and values ask for."""
from __future__ import annotations

import pandas as pd

from minidr.evaluation.tables import column_format, show


def formatted(name, values):
    return [column_format(name, pd.Series(values))(v) for v in values]


def test_metrics_get_three_decimals_even_when_the_name_sounds_like_seconds():
    assert formatted("nDCG@10", [0.4717]) == ["0.472"]
    assert formatted("DL19 nDCG@10, start", [0.4246]) == ["0.425"]   # not " s"
    assert formatted("delta", [-0.0114]) == ["-0.011"]


def test_seconds_integers_and_missing_values():
    assert formatted("wall_seconds", [734.2, 12.0]) == ["734", "12"]
    assert formatted("encode s", [7.74, 3.0]) == ["7.7", "3.0"]
    assert formatted("steps", [250.0, 4000.0]) == ["250", "4,000"]
    assert formatted("nDCG@10", [float("nan")]) == ["–"]


def test_show_puts_a_named_index_first_and_keeps_the_caption():
    df = pd.DataFrame({"nDCG@10": [0.5]}, index=pd.Index(["BM25"], name="run"))
    styler = show(df, caption="DL19, 43 queries")
    assert styler.data.columns.tolist() == ["run", "nDCG@10"]
    assert styler.caption == "DL19, 43 queries"
