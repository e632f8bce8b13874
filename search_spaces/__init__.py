"""Search spaces (genome -> ArchSpec) and the hand-designed baselines.

One class per space (:class:`~search_spaces.base.SearchSpace`); they are built by name
through :data:`nas.registry.SPACES` (``SPACES.build("mobile", num_classes=10, ...)``) or
from a config with :func:`nas.registry.space`. Hydra configs for each space live in
``conf/space/`` (``_target_`` points at the class).
"""

from __future__ import annotations

from search_spaces.base import Gene, SearchSpace, format_genome
from search_spaces.inception import InceptionSpace
from search_spaces.mobile import MobileSpace
from search_spaces.nb201 import NB201Space
from search_spaces.residual import ResidualSpace

__all__ = ["Gene", "InceptionSpace", "MobileSpace", "NB201Space", "ResidualSpace",
           "SearchSpace", "format_genome"]
