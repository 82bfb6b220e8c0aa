"""Training losses as pure functions of scores.

Every loss here takes the *scores* a model gave (dot products of query and
passage embeddings, or a cross-encoder's logits) and returns ``(loss, stats)``:
a scalar tensor to back-propagate, and a dict of plain floats to log. The stats
are diagnostics in the spirit of Contriever (Izacard et al., 2022): how often
the positive already wins, how far apart positive and negative scores are,
and, with :func:`embedding_stats`, whether the embeddings are collapsing.

Where are the in-batch negatives? Nowhere in a sampler: they are the other
queries' passages in the same batch. Score every query against every passage
of the batch, ``scores = q @ p.T``, and each row's non-target columns are its
negatives; :func:`in_batch_targets` says which column is each query's positive.

Example (DPR-style in-batch training step, one positive + one hard negative
per query)::

    >>> import torch
    >>> q = torch.randn(4, 8)      # (B, H)    query embeddings
    >>> p = torch.randn(4 * 2, 8)  # (B*G, H)  [pos_0, neg_0, pos_1, neg_1, ...]
    >>> scores = q @ p.T           # (B, B*G)
    >>> loss, stats = info_nce(scores, in_batch_targets(4, 2))
    >>> sorted(stats)
    ['accuracy', 'neg_score', 'pos_score']
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["info_nce", "in_batch_targets", "ranknet", "reciprocal_rank", "delta_rr",
           "star_scores_loss", "embedding_stats", "distill_kl", "margin_mse"]


def in_batch_targets(batch_size: int, group_size: int = 1,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Column of each query's positive in an in-batch score matrix.

    The passages of a batch are laid out query by query, each query's group
    starting with its positive::

        [pos_0, neg_0_1, ..., neg_0_{G-1}, pos_1, neg_1_1, ..., pos_{B-1}, ...]

    so query ``i``'s positive is column ``i * group_size``.

    Args:
        batch_size: number of queries ``B``.
        group_size: passages per query ``G`` (1 positive + ``G - 1`` negatives).
        device: where to put the result.

    Shapes:
        returns ``(B,)`` long, to use with scores of shape ``(B, B * G)``.

    References:
        Karpukhin et al. (2020), Dense Passage Retrieval for Open-Domain
        Question Answering, EMNLP (in-batch negatives, section 3.2).

    Example::

        >>> in_batch_targets(3, 2).tolist()
        [0, 2, 4]
    """
    if batch_size < 1 or group_size < 1:
        raise ValueError("batch_size and group_size must be >= 1, "
                         f"got {batch_size}, {group_size}")
    return torch.arange(batch_size, device=device) * group_size


def info_nce(scores: torch.Tensor, targets: torch.Tensor,
             temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the positive among all candidates (InfoNCE / DPR's loss).

    For query ``i`` with candidate scores ``s_i1 .. s_iN`` and positive ``t_i``::

        loss_i = -log( exp(s_{i,t_i} / tau) / sum_j exp(s_ij / tau) )

    averaged over the batch. With in-batch negatives the candidates are every
    passage in the batch (see :func:`in_batch_targets`); with a sampled list
    they are ``[positive, negatives...]`` and ``targets`` is all zeros.

    Args:
        scores: raw similarity scores of each query against its candidates.
        targets: index of each query's positive among the candidates.
        temperature: ``tau``; scores are divided by it before the softmax
            (``< 1`` sharpens, e.g. 0.05 for cosine similarities as in Contriever).

    Shapes:
        scores ``(B, N)``, targets ``(B,)`` long, loss ``()``.

    Returns:
        ``(loss, stats)``; stats (computed on the raw scores, not divided by
        ``tau``): ``accuracy`` (fraction of queries whose positive has the top
        score), ``pos_score`` (mean positive score), ``neg_score`` (mean score
        of all other candidates; NaN when ``N == 1``).

    References:
        van den Oord et al. (2018), Representation Learning with Contrastive
        Predictive Coding (InfoNCE). Karpukhin et al. (2020), Dense Passage
        Retrieval for Open-Domain Question Answering, EMNLP.

    Example::

        >>> scores = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> loss, stats = info_nce(scores, torch.tensor([0, 1]))
        >>> round(loss.item(), 4), stats["accuracy"]      # -log(e^2 / (e^2 + 1))
        (0.1269, 1.0)
    """
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError("expected scores (B, N) and targets (B,), "
                         f"got {tuple(scores.shape)} and {tuple(targets.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    loss = F.cross_entropy(scores / temperature, targets)       # ()
    with torch.no_grad():
        is_pos = F.one_hot(targets, scores.shape[1]).bool()      # (B, N)
        stats = {"accuracy": (scores.argmax(dim=1) == targets).float().mean().item(),
                 "pos_score": scores[is_pos].float().mean().item(),
                 "neg_score": scores[~is_pos].float().mean().item()}
    return loss, stats


def ranknet(pos_scores: torch.Tensor, neg_scores: torch.Tensor, sigma: float = 1.0,
            weights: torch.Tensor | None = None,
            mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """RankNet: logistic loss on every (positive, negative) pair of a query.

    For a pair whose scores are ``s+`` and ``s-``, the model's probability that
    the positive ranks above is ``sigmoid(sigma * (s+ - s-))``; the loss is its
    negative log-likelihood, averaged over all ``B * K`` pairs::

        loss = mean over pairs of  log(1 + exp(-sigma * (s+ - s-)))

    With ``weights`` it becomes LambdaRank-style (LambdaLoss, as in ADORE):
    each pair's loss is multiplied by ``w``, e.g. how much the metric would
    change if the two passages swapped places (:func:`delta_rr`), and the sum
    is still divided by the number of pairs (not by the sum of the weights)::

        loss = sum over pairs of  w * log(1 + exp(-sigma * (s+ - s-)))  /  #pairs

    This is the normalisation of ADORE's official code (per query: weighted sum
    over pairs / number of pairs). Pairs whose weight is 0 still count in
    ``#pairs``: they are real pairs that do not matter to the metric.

    ``mask`` leaves pairs out altogether (loss, ``#pairs`` and stats), e.g. the
    empty slots of a query that got fewer than ``K`` negatives.

    Args:
        pos_scores: the positive passage's score for each query.
        neg_scores: ``K`` negative passages' scores for each query.
        sigma: steepness of the sigmoid (Burges' sigma).
        weights: optional non-negative weight of each pair (treated as a
            constant: no gradient flows into it); ``None``: all 1.
        mask: optional, ``True`` for the pairs that exist; ``None``: all of them.

    Shapes:
        pos_scores ``(B,)``, neg_scores ``(B, K)``, weights and mask ``(B, K)``,
        loss ``()``.

    Returns:
        ``(loss, stats)``; stats (over the unmasked pairs): ``pair_accuracy``
        (fraction of pairs with ``s+ > s-``), ``pos_score``, ``neg_score``
        (means), and with ``weights`` also ``weight_mean``.

    References:
        Burges et al. (2005), Learning to Rank using Gradient Descent, ICML.
        Burges (2010), From RankNet to LambdaRank to LambdaMART: An Overview,
        MSR-TR-2010-82. Wang et al. (2018), The LambdaLoss Framework for Ranking
        Metric Optimization, CIKM.

    Example::

        >>> loss, stats = ranknet(torch.tensor([1.0]), torch.tensor([[0.0, 1.0]]))
        >>> round(loss.item(), 4), stats["pair_accuracy"]  # (log(1+e^-1) + log 2) / 2
        (0.5032, 0.5)
        >>> loss, _ = ranknet(torch.tensor([1.0]), torch.tensor([[0.0, 1.0]]),
        ...                   weights=torch.tensor([[0.0, 1.0]]))
        >>> round(loss.item(), 4)                          # (0 + log 2) / 2
        0.3466
    """
    if (pos_scores.ndim != 1 or neg_scores.ndim != 2
            or neg_scores.shape[0] != pos_scores.shape[0]):
        raise ValueError(f"expected pos_scores (B,) and neg_scores (B, K), got "
                         f"{tuple(pos_scores.shape)} and {tuple(neg_scores.shape)}")
    for name, extra in (("weights", weights), ("mask", mask)):
        if extra is not None and extra.shape != neg_scores.shape:
            raise ValueError(f"expected {name} {tuple(neg_scores.shape)}, "
                             f"got {tuple(extra.shape)}")
    margins = pos_scores[:, None] - neg_scores                   # (B, K)  s+ - s-
    # softplus(x) = log(1 + e^x)
    pair_loss = F.softplus(-sigma * margins)                     # (B, K)
    if weights is not None:
        pair_loss = weights.detach() * pair_loss                 # (B, K)
    if mask is None:
        loss = pair_loss.mean()
        mask = torch.ones_like(margins, dtype=torch.bool)        # (B, K), for the stats
    else:
        mask = mask.bool()
        loss = torch.where(mask, pair_loss, 0.0).sum() / mask.sum().clamp(min=1)
    with torch.no_grad():
        stats = {"pair_accuracy": (margins[mask] > 0).float().mean().item(),
                 "pos_score": pos_scores.float().mean().item(),
                 "neg_score": neg_scores[mask].float().mean().item()}
        if weights is not None:
            stats["weight_mean"] = weights[mask].float().mean().item()
    return loss, stats


def reciprocal_rank(ranks: torch.Tensor, cutoff: int = 10) -> torch.Tensor:
    """RR@cutoff of 1-based ranks: ``1 / r`` if ``1 <= r <= cutoff``, else 0.

    A rank below 1 (e.g. ``-1``, "not retrieved") or beyond the cutoff counts 0,
    as in MRR@10, MS MARCO passage's official metric.

    Shapes:
        ranks: any shape, integer or float; returns the same shape, float32.

    Example::

        >>> reciprocal_rank(torch.tensor([1, 4, 11, -1])).tolist()
        [1.0, 0.25, 0.0, 0.0]
    """
    r = ranks.float()
    return torch.where((r >= 1) & (r <= cutoff), 1.0 / r.clamp(min=1), 0.0)


def delta_rr(pos_rank: torch.Tensor, neg_rank: torch.Tensor,
             cutoff: int = 10) -> torch.Tensor:
    """|Change in RR@cutoff| if a query's positive and a negative swapped places.

    ``|RR(pos_rank) - RR(neg_rank)|`` with :func:`reciprocal_rank`: the
    LambdaRank weight of a (positive, negative) pair for the metric MRR@cutoff.
    Pairs with both passages beyond the cutoff weigh 0 (swapping them changes
    nothing); a negative ranked just above a positive at rank 2 weighs 1/2.

    Args:
        pos_rank: 1-based rank of each query's positive (``< 1``: not retrieved).
        neg_rank: 1-based ranks of its negatives (``< 1``: missing).
        cutoff: the metric's depth (10 for MRR@10).

    Shapes:
        pos_rank ``(B,)``, neg_rank ``(B, K)``; returns ``(B, K)`` float32.

    References:
        Burges (2010), From RankNet to LambdaRank to LambdaMART: An Overview.
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives (ADORE), SIGIR: the weights of ``adore/train.py``
            (``metric_weights``).

    Example::

        >>> delta_rr(torch.tensor([2, 12]), torch.tensor([[1, 4], [1, 11]])).tolist()
        [[0.5, 0.25], [1.0, 0.0]]
    """
    if (pos_rank.ndim != 1 or neg_rank.ndim != 2
            or neg_rank.shape[0] != pos_rank.shape[0]):
        raise ValueError(f"expected pos_rank (B,) and neg_rank (B, K), got "
                         f"{tuple(pos_rank.shape)} and {tuple(neg_rank.shape)}")
    rr_pos = reciprocal_rank(pos_rank, cutoff)                   # (B,)
    rr_neg = reciprocal_rank(neg_rank, cutoff)                   # (B, K)
    return (rr_pos[:, None] - rr_neg).abs()                      # (B, K)


def embedding_stats(emb: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """Collapse detector: spread of a batch of embeddings.

    If training collapses (every input mapped to nearly the same vector), the
    per-dimension standard deviation across the batch falls towards 0 while
    the loss may still look fine. Contriever logs exactly this.

    Args:
        emb: a batch of embeddings (queries or passages).
        prefix: put before the keys, e.g. ``"q_"`` and ``"p_"``.

    Shapes:
        emb ``(B, H)``.

    Returns:
        ``{prefix + "emb_std"``: std over the batch of each dimension (population
        std), averaged over the ``H`` dimensions; ``prefix + "emb_norm"``: mean
        L2 norm of the rows ``}``.

    References:
        Izacard et al. (2022), Unsupervised Dense Information Retrieval with
        Contrastive Learning (Contriever), TMLR.

    Example::

        >>> embedding_stats(torch.ones(4, 3))        # collapsed: every row the same
        {'emb_std': 0.0, 'emb_norm': 1.7320507764816284}
    """
    if emb.ndim != 2:
        raise ValueError(f"expected emb (B, H), got {tuple(emb.shape)}")
    with torch.no_grad():
        emb = emb.float()
        # emb_std: (H,) -> (); emb_norm: (B,) -> ()
        return {f"{prefix}emb_std": emb.std(dim=0, correction=0).mean().item(),
                f"{prefix}emb_norm": emb.norm(dim=1).mean().item()}


def star_scores_loss(scores: torch.Tensor, alpha: float = 1.0,
                     sigma: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """STAR's loss from a batch's score matrix: ``alpha * L_random + L_static``.

    With one static negative per query, passages are laid out
    ``[pos_0, neg_0, pos_1, neg_1, ...]``: query ``i``'s static negative is its own
    ``neg_i``; its random negatives are every other passage of the batch.

    Args:
        scores: every query of the batch against every passage, passages laid
            out ``[pos_0, neg_0, pos_1, neg_1, ...]``.
        alpha: weight of the random-negative loss.
        sigma: RankNet steepness (20 for cosine scores, see
            :data:`minidr.training.recipe.COSINE_SIGMA`).

    Shapes:
        scores ``(B, 2B)`` with ``B >= 2``; loss ``()``.

    Returns:
        ``(loss, stats)``; stats: ``loss_static``, ``loss_random``,
        ``static_pair_accuracy``, ``random_pair_accuracy`` (fraction of pairs
        with ``s+ > s-``), ``pos_score``, ``static_neg_score``, ``random_neg_score``.

    Example::

        >>> # query 0: [pos_0, neg_0, pos_1, neg_1]
        >>> # query 1: its static neg beats its pos
        >>> scores = torch.tensor([[0.9, 0.8, 0.2, 0.0],
        ...                        [0.1, 0.3, 0.7, 1.0]])
        >>> loss, stats = star_scores_loss(scores, sigma=1.0)
        >>> stats["static_pair_accuracy"], stats["random_pair_accuracy"]
        (0.5, 1.0)

    Reference:
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives, SIGIR (STAR, Eq. 13).
    """
    B = scores.shape[0]
    if scores.ndim != 2 or scores.shape[1] != 2 * B or B < 2:
        raise ValueError("expected scores (B, 2B) with B >= 2, "
                         f"got {tuple(scores.shape)}")
    rows = torch.arange(B, device=scores.device)        # (B,)
    pos = scores[rows, 2 * rows]                        # (B,)   s+ of each query
    static = scores[rows, 2 * rows + 1]                 # (B,)   its own hard negative
    own = torch.zeros_like(scores, dtype=torch.bool)    # (B, 2B)
    own[rows, 2 * rows] = own[rows, 2 * rows + 1] = True
    random = scores[~own].view(B, 2 * B - 2)            # (B, 2B-2) everyone else's
    loss_static, s_stats = ranknet(pos, static[:, None], sigma)
    loss_random, r_stats = ranknet(pos, random, sigma)
    loss = alpha * loss_random + loss_static
    stats = {"loss_static": loss_static.item(), "loss_random": loss_random.item(),
             "static_pair_accuracy": s_stats["pair_accuracy"],
             "random_pair_accuracy": r_stats["pair_accuracy"],
             "pos_score": s_stats["pos_score"],
             "static_neg_score": s_stats["neg_score"],
             "random_neg_score": r_stats["neg_score"]}
    return loss, stats


def distill_kl(student: torch.Tensor, teacher: torch.Tensor,
               temperature: float = 1.0,
               teacher_temperature: float | None = None
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """Listwise distillation: KL(teacher || student) over each query's candidates.

    Both score rows become distributions, ``P_t = softmax(t / tau_t)`` and
    ``P_s = softmax(s / tau)``, and the student minimises

        loss_i = sum_j P_t(j) * (log P_t(j) - log P_s(j)),

    averaged over queries: the student learns the teacher's whole ranking of
    the candidates (how much better the second passage is than the tenth),
    not only which one is the positive. With the in-batch candidates of a
    grouped batch this is the in-batch distillation of TAS-B and RocketQAv2.

    Args:
        student: the student's scores.
        teacher: the teacher's scores of the same candidates (no gradient).
        temperature: ``tau`` of the student's softmax.
        teacher_temperature: ``tau_t`` (default: ``temperature``).

    Shapes:
        student, teacher ``(B, N)``; loss ``()``.

    Returns:
        ``(loss, stats)``; stats: ``kl`` (the loss), ``agreement`` (fraction of
        queries whose top candidate is the same for student and teacher).

    References:
        Hinton et al. (2015), Distilling the Knowledge in a Neural Network.
        Hofstaetter et al. (2021), Efficiently Teaching an Effective Dense
        Retriever with Balanced Topic Aware Sampling, SIGIR. Ren et al. (2021),
        RocketQAv2, EMNLP.

    Example::

        >>> t = torch.tensor([[2.0, 0.0]])
        >>> loss, _ = distill_kl(t.clone(), t)             # same scores: no loss
        >>> round(loss.item(), 6)
        0.0
        >>> loss, stats = distill_kl(torch.zeros(1, 2), t)  # uniform vs (0.88, 0.12)
        >>> round(loss.item(), 4), stats["agreement"]
        (0.3278, 1.0)
    """
    if student.shape != teacher.shape or student.ndim != 2:
        raise ValueError("expected student and teacher scores of one shape (B, N), "
                         f"got {tuple(student.shape)} and {tuple(teacher.shape)}")
    if temperature <= 0 or (teacher_temperature or temperature) <= 0:
        raise ValueError("temperatures must be > 0")
    tau_t = teacher_temperature or temperature
    log_p_s = F.log_softmax(student / temperature, dim=-1)              # (B, N)
    log_p_t = F.log_softmax(teacher.detach().float() / tau_t, dim=-1)  # (B, N)
    loss = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    with torch.no_grad():
        agree = (student.argmax(-1) == teacher.argmax(-1)).float().mean().item()
    return loss, {"kl": loss.item(), "agreement": agree}


def margin_mse(student_pos: torch.Tensor, student_neg: torch.Tensor,
               teacher_pos: torch.Tensor, teacher_neg: torch.Tensor,
               scale: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Margin-MSE: the student's margin between a positive and a negative regresses
    the teacher's margin for the same pair.

        loss = mean_ij ((s(q_i, p+_i) - s(q_i, p-_ij))
                        - scale * (t(q_i, p+_i) - t(q_i, p-_ij)))^2

    Only margins are matched, never raw scores, so a student and a teacher with
    different score ranges (a bi-encoder's dot product, a cross-encoder's logit)
    can still be paired; ``scale`` converts the teacher's margin to the student's
    units when they differ by a known factor (e.g. ``1 / tau`` for cosine scores).

    Args:
        student_pos: the student's score of each query's positive.
        student_neg: its scores of the query's negatives.
        teacher_pos, teacher_neg: the teacher's scores of the same pairs.
        scale: multiplies the teacher's margin.

    Shapes:
        student_pos, teacher_pos ``(B,)``; student_neg, teacher_neg ``(B,)`` or
        ``(B, n)``; loss ``()``.

    Returns:
        ``(loss, stats)``; stats: ``mse`` (the loss), ``student_margin`` and
        ``teacher_margin`` (means), ``agreement`` (share of pairs whose margin has
        the teacher's sign).

    References:
        Hofstaetter et al. (2020), Improving Efficient Neural Ranking Models with
        Cross-Architecture Knowledge Distillation, arXiv 2010.02666.

    Example::

        >>> s_pos, s_neg = torch.tensor([3.0]), torch.tensor([1.0])
        >>> loss, stats = margin_mse(s_pos, s_neg, torch.tensor([0.9]),
        ...                          torch.tensor([0.4]), scale=2.0)
        >>> round(loss.item(), 6), stats["agreement"]      # (2 - 2 * 0.5)^2
        (1.0, 1.0)
    """
    if student_neg.ndim == 1:
        student_neg, teacher_neg = student_neg[:, None], teacher_neg[:, None]
    if (student_pos.ndim != 1 or student_neg.shape != teacher_neg.shape
            or student_pos.shape != teacher_pos.shape
            or student_neg.shape[0] != student_pos.shape[0]):
        raise ValueError("expected positives (B,) and negatives (B,) or (B, n) of the "
                         f"same shapes for student and teacher, got "
                         f"{tuple(student_pos.shape)}, {tuple(student_neg.shape)}, "
                         f"{tuple(teacher_pos.shape)}, {tuple(teacher_neg.shape)}")
    s_margin = student_pos[:, None] - student_neg                         # (B, n)
    t_margin = scale * (teacher_pos[:, None] - teacher_neg).detach().float()  # (B, n)
    loss = F.mse_loss(s_margin, t_margin)
    with torch.no_grad():
        agree = ((s_margin > 0) == (t_margin > 0)).float().mean().item()
    return loss, {"mse": loss.item(), "student_margin": s_margin.mean().item(),
                  "teacher_margin": t_margin.mean().item(), "agreement": agree}
