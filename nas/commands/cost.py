"""``python -m nas.cost``: the per-layer cost table of a classic network or a spec."""

from __future__ import annotations

import argparse
import json
import sys

from nas.commands import error_line, run, user_errors
from nas.cost import Cost, cost, human
from nas.registry import DataInfo, arch, arch_form
from search_spaces import baselines


def table_text(c: Cost, *, batch: int = 1, title: str = "", inplace: bool = True) -> str:
    """The per-layer table as aligned plain text; ``inplace`` picks the memory rule."""
    head = ("layer", "output", "activations", "stored", "MACs", "FLOPs", "params", "memory")
    rows = [(r.name, "x".join(map(str, r.out_shape)), human(r.activations), human(r.stored),
             human(r.macs), human(r.flops), human(r.params),
             human(r.memory_bytes(batch, inplace=inplace), "B"))
            for r in c.layers]
    rows.append(("total", "", human(c.activations), human(c.stored), human(c.macs),
                 human(c.flops), human(c.params),
                 human(c.memory_bytes(batch, inplace=inplace), "B")))
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    widths[0] = min(widths[0], 48)

    def fmt(r: tuple) -> str:
        name = r[0] if len(r[0]) <= widths[0] else r[0][: widths[0] - 1] + "~"
        cells = [name.ljust(widths[0])] + [str(x).rjust(w) for x, w in zip(r[1:], widths[1:])]
        return "  ".join(cells)

    sep = "-" * len(fmt(head))
    lines = [title] if title else []
    lines += [fmt(head), sep, *(fmt(r) for r in rows[:-1]), sep, fmt(rows[-1])]
    rule = ("2 x batch x stored x 4 B + 3 x params x 4 B; activation functions and dropout "
            "in place" if inplace else
            "2 x batch x activations x 4 B + 3 x params x 4 B; nothing in place")
    lines.append(f"exact: {c.macs:,} MACs, {c.params:,} params, {c.activations:,} "
                 f"activations ({c.stored:,} stored); training memory at batch {batch}: "
                 f"{human(c.memory_bytes(batch, inplace=inplace), 'B')} ({rule})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nas.cost",
        description="Per-layer cost table (output shape, activations, MACs, FLOPs, params, "
                    "training memory) of a classic network or a spec, computed analytically "
                    "from the spec without building the model. MACs exclude biases and equal "
                    "half of PyTorch's FlopCounterMode total.")
    p.add_argument("arch", nargs="?", help="baseline name (see --list), a spec JSON file or "
                   "inline JSON, or a quoted spec string such as '3x32x32 cba_c16 head_c10'")
    p.add_argument("--list", action="store_true", help="list the baseline names and exit")
    p.add_argument("--resolution", type=int, help="input resolution for a baseline name")
    p.add_argument("--classes", type=int, help="number of classes for a baseline name")
    p.add_argument("--channels", type=int, help="input channels for a baseline name")
    p.add_argument("--head", choices=("fc", "conv"), help="classifier of AlexNet / ZFNet / "
                   "VGG: fc (default) or conv (fully connected layers as convolutions, so "
                   "the net runs on larger inputs, e.g. --resolution 448)")
    p.add_argument("--batch", type=int, default=1, help="batch size for the memory column")
    p.add_argument("--memory-rule", choices=("inplace", "all"), default="inplace",
                   help="inplace (default): activation functions and dropout run in place "
                   "and store nothing, as the CS231n notes count; all: every layer's output "
                   "is stored")
    p.add_argument("--json", action="store_true",
                   help='print {"layers": [...], "total": {...}} instead of the table')
    args = p.parse_args(argv)
    if args.list:
        for name, info in baselines.BASELINES.items():
            print(f"{name:22s} {info.description}")
        return 0
    if not args.arch:
        p.error("give a baseline name, a spec JSON, or --list")
    if args.batch < 1:
        p.error(f"--batch must be >= 1, got {args.batch}")
    if (args.resolution or args.classes or args.channels or args.head) and \
            arch_form(args.arch) != "baseline":
        p.error("--resolution/--classes/--channels/--head apply to baseline names; a spec "
                "fixes its own input shape, classes and head")
    info = DataInfo(num_classes=args.classes, in_channels=args.channels)
    try:
        spec = arch(args.arch, info, args.resolution, head=args.head)
    except user_errors() as e:
        print(error_line(e), file=sys.stderr)
        return 2
    c = cost(spec)
    inplace = args.memory_rule == "inplace"
    if args.json:
        print(json.dumps({"name": spec.name, "spec": spec.to_string(),
                          "layers": [r.row(args.batch, inplace=inplace) for r in c.layers],
                          "total": c.total(args.batch, inplace=inplace)}, indent=1))
    else:
        title = (f"{spec.name or 'spec'}: input {'x'.join(map(str, spec.input))}, "
                 f"{spec.num_classes} classes")
        print(table_text(c, batch=args.batch, title=title, inplace=inplace))
    return 0


def entry() -> None:
    """``python -m nas.cost``."""
    sys.exit(run(main))
