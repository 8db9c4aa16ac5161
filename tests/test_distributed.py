"""Two gloo processes reproduce the single-process full-batch loss and gradients.

Each rank holds half of a global batch, encodes it with a small model wrapped in
DistributedDataParallel, and computes ClipLoss / NTXentLoss with
gather-with-grad and local anchors.  The mean of the rank losses must equal the
full-batch loss on one process, and the (DDP-averaged) parameter gradients must
equal the full-batch gradients — not 1/world_size or world_size times them.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from clipgeo.train import ClipLoss, NTXentLoss
from clipgeo.train.distributed import gather_with_grad

WORLD = 2
N_PER_RANK = 6
D_IN, D_OUT = 10, 8


class TwoTowers(nn.Module):
    """Two linear encoders and a loss: enough to exercise every gradient path."""

    def __init__(self, loss: str, gather: bool):
        super().__init__()
        torch.manual_seed(0)
        self.tower_a = nn.Linear(D_IN, D_OUT)
        self.tower_b = nn.Linear(D_IN, D_OUT)
        self.loss = ClipLoss(gather=gather) if loss == "clip" else NTXentLoss(0.3, gather=gather)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        return self.loss(self.tower_a(x_a), self.tower_b(x_b))


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x_a = torch.randn(WORLD * N_PER_RANK, D_IN, generator=g)
    x_b = x_a + 0.5 * torch.randn(WORLD * N_PER_RANK, D_IN, generator=g)
    return x_a, x_b


def full_batch(loss: str) -> tuple[float, dict[str, torch.Tensor]]:
    model = TwoTowers(loss, gather=False)
    value = model(*global_batch())
    value.backward()
    return value.item(), {name: p.grad.clone() for name, p in model.named_parameters()}


def _worker(rank: int, port: int, out_dir: str, loss: str, gather: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = nn.parallel.DistributedDataParallel(TwoTowers(loss, gather=gather))
        x_a, x_b = global_batch()
        rows = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        value = model(x_a[rows], x_b[rows])
        value.backward()
        grads = {name.removeprefix("module."): p.grad.clone() for name, p in model.named_parameters()}
        # gather_with_grad itself: rows in rank order, local slice of the sum of gradients
        local = torch.full((2, 3), float(rank + 1), requires_grad=True)
        everything = gather_with_grad(local)
        weights = torch.arange(everything.numel(), dtype=torch.float32).reshape(everything.shape) * (rank + 1)
        (everything * weights).sum().backward()
        torch.save(
            {"loss": value.item(), "grads": grads, "gathered": everything.detach(), "local_grad": local.grad},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        # no rank tears gloo down while the other still talks to it (an abort at exit otherwise, now and then)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(tmp_path, loss: str, gather: bool = True) -> list[dict]:
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path), loss, gather), nprocs=WORLD, start_method="spawn")
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["clip", "ntxent"])
def test_two_processes_equal_full_batch(tmp_path, loss):
    expected_loss, expected_grads = full_batch(loss)
    results = run_two_ranks(tmp_path, loss)
    mean_loss = sum(r["loss"] for r in results) / WORLD
    assert mean_loss == pytest.approx(expected_loss, rel=1e-5)
    assert results[0]["loss"] != pytest.approx(results[1]["loss"], rel=1e-6)  # the ranks saw different anchors
    for r in results:
        assert set(r["grads"]) == set(expected_grads)
        for name, grad in expected_grads.items():
            # float32 reductions in another order: absolute tolerance on the scale of the whole gradient
            atol = 64 * torch.finfo(torch.float32).eps * float(grad.abs().max())
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-5, atol=atol, msg=f"{loss}: gradient of {name}")

    # gather_with_grad: the rows of rank 0 then rank 1; each rank gets the summed gradient of its own rows
    gathered = results[0]["gathered"]
    torch.testing.assert_close(gathered, torch.cat([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)]))
    total_weight = torch.arange(12, dtype=torch.float32).reshape(4, 3) * (1 + 2)
    for rank, r in enumerate(results):
        torch.testing.assert_close(r["local_grad"], total_weight[2 * rank : 2 * rank + 2])


@pytest.mark.slow
def test_without_gathering_the_gradients_differ(tmp_path):
    # Control: local negatives only is a different (smaller-batch) objective, so the check above can fail.
    _, expected_grads = full_batch("clip")
    results = run_two_ranks(tmp_path, "clip", gather=False)
    assert not torch.allclose(results[0]["grads"]["tower_a.weight"], expected_grads["tower_a.weight"], rtol=1e-3)
