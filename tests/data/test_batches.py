"""Batch order (data/__init__.py): every example once per epoch, replayable, bucketed by length."""
import torch

from vaekit.data import TensorData, iterate_batches


def _sentences(n=1000, max_len=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len, (n,), generator=g)
    x = torch.zeros(n, max_len, dtype=torch.long)
    for i, length in enumerate(lengths.tolist()):
        x[i, :length] = i + 1  # each row's id is its index + 1: lets the test follow examples
    return TensorData(x, lengths=lengths), lengths


def _padding(batches):
    return sum(int((b == 0).sum() - (b.shape[1] - (b != 0).sum(1).max()) * len(b)) for b in batches)


def test_bucketing_keeps_every_example_once_and_cuts_padding():
    data, _ = _sentences()
    bucketed = list(iterate_batches(data, 32, torch.Generator().manual_seed(1)))
    plain = list(iterate_batches(TensorData(data.x), 32, torch.Generator().manual_seed(1)))
    ids = torch.cat([b[:, 0] for b in bucketed]).sort().values
    assert torch.equal(ids, torch.arange(1, 1001))
    # Padding inside each batch (up to the batch's longest sentence), what a trimming model computes.
    assert _padding(bucketed) < 0.2 * _padding(plain)


def test_bucketed_order_replays_from_generator_state_and_start():
    data, _ = _sentences()
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    full = list(iterate_batches(data, 32, g))
    g.set_state(state)
    resumed = list(iterate_batches(data, 32, g, start=10))
    assert len(resumed) == len(full) - 10
    assert all(torch.equal(a, b) for a, b in zip(full[10:], resumed))
    g.set_state(state)
    next_epoch = list(iterate_batches(data, 32, g))  # same state, same epoch
    assert all(torch.equal(a, b) for a, b in zip(full, next_epoch))


def test_ranks_split_each_global_batch():
    data, _ = _sentences(n=200)
    whole = list(iterate_batches(data, 20, torch.Generator().manual_seed(5), world=1))
    parts = [list(iterate_batches(data, 10, torch.Generator().manual_seed(5), rank=r, world=2)) for r in (0, 1)]
    for w, a, b in zip(whole, *parts):
        assert torch.equal(w, torch.cat([a, b]))
