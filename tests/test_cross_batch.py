"""Cross-batch negatives (RocketQA): two gloo processes launched by torchrun, each
with half of a batch, give the loss and the gradients of one process with all of it."""
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from minidr.training.cross_batch import average_gradients, cross_batch_loss, world

QUERIES = ["what is a dense retriever", "who wrote bm25", "how do rivers form",
           "price of a passport"]
# each query's group: its positive, then one negative (G = 2)
PASSAGES = ["dense retrievers embed text", "paris is in france",
            "bm25 is by robertson", "fish swim in rivers",
            "rivers form from rain", "tax forms are due in april",
            "a passport costs money", "rainbows have colours"]

# run by torchrun in each of two processes: argv = model folder, output, tests dir
WORKER = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[3])
    from test_cross_batch import make_batch, make_model
    from minidr.training.cross_batch import average_gradients, cross_batch_loss

    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    model = make_model(sys.argv[1])
    b = 4 // size                                        # local queries
    batch = make_batch(model, slice(rank * b, (rank + 1) * b))
    loss, stats = cross_batch_loss(model, batch, temperature=0.05)
    loss.backward()
    average_gradients(model)
    dist.all_reduce(loss.detach_(), op=dist.ReduceOp.SUM)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    # the shortcut: the other processes' embeddings detached
    model.zero_grad()
    q = model.encode_query(**batch.queries)
    p = model.encode_passage(**batch.passages)
    parts = [torch.empty_like(p) for _ in range(size)]
    dist.all_gather(parts, p.detach().contiguous())
    parts[rank] = p
    scores = model.score(q, torch.cat(parts)) / 0.05
    targets = torch.arange(b) * 2 + rank * b * 2
    torch.nn.functional.cross_entropy(scores, targets).backward()
    average_gradients(model)
    if rank == 0:
        torch.save({"loss": loss / size, "negatives": stats["negatives_per_query"],
                    "grads": grads,
                    "shortcut": {n: p.grad for n, p in model.named_parameters()
                                 if p.grad is not None}}, sys.argv[2])
    dist.destroy_process_group()
''')


def make_model(folder):
    """The tiny cosine bi-encoder, in eval mode (no dropout: processes agree)."""
    from minidr.models.bi_encoder import BiEncoder
    torch.manual_seed(0)
    return BiEncoder.from_pretrained(folder, pooling="mean", similarity="cos").eval()


def make_batch(model, queries: slice):
    """The grouped batch of ``QUERIES[queries]`` and their groups of two passages."""
    from minidr.training.batches import GroupedBatch
    passages = slice(queries.start * 2, queries.stop * 2)
    return GroupedBatch(model.tokenize_queries(QUERIES[queries]),
                        model.tokenize_passages(PASSAGES[passages]), 2)


def test_two_processes_equal_one_with_the_whole_batch(tiny_bert, tmp_path):
    script, out = tmp_path / "worker.py", tmp_path / "rank0.pt"
    script.write_text(WORKER)
    tests_dir = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", str(script), str(tiny_bert), str(out),
                    tests_dir], check=True, timeout=120, capture_output=True)
    got = torch.load(out, weights_only=True)

    model = make_model(tiny_bert)                     # one process, all 4 queries
    assert world() == (0, 1)
    loss, stats = cross_batch_loss(model, make_batch(model, slice(0, 4)), 0.05)
    loss.backward()
    average_gradients(model)                          # a no-op in one process
    assert got["negatives"] == stats["negatives_per_query"] == 7   # 2 x 2 x 2 - 1
    assert torch.isclose(got["loss"], loss.detach(), rtol=1e-5)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got["grads"].keys() == grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(got["grads"][name], grad, rtol=1e-4, atol=1e-7), name
    # detaching the other process's passages loses the gradient its queries send
    assert not all(torch.allclose(got["shortcut"][n], g, rtol=1e-3, atol=1e-6)
                   for n, g in grads.items())


# each of two processes trains on its half of every step's batch
TRAINER = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[3])
    from test_cross_batch import train

    dist.init_process_group("gloo")
    model = train(sys.argv[1])
    if dist.get_rank() == 0:
        torch.save(model.state_dict(), sys.argv[2])
    dist.destroy_process_group()
''')


def train(folder):
    """Three steps of cross-batch training on a global batch of 4 queries
    (dropout off, so that one and two processes draw nothing at random)."""
    from minidr.training.batches import Example, GroupedBatches
    from minidr.training.cross_batch import ShardedBatches, cross_batch_objective
    from minidr.training.trainer import TrainConfig, fit
    model = make_model(folder)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout_prob"):        # BERT's attention (SDPA) dropout
            module.dropout_prob = 0.0
    corpus = {str(i): text for i, text in enumerate(PASSAGES)}
    examples = [Example(f"q{i}", q, str(2 * i)) for i, q in enumerate(QUERIES)]
    negatives = {f"q{i}": [str(2 * i + 1)] for i in range(len(QUERIES))}
    batches = GroupedBatches(model, examples, corpus, 4, 1, negatives, seed=1)
    fit(model, cross_batch_objective(0.05), ShardedBatches(batches),
        TrainConfig(steps=3, lr=1e-3, device="cpu"))
    return model


def test_two_processes_train_to_the_weights_of_one(tiny_bert, tmp_path):
    script, out = tmp_path / "trainer.py", tmp_path / "model.pt"
    script.write_text(TRAINER)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", str(script), str(tiny_bert), str(out),
                    str(Path(__file__).parent)], check=True, timeout=120,
                   capture_output=True)
    two = torch.load(out, weights_only=True)
    one = train(tiny_bert).state_dict()
    start = make_model(tiny_bert).state_dict()
    moved = [k for k in one if not torch.equal(one[k], start[k])]
    assert moved                                          # training changed weights
    # AdamW divides by each gradient's running size, so where a gradient is near
    # zero, float round-off (the all-reduce adds in another order) becomes a
    # visible step: 1e-5 is half a percent of one step (lr 1e-3, 3 steps)
    for key, value in one.items():
        assert torch.allclose(two[key], value, rtol=1e-4, atol=1e-5), key
