"""Seeded random streams: one independent stream per (trial seed, purpose), so that one option never shifts
another's draws (docs/method.md (strengths)'s seeding: the permutations, the data order, the initialisation...)."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["rng"]


def rng(seed: int, *purpose: object) -> torch.Generator:
    """An independent CPU random stream for (seed, purpose...), so that one option never shifts another's draws."""
    digest = hashlib.sha256("/".join(map(str, (seed, *purpose))).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
