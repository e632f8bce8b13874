"""Search spaces (genome -> ArchSpec) and the hand-designed baselines.

``SPACES`` maps a space name to its :class:`~search_spaces.base.SearchSpace` subclass;
``get_space(name, **config)`` builds one. Hydra configs for each space live in
``conf/space/`` (``_target_`` points at the class).
"""

from __future__ import annotations

from typing import Any

from search_spaces.base import Gene, SearchSpace, format_genome
from search_spaces.inception import InceptionSpace
from search_spaces.mobile import MobileSpace
from search_spaces.nb201 import NB201Space
from search_spaces.residual import ResidualSpace

SPACES: dict[str, type[SearchSpace]] = {
    cls.name: cls for cls in (MobileSpace, ResidualSpace, InceptionSpace, NB201Space)
}


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """The space registered as ``name``, built with ``kwargs`` (``num_classes``,
    ``in_channels`` and the space's layout config)."""
    cls = SPACES.get(name)
    if cls is None:
        raise ValueError(f"unknown search space {name!r}; known spaces: {', '.join(SPACES)}")
    return cls(**kwargs)


__all__ = ["SPACES", "Gene", "SearchSpace", "format_genome", "get_space", "InceptionSpace",
           "MobileSpace", "NB201Space", "ResidualSpace"]
