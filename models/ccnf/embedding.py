"""CCNF's growing class-embedding table (seed 001 §3.3.1-3.3.2).

Rows are stored in chunks, one Parameter per growth step, so that under the "ccnf" strategy the
old chunks can be frozen (requires_grad False: not in the optimiser, bit-identical) while only
the newest chunk trains. table() concatenates them into the (rows, E) table.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassEmbedding(nn.Module):
    """Embedding table that grows by exactly the new classes of each task."""

    def __init__(self, dim: int, init_std: float = 1.0) -> None:
        super().__init__()
        self.dim = dim
        self.init_std = init_std
        self.chunks = nn.ParameterList()
        # empty, follows .to(device, dtype): rows created before any chunk exists (the first
        # growth, the mean row of an empty table) take the module's device and dtype from it
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    def __len__(self) -> int:
        return sum(c.shape[0] for c in self.chunks)

    def table(self) -> torch.Tensor:
        """(rows, E); empty (0, E) before any class."""
        if not len(self.chunks):
            return self.anchor.new_zeros(0, self.dim)
        return torch.cat(list(self.chunks), dim=0)

    def mean_row(self) -> torch.Tensor:
        """Mean of the existing rows (zeros when there are none): the embedding of an id the
        table does not know, so such a class still gets a finite score."""
        if not len(self):
            return self.anchor.new_zeros(self.dim)
        return self.table().mean(dim=0)

    @torch.no_grad()
    def grow(self, n: int, init: str = "mean") -> None:
        """Add n rows: the mean of the existing rows ('mean'; random for the very first rows)
        or N(0, init_std^2) ('random'). n == 0 adds nothing."""
        if n <= 0:
            return
        if init == "mean" and len(self):
            rows = self.mean_row().expand(n, self.dim).clone()
        else:  # drawn on the CPU (the same rows whatever the device), then moved
            rows = torch.randn(n, self.dim).to(self.anchor) * self.init_std
        self.chunks.append(nn.Parameter(rows))

    def train_only_last_chunk(self) -> None:
        for i, chunk in enumerate(self.chunks):
            chunk.requires_grad_(i == len(self.chunks) - 1)
