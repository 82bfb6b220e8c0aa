"""Recipes: one frozen object per method with its settings and its budget per profile.

A chapter and the library read the same recipe, so a setting has exactly one
home: ``train_dpr``'s defaults *are* ``minidr.methods.dpr.RECIPE``'s fields,
and chapter 04 prints and uses that object. A shared model trained once and
reused by several chapters (the warm-up student of chapters 05-07, the older
DPR warm start) is stored under a key that includes its recipe, so chapters
cannot drift apart.

Example::

    >>> from minidr.methods.dpr import RECIPE
    >>> RECIPE.budget("ci")
    Budget(steps=20, batch_size=8, refresh_every=0, eval_every=0)
    >>> RECIPE.temperature
    0.05
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["COSINE_TEMPERATURE", "COSINE_SIGMA", "Budget", "Recipe", "BiEncoderRecipe"]

# The book's scoring convention: cosine similarity (scores in [-1, 1]) with a
# softmax temperature of 0.05, chosen in chapter 04 for our MLM-only backbone.
COSINE_TEMPERATURE = 0.05
# RankNet's sigma on the same cosine scores (STAR, LTRe, ADORE): 1 / temperature = 20.
COSINE_SIGMA = 1 / COSINE_TEMPERATURE


@dataclass(frozen=True)
class Budget:
    """How much one training run gets under a profile.

    Attributes:
        steps: optimizer steps.
        batch_size: queries per batch.
        refresh_every: steps between index refreshes (ANCE); 0 when unused.
        eval_every: steps between evaluations on a quality curve; 0 when unused.
    """

    steps: int
    batch_size: int
    refresh_every: int = 0
    eval_every: int = 0


@dataclass(frozen=True)
class Recipe:
    """A method's settings (fields of subclasses) and its budget per profile.

    Attributes:
        budgets: profile name -> :class:`Budget`; profiles without an entry
            (``gpu``, ``colab``) use the ``"gpu"`` budget.
        lr: peak learning rate.
    """

    budgets: dict[str, Budget] = field(default_factory=dict)
    lr: float = 1e-4

    @staticmethod
    def per_profile(table: Mapping[str, Any], profile) -> Any:
        """``table``'s entry for ``profile`` (a
        :class:`~minidr.core.config.Profile` or a name); a profile without an
        entry (``gpu``, ``colab``) takes the ``"gpu"`` entry.

        Raises:
            KeyError: neither ``profile`` nor ``"gpu"`` is in ``table``.
        """
        name = getattr(profile, "name", profile)
        if name in table:
            return table[name]
        if "gpu" in table:
            return table["gpu"]
        raise KeyError(f"no entry for profile {name!r} and no 'gpu' entry")

    def budget(self, profile) -> Budget:
        """The :class:`Budget` of ``profile``
        (a :class:`~minidr.core.config.Profile` or a name)."""
        try:
            return self.per_profile(self.budgets, profile)
        except KeyError:
            name = getattr(profile, "name", profile)
            raise KeyError(f"{type(self).__name__} has no budget for profile "
                           f"{name!r}") from None

    def settings(self) -> dict:
        """Every field as plain data (for cache keys and result records)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BiEncoderRecipe(Recipe):
    """A recipe that trains a :class:`~minidr.models.bi_encoder.BiEncoder`.

    Attributes:
        pooling, similarity: the bi-encoder (mean pooling and cosine: an
            MLM-only backbone never trained ``[CLS]``; see chapter 04).
    """

    pooling: str = "mean"
    similarity: str = "cos"

    @property
    def model_settings(self) -> dict:
        """Keyword arguments of
        :meth:`~minidr.models.bi_encoder.BiEncoder.from_pretrained`."""
        return {"pooling": self.pooling, "similarity": self.similarity}
