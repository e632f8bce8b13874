"""``random``: uniform samples of the space."""

from __future__ import annotations

import logging

from nas.algorithms.base import (
    Algorithm,
    Context,
    sample_new,
)

log = logging.getLogger(__name__)


class RandomSearch(Algorithm):
    name = "random"

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        return sample_new(ctx, n, self.rng)
