"""Three gloo processes reproduce one process on the full batch: losses, gradients and state.

Each rank holds a third of a global batch and encodes it with small linear towers wrapped in
DistributedDataParallel.  For every objective's loss the mean of the rank losses must equal the
full-batch loss on one process, and the (DDP-averaged) parameter gradients must equal the
full-batch gradients — not 1/world_size or world_size times them: CLIP and NT-Xent (gathered
negatives, local anchors), SimCSE (gathered candidates), SwAV (Sinkhorn over the global batch),
Barlow Twins and VICReg (global batch statistics), and a head with batch norm (global batch
statistics).  The state ranks write — memory-bank rows, the NCE normaliser, MoCo's queue, local
aggregation's bank and schedule — must be the same on every rank and equal to one process's
after the full batch.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from clipgeo.train import ClipLoss, NTXentLoss
from clipgeo.train.distributed import convert_batchnorm, gather, gather_with_grad
from clipgeo.train.objectives import KeyQueue, LocalAggregationLoss, MemoryBank, SwAVLoss, simcse_loss
from clipgeo.train.objectives.barlow_twins import BarlowTwinsLoss
from clipgeo.train.objectives.memory_bank import InstanceDiscriminationLoss
from clipgeo.train.objectives.vicreg import VICRegLoss

WORLD = 3
N_PER_RANK = 6
N = WORLD * N_PER_RANK
D_IN, D_OUT = 10, 8
LOSSES = ("clip", "ntxent", "simcse", "swav", "barlow-twins", "vicreg", "bn-head")


class TwoTowers(nn.Module):
    """Two linear encoders (the second with a batch-norm head for ``bn-head``) and a loss."""

    def __init__(self, loss: str, gather: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.kind = loss
        self.tower_a = nn.Linear(D_IN, D_OUT)
        self.tower_b = nn.Linear(D_IN, D_OUT)
        self.head = nn.Sequential(nn.Linear(D_OUT, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, D_OUT))
        self.loss = {
            "clip": lambda: ClipLoss(gather=gather),
            "ntxent": lambda: NTXentLoss(0.3, gather=gather),
            "bn-head": lambda: NTXentLoss(0.3, gather=gather),
            "simcse": lambda: (lambda a, b: simcse_loss(a, b, 0.2, gather=gather)),
            "swav": lambda: SwAVLoss(D_OUT, n_prototypes=5, epsilon=0.3),
            "barlow-twins": lambda: BarlowTwinsLoss(offdiag_weight=0.05, gather=gather),
            "vicreg": lambda: VICRegLoss(gather=gather),
        }[loss]()
        if isinstance(self.loss, nn.Module):
            self.add_module("loss_module", self.loss)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        a, b = self.tower_a(x_a), self.tower_b(x_b)
        if self.kind == "bn-head":
            a, b = self.head(a), self.head(b)
        return self.loss(a, b)


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x_a = torch.randn(N, D_IN, generator=g)
    x_b = x_a + 0.5 * torch.randn(N, D_IN, generator=g)
    return x_a, x_b


def features(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D_OUT, generator=g)


def full_batch(loss: str) -> tuple[float, dict[str, torch.Tensor]]:
    model = TwoTowers(loss, gather=False)
    model.train()
    value = model(*global_batch())
    value.backward()
    return value.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def make_state():
    """The stateful pieces, identically initialised on every process."""
    torch.manual_seed(0)
    return {
        "bank": MemoryBank(N + 4, D_OUT, momentum=0.5, seed=3),
        "queue": KeyQueue(2 * N + 5, D_OUT, seed=4),
        "nce": InstanceDiscriminationLoss(N + 4, D_OUT, n_negatives=7, seed=5),
        "la": LocalAggregationLoss(N, D_OUT, n_clusters=3, n_background=5, seed=6),
    }


def noise_rows() -> torch.Tensor:
    return torch.randint(0, N + 4, (N, 7), generator=torch.Generator().manual_seed(7))


def update_state(state, rows: slice) -> dict[str, torch.Tensor]:
    """One step of every stateful piece on the samples ``rows`` of the global batch."""
    ids = torch.arange(N)[rows]
    state["bank"].update(ids, features(10)[rows])
    state["queue"].enqueue(nn.functional.normalize(features(11)[rows], dim=1))
    nce_loss = state["nce"](features(12)[rows], ids, negatives=noise_rows()[rows])
    # local aggregation: a whole pass over the N samples triggers the re-clustering
    la_loss = state["la"](features(13)[rows], ids)
    return {
        "bank": state["bank"].vectors.clone(),
        "queue": state["queue"].keys.clone(),
        "ptr": state["queue"].ptr.clone(),
        "log_z": state["nce"].log_z.clone(),
        "nce_bank": state["nce"].bank.vectors.clone(),
        "nce_loss": nce_loss.detach(),
        "la_bank": state["la"].bank.vectors.clone(),
        "la_seen": state["la"].seen.clone(),
        "la_reclusterings": state["la"].n_reclusterings.clone(),
        "la_labels": state["la"].labels.clone(),
        "la_loss": la_loss.detach(),
    }


def _worker(rank: int, port: int, out_dir: str, gather_negatives: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        rows = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        x_a, x_b = global_batch()
        out: dict = {"losses": {}, "grads": {}}
        for loss in LOSSES if gather_negatives else ("clip",):
            module = TwoTowers(loss, gather=gather_negatives)
            convert_batchnorm(module)  # what the trainer does under torchrun
            model = nn.parallel.DistributedDataParallel(module, broadcast_buffers=False, find_unused_parameters=True)
            value = model(x_a[rows], x_b[rows])
            value.backward()
            out["losses"][loss] = value.item()
            out["grads"][loss] = {
                name.removeprefix("module."): p.grad.clone() for name, p in model.named_parameters() if p.grad is not None
            }
        if gather_negatives:
            out["state"] = update_state(make_state(), rows)
            # gather_with_grad / gather: rows in rank order; the local slice of the summed gradient
            local = torch.full((2, 3), float(rank + 1), requires_grad=True)
            everything = gather_with_grad(local)
            weights = torch.arange(everything.numel(), dtype=torch.float32).reshape(everything.shape) * (rank + 1)
            (everything * weights).sum().backward()
            out.update(gathered=everything.detach(), local_grad=local.grad, plain=gather(torch.tensor([rank])))
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
        # no rank tears gloo down while another still talks to it (an abort at exit otherwise, now and then)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(tmp_path, gather_negatives: bool = True) -> list[dict]:
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path), gather_negatives), nprocs=WORLD, start_method="spawn")
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_ranks(tmp_path_factory.mktemp("ddp"))


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_three_processes_equal_full_batch(ranks, loss):
    expected_loss, expected_grads = full_batch(loss)
    mean_loss = sum(r["losses"][loss] for r in ranks) / WORLD
    assert mean_loss == pytest.approx(expected_loss, rel=1e-5)
    # float32 reductions in another order: absolute tolerance on the scale of the whole gradient (all
    # parameters: a gradient that is 0 analytically, e.g. of a bias under batch standardisation, is round-off)
    scale = max(float(g.abs().max()) for g in expected_grads.values())
    for r in ranks:
        assert set(r["grads"][loss]) == set(expected_grads)
        for name, grad in expected_grads.items():
            atol = 64 * torch.finfo(torch.float32).eps * scale
            torch.testing.assert_close(r["grads"][loss][name], grad, rtol=1e-5, atol=atol, msg=f"{loss}: gradient of {name}")


@pytest.mark.slow
def test_state_written_by_every_rank_reaches_every_rank(ranks):
    expected = update_state(make_state(), slice(0, N))
    for rank, r in enumerate(ranks):
        for key, value in expected.items():
            if key.endswith("_loss"):
                continue
            atol = 64 * torch.finfo(torch.float32).eps * max(float(value.abs().max()), 1.0) if value.is_floating_point() else 0
            torch.testing.assert_close(r["state"][key], value, rtol=1e-5 if atol else 0, atol=atol,
                                       msg=f"rank {rank}: {key}")  # fmt: skip
    assert int(expected["ptr"]) == N  # the queue took every rank's keys
    assert int(expected["la_reclusterings"]) == 1 and int(expected["la_seen"]) == 0  # one full pass: re-clustered
    # the losses of the stateful objectives average to the full-batch loss too
    assert sum(float(r["state"]["nce_loss"]) for r in ranks) / WORLD == pytest.approx(float(expected["nce_loss"]), rel=1e-5)
    assert sum(float(r["state"]["la_loss"]) for r in ranks) / WORLD == pytest.approx(float(expected["la_loss"]), rel=1e-5)


@pytest.mark.slow
def test_gather_puts_the_rows_in_rank_order(ranks):
    gathered = ranks[0]["gathered"]
    torch.testing.assert_close(gathered, torch.cat([torch.full((2, 3), float(k + 1)) for k in range(WORLD)]))
    total_weight = torch.arange(2 * 3 * WORLD, dtype=torch.float32).reshape(2 * WORLD, 3) * sum(range(1, WORLD + 1))
    for rank, r in enumerate(ranks):
        torch.testing.assert_close(r["local_grad"], total_weight[2 * rank : 2 * rank + 2])
        assert r["plain"].tolist() == list(range(WORLD))


@pytest.mark.slow
def test_without_gathering_the_gradients_differ(tmp_path):
    # Control: local negatives only is a different (smaller-batch) objective, so the check above can fail.
    _, expected_grads = full_batch("clip")
    results = run_ranks(tmp_path, gather_negatives=False)
    assert not torch.allclose(results[0]["grads"]["clip"]["tower_a.weight"], expected_grads["tower_a.weight"], rtol=1e-3)
