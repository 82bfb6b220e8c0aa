"""Progress: a live bar for people, one final line for the book."""
from minidr.core.progress import final_line_mode, progress_bar


def test_final_line_mode_prints_one_line(monkeypatch, capsys):
    monkeypatch.setenv("MINIDR_PROGRESS", "final")
    assert final_line_mode()
    with progress_bar(total=3, desc="train", unit="step") as bar:
        for _ in range(3):
            bar.update(1)
        bar.set_postfix(loss="0.4120")
    for _ in progress_bar(range(2), desc="BM25 index", unit="batch"):
        pass
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "\r" not in "".join(out)
    assert out[0].startswith("train: 3/3 steps in ")
    assert out[0].endswith("(loss 0.4120)")
    assert out[1].startswith("BM25 index: 2/2 batches in ")


def test_live_mode_is_tqdm(monkeypatch):
    monkeypatch.setenv("MINIDR_PROGRESS", "live")
    monkeypatch.delenv("CI", raising=False)
    assert not final_line_mode()
    assert type(progress_bar(total=1, disable=True)).__name__ == "tqdm"
