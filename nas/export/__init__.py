"""From front to model: pick an architecture of a run and export it for deployment.

``python -m nas.export RUN_DIR pick=<rule> [out=DIR] [batch=1] [weights=CKPT]`` chooses one
evaluated architecture of a search run and writes into ``OUT`` (default
``RUN_DIR/export/<arch_id>/``):

* ``spec.json``: the ArchSpec (load it with :func:`load` or ``nas.load``);
* ``weights.pt``: the state_dict of the exported model, so ``nas.load(spec, weights=...)``
  rebuilds exactly the exported network;
* ``model.ts``: TorchScript (traced eval model);
* ``model.onnx``: ONNX (torch's dynamo exporter, opset 20), dynamic batch axis; checked
  with onnxruntime against PyTorch on a random input (max abs difference <= 1e-4 x max
  |PyTorch output|: relative, since an untrained net's outputs can be as small as 1e-7),
  and so is the TorchScript file reloaded from disk; a failed check raises
  :class:`ExportCheckError`;
* ``train_command.txt``: the ``python -m nas.train`` command that trains it in full.

Pick rules (``pick=``):

* an archive ``id`` (the ``id`` column) or an ``arch_id`` (a unique prefix is enough, with
  or without the ``<space>-`` part);
* ``knee``: the knee (``nas.pareto.knee_point``) of the non-dominated ok architectures on
  (error, MACs);
* ``max_macs=N``, ``max_params=N``, ``max_latency_ms=X``: the most accurate ok
  architecture whose cost is within the budget (ties: the cheaper one). Numbers take
  suffixes k, M, G, T (``300M``, ``1.5G``).

A search keeps the trained weights of its front's architectures (``weights/<arch_id>.ckpt``
in the run folder, ``keep_weights`` of them at most). Unless ``weights=`` names a
checkpoint, the export writes those weights and prints the exported model's accuracy on the
search's validation split, which reproduces the archived one. For an architecture whose
weights the run did not keep (not on the front, ``keep_weights=0``, or a run folder written
before the search kept weights) the exported model carries the initial weights of the
candidate's seed, and the summary says so plainly: it is the deployable *architecture*, and
``train_command.txt`` trains it.

A run scored by a supernet (``evaluator=supernet``) is the exception: its candidates have
trained weights, inherited from the supernet. Unless ``weights=`` is given, the export
extracts the picked subnet from the run's checkpoint (which must still hash as the archive
recorded), fine-tunes and recalibrates it as the evaluator did, writes those weights and
prints the exported model's validation accuracy; ``train_command.txt`` still trains the
architecture stand-alone.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import torch
import yaml

from nas import registry
from nas.archive import Archive
from nas.build import build
from nas.checkpoints import read_weights
from nas.config import CONF_DIR
from nas.cost import human
from nas.pareto import knee_point
from nas.registry import DATA_KEYS_SET_BY_TRAIN
from nas.run import Run, front_of, ok_rows, quality, read_run, weights_path
from nas.spec import ArchSpec, SpecError
from nas.supernet import InheritedScorer
from nas.train import validate_spec

# the dynamo exporter's default in torch 2.13 (it supports opset 18 and later)
ONNX_OPSET = 20
#: tolerance of the export checks, relative to max |reference output| (floored at
#: MIN_SCALE only to keep the tolerance positive)
RTOL = 1e-4
MIN_SCALE = 1e-30

# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _fit_state_dict(sd: dict, target: dict) -> dict:
    """Strip the prefix a wrapper adds (Lightning's ``model.``/``net.``) so keys match."""
    want = list(target)
    if all(k in sd for k in want):
        return {k: sd[k] for k in want}
    probe = want[0]
    for key in sd:
        if key.endswith(probe):
            prefix = key[: len(key) - len(probe)]
            if all(prefix + k in sd for k in want):
                return {k: sd[prefix + k] for k in want}
    missing = [k for k in want if k not in sd][:3]
    raise ValueError(f"weights do not fit this spec: {len(want)} tensors expected, e.g. "
                     f"{missing} missing (the file has e.g. {list(sd)[:3]}); was the "
                     f"checkpoint trained on this spec?")


def load(path: str | Path, *, weights: str | Path | None = None,
         seed: int | None = None):
    """Build the network described by a spec.json, in eval mode.

    Args:
        path: a spec JSON file, or a folder holding ``spec.json`` (an export folder).
        weights: optional ``state_dict`` file (``weights.pt`` of an export) or a Lightning
            checkpoint (its ``state_dict``; a wrapper prefix such as ``model.`` is stripped).
        seed: seed of the initial weights when ``weights`` is not given.
    Returns:
        ``nas.build.Net`` (a ``torch.nn.Module``) in eval mode.
    """

    net = build(registry.arch(str(path)), seed=seed)
    if weights is not None:
        net.load_state_dict(_fit_state_dict(read_weights(weights), net.state_dict()))
    return net.eval()


# --------------------------------------------------------------------------------------------
# Picking an architecture
# --------------------------------------------------------------------------------------------


class PickError(ValueError):
    """A pick rule that names nothing in the run (unknown id, empty budget, bad number)."""


_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_NUM_RE = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([kmgt]?)$", re.IGNORECASE)

#: budget rules -> (column, human unit)
BUDGETS = {"max_macs": ("macs", "MACs"), "max_params": ("params", "params"),
           "max_latency_ms": ("latency_ms", "ms")}


def parse_number(text: str) -> float:
    """``'300M'`` -> 3e8, ``'1.5G'`` -> 1.5e9, ``'2.5'`` -> 2.5 (suffixes k M G T, any case;
    underscores and commas are ignored)."""
    t = str(text).strip().replace("_", "").replace(",", "")
    m = _NUM_RE.match(t)
    if not m:
        raise PickError(f"cannot read the number {text!r}; write e.g. 300M, 1.5G, 25000 or "
                        f"12.5 (suffixes k, M, G, T)")
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()]


def _fmt_cost(value: float, unit: str) -> str:
    return f"{value:.3g} ms" if unit == "ms" else f"{human(value)} {unit}"


def _describe(row: pd.Series) -> str:
    acc, score = row.get("accuracy"), row.get("score")
    if pd.isna(acc) and score is not None and pd.notna(score):  # a zero-cost score
        return f"id {row.get('id')}, arch {row.get('arch_id')}, score {float(score):.4g}"
    acc_s = f"{100 * float(acc):.2f}%" if pd.notna(acc) else "n/a"
    return f"id {row.get('id')}, arch {row.get('arch_id')}, accuracy {acc_s}"


def _best(df: pd.DataFrame, cost_col: str) -> pd.Series:
    """The best row (highest accuracy or zero-cost score), the cheapest on ties."""
    order = df.assign(_neg_q=-quality(df)).sort_values(
        ["_neg_q", cost_col] + (["id"] if "id" in df else []), kind="stable")
    return order.drop(columns="_neg_q").iloc[0]


def select(evaluated: pd.DataFrame, pick: str) -> pd.Series:
    """The row of ``evaluated`` that the pick rule names (see the module docstring)."""
    pick = str(pick).strip()
    if not pick:
        raise PickError("empty pick; use pick=<id|arch_id|knee|max_macs=N|max_params=N|"
                        "max_latency_ms=X>")
    ok = ok_rows(evaluated)
    if pick == "knee":
        front = front_of(evaluated)
        if not len(front):
            raise PickError("pick=knee: the run has no successfully evaluated architecture")
        F = np.column_stack([1.0 - quality(front).to_numpy(float),
                             front["macs"].to_numpy(float)])
        return front.iloc[knee_point(F)]
    rule, eq, value = pick.partition("=")
    if eq:
        if rule not in BUDGETS:
            raise PickError(f"unknown pick rule {rule!r}; use one of {sorted(BUDGETS)} "
                            f"(e.g. max_macs=300M), knee, or an id")
        col, unit = BUDGETS[rule]
        budget = parse_number(value)
        if budget <= 0:
            raise PickError(f"{rule} must be positive, got {value!r}")
        have = ok[np.isfinite(pd.to_numeric(ok[col], errors="coerce"))] if col in ok else ok[:0]
        if not len(have):
            hint = (" (the search measured no latency; use max_macs/max_params, or a run "
                    "with latency as cost, see `python -m nas.latency`)"
                    if col == "latency_ms" else "")
            raise PickError(f"{rule}: no successfully evaluated architecture has a {col} "
                            f"value{hint}")
        inside = have[have[col] <= budget]
        if not len(inside):
            small = have.loc[have[col].idxmin()]
            raise PickError(f"no architecture within {rule}={value} "
                            f"({_fmt_cost(budget, unit)}); the smallest available costs "
                            f"{_fmt_cost(float(small[col]), unit)} ({_describe(small)})")
        return _best(inside, col)
    # an id or an arch id
    if "id" in evaluated and re.fullmatch(r"-?\d+", pick):
        hit = evaluated[pd.to_numeric(evaluated["id"], errors="coerce") == int(pick)]
        if len(hit):
            return hit.iloc[0]
    if "arch_id" in evaluated:
        ids = evaluated["arch_id"].astype(str)
        hit = evaluated[ids == pick]
        if not len(hit) and len(pick) >= 4:
            # a unique prefix, with or without the space's "<space>-" prefix
            hit = evaluated[ids.str.startswith(pick)
                            | ids.str.split("-", n=1).str[-1].str.startswith(pick)]
            if hit["arch_id"].nunique() > 1:
                raise PickError(f"arch id prefix {pick!r} is ambiguous: "
                                f"{sorted(hit['arch_id'].astype(str).unique())[:5]}")
        if len(hit):
            good = ok_rows(hit)
            return _best(good, "macs") if len(good) else hit.iloc[0]
    some = ", ".join(f"{r.get('id')}:{r.get('arch_id')}" for _, r in evaluated.head(5).iterrows())
    raise PickError(f"no architecture with id or arch_id {pick!r} in this run "
                    f"({len(evaluated)} evaluated; e.g. id:arch_id {some}); or use pick=knee, "
                    f"max_macs=N, max_params=N, max_latency_ms=X")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


class ExportCheckError(RuntimeError):
    """An exported file whose outputs differ from PyTorch's beyond the tolerance."""


@dataclass
class ExportResult:
    """What :func:`export` wrote and how well the exported files match PyTorch."""

    out_dir: Path
    spec: ArchSpec
    files: dict[str, Path] = field(default_factory=dict)
    torchscript_max_diff: float = float("nan")
    onnx_max_diff: float = float("nan")
    reference_scale: float = float("nan")
    train_command: str = ""
    row: dict = field(default_factory=dict)
    #: for a supernet-scored run: checkpoint, its sha256, the exported weights' score
    inherited: dict = field(default_factory=dict)
    #: the trained weights the search kept: file and the exported weights' validation score
    kept: dict = field(default_factory=dict)
    #: where the weights came from: "kept", "inherited", "given" or "initial"
    weights_source: str = "initial"


def _check(name: str, ref, out, rtol: float) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if ref.shape != out.shape:
        raise ExportCheckError(f"{name}: output shape {out.shape} differs from PyTorch's "
                               f"{ref.shape}")
    diff = float(np.max(np.abs(ref - out))) if ref.size else 0.0
    tol = rtol * max(MIN_SCALE, float(np.max(np.abs(ref))) if ref.size else 0.0)
    if not diff <= tol:  # also catches NaN
        raise ExportCheckError(f"{name}: max abs difference to PyTorch {diff:.3g} exceeds "
                               f"{tol:.3g} ({rtol:g} x max|output|); the exported model is "
                               f"NOT equivalent, do not deploy it")
    return diff


def _onnx_export(net, x, path: Path) -> None:
    """torch.onnx's dynamo exporter (torch.export + onnxscript), batch axis dynamic."""
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping ..."
    try:
        torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["input"],
                          output_names=["logits"], opset_version=ONNX_OPSET,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    except Exception as e:  # noqa: BLE001 - any exporter failure means: no usable file
        raise ExportCheckError(f"ONNX export failed: {str(e).strip().splitlines()[0]}") from e
    finally:
        quiet.setLevel(level)


def export(spec: ArchSpec, out_dir: str | Path, *, batch: int = 1, seed: int | None = 0,
           weights: str | Path | dict | None = None, rtol: float = RTOL,
           train_command: str | None = None) -> ExportResult:
    """Write spec.json, weights.pt, model.ts and model.onnx for ``spec`` and check them.

    Args:
        spec: the architecture.
        out_dir: output folder (created).
        batch: batch size of the example input (the ONNX batch axis stays dynamic).
        seed: seed of the initial weights (ignored when ``weights`` is given).
        weights: optional state_dict file / Lightning checkpoint to export trained
            weights, or a state_dict itself.
        rtol: check tolerance relative to max |PyTorch output| (floored at MIN_SCALE).
        train_command: written to ``train_command.txt`` when given.
    Raises:
        ExportCheckError: TorchScript or ONNX outputs differ from PyTorch's.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    # the weights are read and fitted before the output folder gets its first file
    if isinstance(weights, dict):
        net = build(spec)
        net.load_state_dict(weights)
    elif weights is not None:
        net = build(spec)
        net.load_state_dict(_fit_state_dict(read_weights(weights), net.state_dict()))
    else:
        net = build(spec, seed=seed)
    net.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"spec": out / "spec.json", "weights": out / "weights.pt",
             "torchscript": out / "model.ts", "onnx": out / "model.onnx"}
    files["spec"].write_text(spec.to_json(indent=1) + "\n")
    torch.save(net.state_dict(), files["weights"])
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    x = torch.randn(batch, *spec.input, generator=gen)
    with torch.inference_mode():
        ref = net(x).numpy()
    res = ExportResult(out_dir=out, spec=spec, files=files,
                       reference_scale=float(np.max(np.abs(ref))))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit / torch.export deprecation notices
        with torch.no_grad():
            traced = torch.jit.trace(net, x, check_trace=False)
        torch.jit.save(traced, str(files["torchscript"]))
        ts = torch.jit.load(str(files["torchscript"]), map_location="cpu")
        with torch.inference_mode():
            res.torchscript_max_diff = _check("TorchScript (model.ts)", ref, ts(x).numpy(), rtol)
        _onnx_export(net, x, files["onnx"])

    sess = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    res.onnx_max_diff = _check("ONNX (model.onnx, onnxruntime)", ref, got, rtol)
    if train_command is not None:
        files["train_command"] = out / "train_command.txt"
        files["train_command"].write_text(train_command + "\n")
        res.train_command = train_command
    return res


# --------------------------------------------------------------------------------------------
# Run-level: pick + export + train command
# --------------------------------------------------------------------------------------------


def _data_choice(run: Run) -> str | None:
    """The data config name the run used (Hydra's recorded choice, else config.yaml)."""
    hydra_file = run.path / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        try:
            h = yaml.safe_load(hydra_file.read_text()) or {}
            choice = h.get("hydra", {}).get("runtime", {}).get("choices", {}).get("data")
            if isinstance(choice, str):
                return choice
        except yaml.YAMLError:
            pass
    data = run.config.get("data")
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in ("name", "_name_", "dataset"):
            if isinstance(data.get(key), str):
                return data[key]
    return None


def _seed_of(row: pd.Series, run: Run) -> int:
    for v in (row.get("seed"), run.config.get("seed")):
        try:
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                return int(v)
        except (TypeError, ValueError):
            continue
    return 0


def _hydra_value(v: Any) -> str:
    """A value as a Hydra command-line override writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(x)}" for k, x in v.items()) + "}"
    text = str(v)
    if re.fullmatch(r"[\w./~:+@-]+", text) and text not in ("null", "true", "false"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def data_arguments(run: Run) -> list[str] | None:
    """The ``data=...`` overrides that give ``python -m nas.train`` the run's data exactly:
    the data set's config name and every key whose value differs from that config's
    default (``data.root`` above all); None when the run does not say."""
    name = _data_choice(run)
    if name is None:
        return None
    args = [f"data={name}"]
    data = run.config.get("data")
    default_file = CONF_DIR / "data" / f"{name}.yaml"
    if isinstance(data, dict) and default_file.is_file():
        defaults = yaml.safe_load(default_file.read_text()) or {}
        for key, value in data.items():
            if key in ("name", "defaults") or key in DATA_KEYS_SET_BY_TRAIN:
                continue  # the recipe sets these
            if key not in defaults or defaults[key] != value:
                args.append(f"data.{key}={_hydra_value(value)}" if key in defaults
                            else f"+data.{key}={_hydra_value(value)}")
    return args


def train_command(spec_path: Path, data: str | list[str], seed: int) -> str:
    """The command that trains an exported architecture in full."""
    parts = data.split() if isinstance(data, str) else list(data)
    return (f"python -m nas.train arch={shlex.quote(str(spec_path))} "
            f"{' '.join(shlex.quote(x) for x in parts)} train=full seed={seed}")


def inherited_weights(run: Run, row: pd.Series) -> tuple[dict, dict] | None:
    """``(state_dict, info)`` of a supernet-scored run's row: the subnet's weights as the
    evaluator scored them, ``info`` with the checkpoint, its sha256 and the score; None
    for a run that did not use ``evaluator=supernet`` or a row without a genome."""
    ev = run.config.get("evaluator") or {}
    genome = row.get("genome")
    if not isinstance(ev, dict) or ev.get("backend") != "supernet" or \
            not isinstance(genome, str) or not genome:
        return None
    scorer = InheritedScorer(ev.get("checkpoint"), data=run.config["data"],
                             train=run.config["train"],
                             calib_batches=int(ev.get("calib_batches", 10)),
                             finetune_steps=int(ev.get("finetune_steps", 0)))
    if (run.path / "archive.sqlite").is_file():
        archive = Archive(run.path / "archive.sqlite")
        try:
            rec = archive.get(str(row["arch_id"]))
        finally:
            archive.close()
        want = (rec.fidelity or {}).get("checkpoint_sha256") if rec is not None else None
        if want and want != scorer.sha256[:len(want)]:
            raise PickError(f"supernet checkpoint {ev.get('checkpoint')} has changed since the "
                            f"search scored {row['arch_id']} (sha256 {scorer.sha256[:16]}, the "
                            f"archive recorded {want}); restore that checkpoint or pass "
                            f"weights=...")
    space = scorer.supernet.space
    spec, net, score = scorer.network(space.parse_genome(genome), seed=_seed_of(row, run))
    if spec.to_string() != str(row["spec"]):
        raise PickError(f"genome {genome} of {row['arch_id']} decodes to another network in "
                        f"the checkpoint's space; was the checkpoint replaced?")
    info = {"checkpoint": str(ev.get("checkpoint")), "sha256": scorer.sha256, **score}
    return net.state_dict(), info


def kept_weights(run: Run, row: pd.Series, spec: ArchSpec) -> tuple[dict, dict] | None:
    """``(state_dict, info)`` of the trained weights a search kept for ``row`` (its
    front), ``info`` with the file and the weights' accuracy on the search's validation
    split; None when the run kept none for it."""
    path = weights_path(run.path, str(row.get("arch_id", "")))
    cfg = run.config if isinstance(run.config, dict) else {}
    if not path.is_file() or not isinstance(cfg.get("data"), dict) or "train" not in cfg:
        return None
    sd = _fit_state_dict(read_weights(path), build(spec, seed=0).state_dict())
    score = validate_spec(spec, sd, data=cfg["data"], train=cfg["train"],
                          seed=_seed_of(row, run))
    return sd, {"file": str(path), **score}


def export_run(run_dir: str | Path, pick: str, *, out: str | Path | None = None,
               batch: int = 1, weights: str | Path | None = None) -> ExportResult:
    """Pick an architecture of a run folder and export it (see the module docstring)."""
    run = read_run(run_dir)
    row = select(run.evaluated, pick)
    try:
        spec = ArchSpec.from_string(str(row["spec"]), name=str(row.get("arch_id", "")))
    except SpecError as e:
        raise PickError(f"the spec of {_describe(row)} does not parse: {e}") from None
    arch_id = str(row.get("arch_id", row.get("id", "arch")))
    out_dir = Path(out) if out is not None else run.path / "export" / arch_id
    seed = _seed_of(row, run)
    data = data_arguments(run)
    ev = run.config.get("evaluator") if isinstance(run.config, dict) else None
    if isinstance(ev, dict) and ev.get("backend") == "table":
        # Looked-up accuracies: train on the data set the table was measured on.
        if ev.get("source", "analog-nasbench") == "analog-nasbench":  # CIFAR-10
            data = ["data=cifar10", "data.root=PATH/TO/CIFAR10"]
        else:
            data = ["data=DATA"]
    cmd = train_command((out_dir / "spec.json").resolve(), data or ["data=DATA"], seed)
    source = "given" if weights is not None else "initial"
    inherited = inherited_weights(run, row) if weights is None else None
    kept = kept_weights(run, row, spec) if weights is None and inherited is None else None
    if inherited is not None:
        weights, source = inherited[0], "inherited"
    elif kept is not None:
        weights, source = kept[0], "kept"
    res = export(spec, out_dir, batch=batch, seed=seed, weights=weights, train_command=cmd)
    res.weights_source = source
    if inherited is not None:
        res.inherited = inherited[1]
    if kept is not None:
        res.kept = kept[1]
    res.row = {k: (None if isinstance(v, float) and math.isnan(v) else v)
               for k, v in row.to_dict().items()}
    res.row["data_known"] = data is not None
    return res


__all__ = ["BUDGETS", "ExportCheckError", "ExportResult", "PickError", "export", "export_run",
           "inherited_weights", "kept_weights", "load", "parse_number", "select",
           "train_command"]
