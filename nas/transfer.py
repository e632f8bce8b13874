"""Transfer learning: start a network from trained weights, refit its classifier, freeze.

Weights come from a ``nas.train`` checkpoint (``runs/.../checkpoints/last.ckpt``) or an
export's ``weights.pt`` (``nas.export``). They are matched to the new network by top-level
layer (``layers.<i>`` of ``nas.build.Net``; ``python -m nas.cost NAME`` lists the layers
with their index) and tensor shape:

* ``match="strict"`` (``nas.train``): every layer must fit except the classifier (the last
  top-level layer with parameters, see :func:`head_index`) and auxiliary heads, which are
  left at their initial weights when the number of classes differs; anything else that does
  not fit is an error naming the layer.
* ``match="prefix"`` (for search candidates that share a trunk with the given network): the
  leading layers are loaded while every tensor fits, up to the first that does not; the rest
  keep their initial weights. :class:`InitReport` says how many layers were reused.

Freezing (``freeze=``): ``"all-but-head"`` freezes every layer before the classifier (a
fixed feature extractor, linear probing); an integer ``N`` freezes layers ``0 .. N-1``.
Frozen parameters get ``requires_grad=False`` (the optimiser never sees them) and frozen
modules stay in eval mode, so their batch-norm statistics do not move either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nas import spec as S
from nas.checkpoints import read_weights
from nas.cost import layer_cost
from nas.recipe import FREEZE_ALL_BUT_HEAD, MATCHES


def head_index(spec: S.ArchSpec) -> int:
    """Index of the classifier: the last top-level layer with parameters (a ``head`` block,
    the final ``fc``, or the last conv of a convolutional classifier)."""
    shape = spec.input
    last = None
    for i, (layer, out) in enumerate(zip(spec.layers, spec.out_shapes)):
        if type(layer) is not S.Aux and layer_cost(layer, shape)[1] > 0:
            last = i
        shape = out
    if last is None:
        raise ValueError(f"spec {spec.name or spec.to_string()!r} has no parameters to train")
    return last


def aux_indices(spec: S.ArchSpec) -> set[int]:
    """Top-level indices of auxiliary classifiers (``aux[...]`` layers)."""
    return {i for i, layer in enumerate(spec.layers) if type(layer) is S.Aux}


@dataclass(frozen=True)
class InitReport:
    """What :func:`load_pretrained` reused: tensors and top-level layers loaded, and the
    layers (with parameters or buffers) left at their initial weights."""

    tensors: int
    layers: int
    reset: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"init_tensors": self.tensors, "init_layers": self.layers,
                "init_reset_layers": list(self.reset)}


def _relative(state: dict) -> dict:
    """Keys relative to ``nas.build.Net`` (``layers.<i>...``): strip a wrapper's prefix such
    as Lightning's ``net.``."""
    keys = [k for k in state if "layers." in k]
    if not keys:
        raise ValueError(f"the weights are not those of a nas network (keys such as "
                         f"{list(state)[:3]}); pass a nas.train checkpoint or an export's "
                         f"weights.pt")
    prefix = keys[0][: keys[0].index("layers.")]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix + "layers.")}


def _by_layer(keys: list[str]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for k in keys:
        out.setdefault(int(k.split(".")[1]), []).append(k)
    return out


def load_pretrained(net: torch.nn.Module, weights: str | Path | dict, *,
                    match: str = "strict") -> InitReport:
    """Load ``weights`` (a path, or a state_dict) into ``net`` (a ``nas.build.Net``) as the
    module docstring describes; returns what was reused."""
    if match not in MATCHES:
        raise ValueError(f"train.init_match={match!r} is invalid; pass one of "
                         f"{', '.join(MATCHES)}")
    state = _relative(weights if isinstance(weights, dict) else read_weights(weights))
    spec: S.ArchSpec = net.spec
    target = net.state_dict()
    groups = _by_layer(list(target))

    def fits(i: int) -> bool:
        return all(k in state and tuple(state[k].shape) == tuple(target[k].shape)
                   for k in groups.get(i, ()))

    n = len(spec.layers)
    if match == "strict":
        head, aux = head_index(spec), aux_indices(spec)
        for i in range(n):
            if i != head and i not in aux and not fits(i):
                key = next(k for k in groups[i] if k not in state
                           or tuple(state[k].shape) != tuple(target[k].shape))
                got = tuple(state[key].shape) if key in state else "nothing"
                raise ValueError(
                    f"the init weights do not fit layer {i} ({spec.layers[i].token()}): "
                    f"{key} needs {tuple(target[key].shape)}, the weights have {got}; "
                    f"initialise from weights of the same architecture, or pass "
                    f"train.init_match=prefix to reuse only the leading layers that fit")
        use = [i for i in range(n) if fits(i)]
    else:
        use = []
        for i in range(n):
            if not fits(i):
                break
            use.append(i)
    new = dict(target)
    loaded = 0
    for i in use:
        for k in groups.get(i, ()):
            new[k] = state[k]
            loaded += 1
    net.load_state_dict(new)
    reset = tuple(i for i in groups if i not in use)
    return InitReport(tensors=loaded, layers=sum(1 for i in use if i in groups), reset=reset)


def parse_freeze(freeze: str | int | None, spec: S.ArchSpec) -> int:
    """Number of leading top-level layers that ``freeze`` freezes (0 for none)."""
    if freeze is None or freeze == "none":
        return 0
    head = head_index(spec)
    if freeze == FREEZE_ALL_BUT_HEAD:
        return head
    try:
        n = int(freeze)
    except (TypeError, ValueError):
        n = -1
    if isinstance(freeze, bool) or not 0 <= n <= head:
        raise ValueError(f"train.freeze={freeze!r} is invalid; pass {FREEZE_ALL_BUT_HEAD!r}, "
                         f"null, or a number of leading layers from 0 to {head} (the "
                         f"classifier is layer {head}; python -m nas.cost lists the layers)")
    return n


def freeze_layers(net: torch.nn.Module, n: int) -> list[torch.nn.Module]:
    """Freeze the first ``n`` top-level layers of ``net``: no gradients, eval mode. Returns
    the frozen modules (the caller keeps them in eval mode when training resumes)."""
    frozen = list(net.layers[:n])
    for m in frozen:
        m.requires_grad_(False)
        m.eval()
    return frozen


__all__ = ["FREEZE_ALL_BUT_HEAD", "MATCHES", "InitReport", "aux_indices", "freeze_layers",
           "head_index", "load_pretrained", "parse_freeze"]
