"""Zero-cost proxies of many networks, as features of the surrogate (``surrogate.features``).

A surrogate that ranks thousands of networks (NAS-Bench-201's 4,930, or an NSGA-II
population per generation) needs the proxies of each, computed once: :class:`ProxyFeatures`
computes them on one batch of the search's data (:func:`nas.evaluate.tasks.proxy_values`,
each proxy at its own batch size, seeded) and keeps them in an SQLite file keyed by
architecture id and by everything the values depend on (the proxies' batch sizes and seed,
the data config, the recipe's splits), so a resumed run, or several runs pointed at one
``surrogate.proxy_cache``, compute each network once. The surrogate sees each proxy as its
symmetric log, ``sign(v) log(1 + |v|)`` (synflow spans tens of orders of magnitude).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas import checks, zero_cost
from nas.evaluate.tasks import proxy_values
from nas.train import TrainConfig


def check_features(features: Any) -> tuple[str, ...]:
    """The proxy names of ``surrogate.features`` (a list, possibly empty); ValueError
    naming the fix otherwise."""
    if features is None:
        return ()
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise ValueError(f"surrogate.features={features!r} is invalid; pass a list of "
                         f"zero-cost proxies, e.g. surrogate.features=[synflow,jacov]")
    names = tuple(str(f) for f in features)
    for name in names:
        if name not in zero_cost.PROXIES:
            raise checks.unknown("zero-cost proxy", name, zero_cost.PROXIES,
                                 "surrogate.features=[NAME,...]")
    return tuple(dict.fromkeys(names))


class ProxyFeatures:
    """``features(genomes) -> (n, k)`` symmetric-log proxy values of the decoded networks
    (see the module docstring); NaN where a proxy failed on a network.

    Args:
        space: the search space (decodes genomes, names arch ids).
        proxies: proxy names (:data:`nas.zero_cost.PROXIES`).
        data, train: the search's data config and recipe (the batch and its splits).
        cache: the SQLite file.
        seed: seeds the batch and the networks' initial weights.
        progress: called ``progress(done, total)`` while computing many networks.
    """

    def __init__(self, space: Any, proxies: Sequence[str], *, data: Mapping,
                 train: TrainConfig | Mapping, cache: str | Path, seed: int = 0,
                 progress: Any = None) -> None:
        self.space, self.proxies = space, check_features(list(proxies))
        self.data, self.train = dict(data), TrainConfig.from_any(train)
        self.seed, self.progress = int(seed), progress
        self.batches = {p: int(zero_cost.BATCH[p]) for p in self.proxies}
        setting = {"data": self.data, "val_fraction": self.train.val_fraction,
                   "train_fraction": self.train.train_fraction, "seed": self.seed,
                   "batches": self.batches, "space": space.name}
        self.setting = hashlib.sha1(json.dumps(setting, sort_keys=True, default=str)
                                    .encode()).hexdigest()[:16]
        self.path = Path(cache)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as con:
            con.execute("CREATE TABLE IF NOT EXISTS proxies (arch_id TEXT, setting TEXT, "
                        "proxy TEXT, value REAL, PRIMARY KEY (arch_id, setting, proxy))")
        self.computed = 0  # networks computed by this object (the rest came from the cache)
        self.seconds = 0.0

    def _db(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def values(self, genomes: Sequence[Sequence[int]]) -> np.ndarray:
        """``(n, k)`` raw proxy values (NaN where a proxy failed), computing the missing."""
        ids = [self.space.arch_id(g) for g in genomes]
        known = self._read(set(ids))
        todo = {a: g for a, g in zip(ids, genomes) if any(
            (a, p) not in known for p in self.proxies)}
        if todo:
            self._compute(todo, known)
        return np.array([[known.get((a, p), np.nan) for p in self.proxies] for a in ids],
                        dtype=np.float64).reshape(len(ids), len(self.proxies))

    def __call__(self, genomes: Sequence[Sequence[int]]) -> np.ndarray:
        """``(n, k)`` surrogate features: the symmetric log of :meth:`values`, a failed
        proxy at the lowest value of its column (a proxy that breaks predicts badly)."""
        v = self.values(genomes)
        f = np.sign(v) * np.log1p(np.abs(v))
        for j in range(f.shape[1]):
            bad = ~np.isfinite(f[:, j])
            if bad.any():
                f[bad, j] = np.nanmin(f[~bad, j]) if (~bad).any() else 0.0
        return f

    def _read(self, ids: set[str]) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        with self._db() as con:
            for a, p, v in con.execute("SELECT arch_id, proxy, value FROM proxies WHERE "
                                       "setting = ?", (self.setting,)):
                if a in ids and p in self.proxies:
                    out[(a, p)] = np.nan if v is None else float(v)
        return out

    def _compute(self, todo: Mapping[str, Sequence[int]],
                 known: dict[tuple[str, str], float]) -> None:
        rows = []
        t0 = time.perf_counter()
        for i, (arch_id, genome) in enumerate(todo.items()):
            spec = self.space.decode(tuple(int(x) for x in genome))
            try:
                vals = proxy_values(self.proxies, spec, self.data, self.train, self.batches,
                                    self.seed)
            except zero_cost.ProxyError:  # one at a time, to keep those that are finite
                vals = {}
                for p in self.proxies:
                    try:
                        vals.update(proxy_values((p,), spec, self.data, self.train,
                                                 self.batches, self.seed))
                    except zero_cost.ProxyError:
                        vals[p] = float("nan")
            for p in self.proxies:
                known[(arch_id, p)] = vals[p]
                rows.append((arch_id, self.setting, p, None if not np.isfinite(vals[p])
                             else float(vals[p])))
            if len(rows) >= 200 * len(self.proxies) or i + 1 == len(todo):
                with self._db() as con:
                    con.executemany("INSERT OR REPLACE INTO proxies VALUES (?, ?, ?, ?)", rows)
                rows = []
            if self.progress is not None:
                self.progress(i + 1, len(todo))
        self.computed += len(todo)
        self.seconds += time.perf_counter() - t0


__all__ = ["ProxyFeatures", "check_features"]
