"""``python -m nas.export``: pick one architecture of a run and export it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.commands import run
from nas.cost import human
from nas.export import (
    BUDGETS,
    ONNX_OPSET,
    RTOL,
    ExportCheckError,
    ExportResult,
    PickError,
    export_run,
)
from nas.run import RunFolderError
from nas.spec import SpecError


def summary(res: ExportResult) -> str:
    """Human-readable account of an export."""
    r = res.row
    acc = r.get("accuracy")
    lat = r.get("latency_ms")
    lines = [f"exported {r.get('arch_id', res.spec.name)} (id {r.get('id')}) to {res.out_dir}",
             f"  spec      {res.spec.to_string()}",
             f"  accuracy  {'n/a' if acc is None else f'{100 * float(acc):.2f}%'}   "
             f"MACs {human(float(r.get('macs') or 0))}   params "
             f"{human(float(r.get('params') or 0))}"
             + (f"   latency {float(lat):.3g} ms" if lat is not None else ""),
             f"  checks    TorchScript max|diff| {res.torchscript_max_diff:.2e}, ONNX "
             f"(onnxruntime, opset {ONNX_OPSET}) max|diff| {res.onnx_max_diff:.2e} "
             f"(|outputs| up to {res.reference_scale:.3g}; tolerance {RTOL:g} x that)"]
    for key, path in res.files.items():
        lines.append(f"  {key:<13} {path}")
    if res.inherited:
        i = res.inherited
        lines.append(f"  weights   inherited from supernet {i['checkpoint']} (sha256 "
                     f"{i['sha256'][:16]}), BN recalibrated on {i['calib_images']} training "
                     f"images: validation accuracy {100 * i['accuracy']:.2f}% on "
                     f"{i['val_images']} images")
    if res.kept:
        k = res.kept
        lines.append(f"  weights   trained by the search ({k['file']}): validation accuracy "
                     f"{100 * k['accuracy']:.2f}% on {k['val_images']} images")
    elif res.weights_source == "initial":
        lines.append("  weights   NOT trained: the run kept no weights for this architecture "
                     "(not on its front, keep_weights=0, or a run from before searches kept "
                     "weights); weights.pt holds the initial weights of its seed; train it "
                     "with the command below")
    lines.append(f"  load with  nas.load({str(res.files['spec'])!r}, "
                 f"weights={str(res.files['weights'])!r})")
    lines.append(f"  train with {res.train_command}")
    if r.get("status", "ok") != "ok":
        lines.append(f"  warning: this architecture FAILED in the search "
                     f"({r.get('reason') or 'no reason recorded'}); exported anyway as asked")
    if not r.get("data_known", True):
        lines.append("  warning: config.yaml names no data set; replace DATA in the command")
    return "\n".join(lines)


_KEYS = ("pick", "out", "batch", "weights")


def _normalise_argv(argv: list[str]) -> list[str]:
    """Accept Hydra-style ``key=value`` arguments as their ``--key=value`` flags."""
    out: list[str] = []
    for a in argv:
        key, eq, _ = a.partition("=")
        value_of_flag = bool(out) and out[-1] in ("--pick", "--out", "--weights", "--batch")
        if value_of_flag:
            out.append(a)
        elif eq and key in _KEYS:
            out.append(f"--{a}")
        elif eq and key in BUDGETS:
            out.append(f"--pick={a}")
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nas.export",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pick one architecture of a search run and export it: spec.json, "
                    "weights.pt, model.ts (TorchScript), model.onnx (opset 20, checked "
                    "against PyTorch with onnxruntime) and train_command.txt.",
        epilog="examples:\n"
               "  python -m nas.export runs/2024-05-01/12-00-00 pick=knee\n"
               "  python -m nas.export RUN_DIR pick=max_macs=300M out=deploy/\n"
               "  python -m nas.export RUN_DIR pick=max_latency_ms=5 batch=8\n"
               "  python -m nas.export RUN_DIR pick=42            (archive id or arch_id)\n"
               "key=value and --key=value are the same.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder printed at the end of "
                   "`python -m nas.search` (holds evaluated.csv / archive.sqlite)")
    p.add_argument("--pick", required=True, metavar="RULE",
                   help="an archive id or arch_id (unique prefix ok); knee (knee of the "
                        "(error, MACs) front); max_macs=N, max_params=N or max_latency_ms=X "
                        "(most accurate within the budget; N takes k/M/G/T: 300M, 1.5G)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default RUN_DIR/export/<arch_id>/)")
    p.add_argument("--batch", default="1", metavar="B",
                   help="batch size of the example input used for tracing and checks "
                        "(default 1; the ONNX batch axis is dynamic)")
    p.add_argument("--weights", type=Path, metavar="CKPT",
                   help="state_dict or Lightning checkpoint of the trained model (default: "
                        "the initial weights of the candidate's seed)")
    args = p.parse_args(_normalise_argv(list(sys.argv[1:] if argv is None else argv)))
    try:
        batch = int(args.batch)
        if batch < 1:
            raise ValueError
    except ValueError:
        print(f"error: batch must be a positive integer, got {args.batch!r}", file=sys.stderr)
        return 2
    try:
        res = export_run(args.run_dir, args.pick, out=args.out, batch=batch,
                         weights=args.weights)
    except (PickError, RunFolderError, SpecError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExportCheckError as e:
        print(f"EXPORT CHECK FAILED: {e}", file=sys.stderr)
        return 1
    print(summary(res))
    return 0


def entry() -> None:
    """``python -m nas.export``."""
    sys.exit(run(main))
