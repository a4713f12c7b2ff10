"""torch.distributed glue: one process is a world of size 1 and pays nothing.

Under `torchrun` every rank holds the whole (small) dataset and trains on its
DistributedSampler shard; DistributedDataParallel averages gradients. Control
decisions (cancel, time budget, when to log) are taken on rank 0 and broadcast
every step over a gloo group of CPU tensors, so all ranks leave a loop at the
same step (otherwise the others would hang in the next all-reduce) and the
broadcast never forces a GPU synchronisation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Dist"]


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    control: Any = None  # process group for CPU control messages (None: the default group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Dist:
        """Join the torchrun world described by the environment, if there is one."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()  # one process: rank 0 of a world of 1
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
            control = dist.new_group(backend="gloo")
        else:
            dist.init_process_group("gloo")
            control = None
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, control)

    def device_for(self, device: torch.device) -> torch.device:
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.world > 1 else device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if self.world == 1:
            return model
        ids = [device.index if device.index is not None else self.local_rank] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def agree(self, values: list[Any], dtype: torch.dtype = torch.int64) -> list[Any]:
        """Rank 0's `values` on every rank."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=dtype)
        dist.broadcast(t, src=0, group=self.control)
        return t.tolist()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of `t` over ranks, on the CPU."""
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
        return t.cpu()

    def params_in_sync(self, model: nn.Module) -> bool:
        """Every rank holds bit-identical parameters (checked once, at the end of a run)."""
        if self.world == 1:
            return True
        mine = torch.stack([p.detach().double().sum() for p in model.parameters()]
                           + [p.detach().double().pow(2).sum() for p in model.parameters()]).cpu()
        everyone = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(everyone, mine, group=self.control)
        return all(torch.equal(everyone[0], other) for other in everyone[1:])

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=self.control)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
