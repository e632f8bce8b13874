"""The training recipe (:class:`TrainConfig`) and the error a candidate's training raises
(:class:`CandidateFailed`): plain Python, importable without torch, so a command checks its
configuration before it loads the training stack. :mod:`nas.train` re-exports both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from nas import checks
from nas.config import plain

#: ``train.freeze`` that freezes every layer but the classifier head
FREEZE_ALL_BUT_HEAD = "all-but-head"
#: how ``train.init`` weights are matched to the network's layers
MATCHES = ("strict", "prefix")

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle")
STRATEGIES = ("auto", "ddp", "ddp_spawn")


class CandidateFailed(RuntimeError):
    """Training of a candidate failed in an expected way (divergence, time limit)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe (see conf/train/*.yaml for what each field means)."""

    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    train_fraction: float = 1.0
    val_fraction: float = 0.1
    resolution: int | None = None
    precision: str = "auto"
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    compile: bool = False
    max_time_s: float | None = None
    limit_train_batches: Any = None
    deterministic: bool = False
    num_threads: int | None = None
    aux_weight: float = 0.4
    init: str | None = None
    init_match: str = "strict"
    freeze: str | int | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("epochs", "batch_size"):
            checks.integer(f"train.{name}", getattr(self, name), lo=1)
        for name in ("momentum", "weight_decay", "label_smoothing", "warmup_epochs",
                     "aux_weight"):
            put(name, checks.number(f"train.{name}", getattr(self, name), lo=0.0,
                                    hi=1.0 if name in ("momentum", "label_smoothing") else None,
                                    hi_open=True))
        put("lr", checks.number("train.lr", self.lr, lo=0.0, lo_open=True))
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise checks.invalid("train.warmup_epochs", self.warmup_epochs,
                                 f"fewer than train.epochs={self.epochs}")
        checks.one_of("train.optimizer", self.optimizer, OPTIMIZERS)
        checks.one_of("train.schedule", self.schedule, SCHEDULES)
        checks.one_of("train.strategy", self.strategy, STRATEGIES)
        checks.fraction("train.train_fraction", self.train_fraction)
        checks.fraction("train.val_fraction", self.val_fraction, zero=True, one=False)
        checks.integer("train.resolution", self.resolution, lo=1, none="the spec's own")
        checks.number("train.max_time_s", self.max_time_s, lo=0.0, lo_open=True,
                      none="no limit")
        checks.integer("train.num_threads", self.num_threads, lo=1, none="torch's default")
        if not (self.devices == "auto" or isinstance(self.devices, (int, list, tuple))):
            raise checks.invalid("train.devices", self.devices,
                                 "a count, a list of device indices, or 'auto'")
        checks.text("train.init", self.init, none="no initial weights")
        checks.one_of("train.init_match", self.init_match, MATCHES)
        if self.freeze is not None and (isinstance(self.freeze, bool) or not isinstance(
                self.freeze, (str, int))):
            raise checks.invalid("train.freeze", self.freeze,
                                 f"{FREEZE_ALL_BUT_HEAD!r}, a number of leading layers, or "
                                 f"null")

    @classmethod
    def from_any(cls, value: TrainConfig | Mapping | None) -> TrainConfig:
        """A TrainConfig from itself, a dict or an OmegaConf node; unknown keys are errors."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        value = plain(value)
        if not isinstance(value, dict):
            raise TypeError(f"train config must be a TrainConfig or a mapping, got "
                            f"{type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join('train.' + k for k in unknown)}: "
                             f"nothing reads them (a typo?); known: {', '.join(sorted(known))}")
        return cls(**value)

    def to_dict(self) -> dict:
        return asdict(self)

    def advice(self) -> str | None:
        """A warning for a recipe that runs but is likely not what was meant (None: none)."""
        if self.freeze is not None and self.init is None:
            return (f"train.freeze={self.freeze!r} without train.init: the frozen layers keep "
                    f"their random initial weights and only the rest learns; pass "
                    f"init=CHECKPOINT to freeze trained features")
        return None
