"""NAS-Bench-201 (Dong & Yang, ICLR 2020): its cell and reduction block, and its arch
strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from nas.spec.layers import (
    BN,
    Act,
    Add,
    AvgPool,
    Block,
    Conv,
    Dag,
    Identity,
    Layer,
    Seq,
    Shape,
    SpecError,
    Zero,
    _f,
    _need_map,
    dag_pairs,
    register,
)

#: NAS-Bench-201's edge operations, by the names its arch strings use.
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def parse_nb201_arch(arch: str) -> tuple[tuple[str, int, int], ...]:
    """``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|`` -> ``((op, source, target), ...)``
    in :func:`dag_pairs` order; SpecError naming the problem for a malformed string."""
    where = f"nb201 arch {arch!r}"
    if not isinstance(arch, str) or not arch.startswith("|") or not arch.endswith("|"):
        raise SpecError(f"{where}: expected the NAS-Bench-201 form |op~0|+|op~0|op~1|+...")
    edges: dict[tuple[int, int], str] = {}
    nodes = arch.split("+")
    for j, node in enumerate(nodes, start=1):
        items = [x for x in node.strip("|").split("|")]
        if len(items) != j:
            raise SpecError(f"{where}: node {j} needs {j} incoming edges (from nodes 0..{j - 1}), "
                            f"got {len(items)}")
        for item in items:
            op, sep, src = item.partition("~")
            if not sep or not src.isdigit() or int(src) >= j:
                raise SpecError(f"{where}: edge {item!r} of node {j} must read op~i with i < {j}")
            if op not in NB201_OPS:
                raise SpecError(f"{where}: unknown operation {op!r}; known: {list(NB201_OPS)}")
            if (int(src), j) in edges:
                raise SpecError(f"{where}: node {j} takes node {src} twice")
            edges[(int(src), j)] = op
    return tuple((edges[p], p[0], p[1]) for p in dag_pairs(len(edges)))


def nb201_arch_string(ops: Sequence[str]) -> str:
    """The NAS-Bench-201 arch string of ``ops`` given in :func:`dag_pairs` order."""
    pairs = dag_pairs(len(ops))
    nodes: dict[int, list[str]] = {}
    for op, (i, j) in zip(ops, pairs):
        nodes.setdefault(j, []).append(f"{op}~{i}")
    return "+".join("|" + "|".join(nodes[j]) + "|" for j in sorted(nodes))


def dag_live_edges(ops: Sequence[str], pairs: Sequence[tuple[int, int]]) -> tuple[bool, ...]:
    """Which edges affect the output: not ``none``, fed by a node that receives something,
    and leading to a node that reaches the output (the last node)."""
    n = max(j for _, j in pairs)
    fed = [True] + [False] * n
    for op, (i, j) in zip(ops, pairs):  # pairs are ordered by target
        if op != "none" and fed[i]:
            fed[j] = True
    reaches = [False] * n + [True]
    for op, (i, j) in sorted(zip(ops, pairs), key=lambda e: -e[1][1]):
        if op != "none" and reaches[j]:
            reaches[i] = True
    return tuple(op != "none" and fed[i] and reaches[j] and fed[n]
                 for op, (i, j) in zip(ops, pairs))


def _nb201_edge(op: str, c: int) -> Layer:
    if op == "skip_connect":
        return Identity()
    if op == "nor_conv_1x1":
        return Seq((Act("relu"), Conv(c=c, k=1), BN()))
    if op == "nor_conv_3x3":
        return Seq((Act("relu"), Conv(c=c, k=3), BN()))
    if op == "avg_pool_3x3":
        return AvgPool(k=3, s=1, p=1, cip=False)
    return Zero()


@dataclass(frozen=True)
class NB201Cell(Block):
    """NAS-Bench-201 cell: a 4-node DAG whose 6 edges each hold one of :data:`NB201_OPS`
    (ReLU-conv-BN units, 3x3 average pooling without counting padding, identity, zero); the
    width is the input's. ``arch`` is the benchmark's own arch string, which the token
    carries verbatim: ``nb201_|nor_conv_3x3~0|+|...|``. Dead edges (see
    :func:`dag_live_edges`) lower to ``zero`` and so cost nothing; a cell whose output
    receives nothing lowers to ``zero``."""

    type: ClassVar[str] = "nb201"
    arch: str = _f(kind=str)

    def validate(self) -> None:
        parse_nb201_arch(self.arch)

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(op for op, _, _ in parse_nb201_arch(self.arch))

    def token(self) -> str:
        return f"{self.type}_{self.arch}"

    def lower(self, shape: Shape) -> Layer:
        c = _need_map(self, shape)[0]
        ops = self.ops
        pairs = dag_pairs(len(ops))
        live = dag_live_edges(ops, pairs)
        if not any(live):
            return Zero()
        return Dag(tuple(_nb201_edge(op if ok else "none", c) for op, ok in zip(ops, live)))


@dataclass(frozen=True)
class NB201Reduction(Block):
    """NAS-Bench-201's residual reduction block between stages: ReLU-conv3x3(stride s)-BN,
    ReLU-conv3x3-BN, plus a shortcut of 2x2 average pooling and a 1x1 conv (stride 2), a
    ReLU-conv1x1-BN (width change only) or identity; no activation after the sum."""

    type: ClassVar[str] = "nb201r"
    c: int = _f(kind=int, lo=1)
    s: int = _f(2, kind=int, lo=1, choices=(1, 2))

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        main = Seq((Act("relu"), Conv(c=self.c, k=3, s=self.s), BN(),
                    Act("relu"), Conv(c=self.c, k=3), BN()))
        short: Layer
        if self.s == 2:
            short = Seq((AvgPool(k=2, s=2), Conv(c=self.c, k=1)))
        elif cin != self.c:
            short = Seq((Act("relu"), Conv(c=self.c, k=1), BN()))
        else:
            short = Identity()
        return Add((main, short))


register(NB201Cell, NB201Reduction)
