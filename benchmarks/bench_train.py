"""Training throughput and time-to-accuracy: the nas data pipeline vs a plain DataLoader one.

    python benchmarks/bench_train.py [--epochs 30] [--batch-size 512] [--lr 0.4]
        [--models resnet20 mobile] [--pipelines nas plain] [--train-fraction 1.0]
        [--precision auto] [--compile] [--num-workers N] [--json OUT]
        [--root ../shared/data/cifar10-jpeg.tar.gz]

Each model is trained on the full CIFAR-10 (all 50,000 training images: ``val_fraction=0``;
test accuracy on the 10,000 test images) twice, side by side in one process:

* ``nas``: ``nas.train.train_spec`` -- uint8 images resident on the GPU, batches gathered
  by index (`nas.data.IndexBatchLoader`), random crop (pad 4) + flip, normalisation (and
  resizing, if any) done batch-wise on the device in ``on_after_batch_transfer``.
* ``plain``: the usual recipe -- a ``torch.utils.data.Dataset`` over the *same* decoded
  uint8 arrays (``dm.arrays("train")`` / ``dm.arrays("test")``, same stratified subset for
  ``--train-fraction``), random crop with zero padding 4 and horizontal flip per sample in
  ``__getitem__`` (numpy slicing, torch RNG so every worker draws its own), normalisation on
  the CPU, a ``DataLoader`` (``--num-workers``, default ``min(8, os.cpu_count())``,
  persistent workers, ``pin_memory`` on CUDA, shuffle, drop_last like the nas loader) and a
  minimal LightningModule.

Everything but the data pipeline is shared: the network (``nas.build.build(spec, seed)``,
channels_last, optionally ``torch.compile``d), the `TrainConfig` recipe (optimiser, schedule,
epochs, batch size, label smoothing, precision: the plain module reuses
``ClassifierModule.configure_optimizers``, hence ``nas.train.param_groups`` and the same
per-step LR schedule), the Lightning ``Trainer`` settings and the seed.

Models (``--models``): ``resnet20`` (CIFAR ResNet-20, He et al. 2016, option-A shortcuts,
0.27M parameters), ``mobile`` -- the mobile-space candidate
``SPACES.build("mobile", num_classes=10, in_channels=3).ancestor_genome("mobilenet_v2")``,
i.e. MobileNetV2 (CIFAR form, width 1.0, 32x32 input; 2.24M parameters, 88M MACs), genome
``2-1-1-0-0-2-0-2-0-0-0-0-2-0-0-2-0-2-0-2-0-0-3-0-0-2-0-2-0-2-0-2-2-0-0-2-0-2-0-2-0-0-2-0-0-2-0-2-0-2-0-0-0-0-0-2-0-0-0-0-0-0``
(the script prints the genome it used) -- any other baseline name of
``search_spaces.baselines`` (built at 32x32, e.g. ``resnet18``, ``resnet56``), or
``mobile:GENOME`` for another genome of that space.

Reported per model and pipeline: training images/second (training images over the time
spent in the training loop, all epochs, the first one with its warm-up / compilation /
worker start-up included, validation excluded -- there is none here; the same definition
as ``ClassifierModule``'s ``train/images_per_second``), seconds per epoch (training loop
time / epochs), total train seconds (wall time of ``trainer.fit``) and test accuracy; then
the throughput ratio nas/plain per model. ``--json OUT`` also writes the rows.

GPU targets this benchmark is meant to measure (one H100 / H200; **not measured yet** -- the
session that wrote it had no GPU, only the CPU smoke run below was executed):

1. the nas pipeline trains at least **3x** the images/second of the plain pipeline (same
   model, recipe and precision);
2. a ResNet-style baseline reaches **93% test accuracy** on CIFAR-10 within **60 s** of
   training (``train s`` column).

Suggested recipe for target 2, untested on a GPU: SGD (Nesterov, momentum 0.9), one-cycle
schedule (25% warm-up), peak lr 0.4, weight decay 5e-4 (none on norms and biases), label
smoothing 0.1, batch 512, bf16-mixed, channels_last, ``--compile``, 20-30 epochs. Be aware
that CIFAR ResNet-20 is probably too small for 93%: the paper reports 91.25% after 164
epochs, and this JPEG copy of CIFAR-10 costs a little accuracy (shared/data/README.md), so
expect roughly 90-92% from ``resnet20`` in 30 epochs. The wider CIFAR-form ``resnet18``
(11.2M parameters, 0.56 GMACs) usually passes 93% within ~20 epochs of a recipe like this
(an expectation from common CIFAR practice, not a measurement here); 20 epochs in 60 s need
>= ~17k training images/s, and whether an H100 gets there is what the run below measures. Note that with ``--compile`` the
second pipeline of a model may reuse the first one's compiled kernels from the inductor
cache, which favours ``plain`` (it runs second) -- a conservative bias for target 1.

Commands (from the repository root; the archive is at ../shared/data/ by default)::

    # CPU smoke test (seconds of training; the first decode of the tar takes ~15 s and is
    # cached under $NAS_CACHE or ~/.cache/nas)
    python benchmarks/bench_train.py --epochs 1 --train-fraction 0.01 --batch-size 64 \\
        --models resnet20 --pipelines nas plain

    # GPU, target 1 (throughput) and the ResNet-20 / mobile accuracy rows
    python benchmarks/bench_train.py --epochs 30 --models resnet20 mobile --json runs/bench_train.json
    python benchmarks/bench_train.py --epochs 30 --models resnet20 mobile --compile \\
        --json runs/bench_train_compile.json

    # GPU, target 2 (93% in 60 s) with the wider ResNet
    python benchmarks/bench_train.py --epochs 20 --models resnet18 --pipelines nas --compile \\
        --json runs/bench_train_resnet18.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from nas.build import build
from nas.cost import totals
from nas.data import make_datamodule
from nas.registry import SPACES
from nas.spec import ArchSpec
from nas.train import (
    CandidateFailed,
    ClassifierModule,
    TrainConfig,
    quiet_logs,
    resolve_precision,
    train_spec,
)
from search_spaces import baselines, format_genome

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"
PIPELINES = ("nas", "plain")
MOBILE_ANCESTOR = "mobilenet_v2"


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def model_spec(name: str, num_classes: int = 10, in_channels: int = 3) -> tuple[ArchSpec, str]:
    """The spec for a ``--models`` entry and a line describing it."""
    if name == "mobile" or name.startswith("mobile:"):
        space = SPACES.build("mobile", num_classes=num_classes, in_channels=in_channels)
        if name == "mobile":
            genome = space.ancestor_genome(MOBILE_ANCESTOR)
            how = f"ancestor_genome({MOBILE_ANCESTOR!r})"
        else:
            genome = space.parse_genome(name.partition(":")[2])
            how = "given genome"
        spec = space.decode(genome)
        return spec, f"mobile space, {how}: {format_genome(space.canonical(genome))}"
    spec = baselines.get(name, num_classes=num_classes, in_channels=in_channels, resolution=32)
    return spec, baselines.BASELINES[name].description


# --------------------------------------------------------------------------------------------
# Plain pipeline: Dataset + DataLoader + per-sample CPU augmentation
# --------------------------------------------------------------------------------------------


class PlainCIFAR(Dataset):
    """uint8 (N, H, W, C) images -> normalised float (C, H, W) tensors, augmented per sample.

    Args:
        images, labels: the decoded arrays.
        mean, std: per-channel statistics on the 0..1 scale.
        train: apply random crop (zero padding ``pad``) and horizontal flip.
        pad, flip: augmentation settings (the data module's ``crop_pad`` / ``flip``).
        resolution: output side (bilinear resize per sample when it differs from native).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, mean: tuple[float, ...],
                 std: tuple[float, ...], train: bool, pad: int = 4, flip: bool = True,
                 resolution: int | None = None) -> None:
        self.images = np.ascontiguousarray(images)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.train, self.pad, self.flip = train, int(pad), bool(flip)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        h, w = img.shape[:2]
        if self.train:
            p = self.pad
            if p > 0:
                padded = np.pad(img, ((p, p), (p, p), (0, 0)))
                r, c = torch.randint(0, 2 * p + 1, (2,)).tolist()
                img = padded[r:r + h, c:c + w]
            if self.flip and torch.rand(()).item() < 0.5:
                img = img[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
        x = (x / 255.0 - self.mean) / self.std
        if self.resolution is not None and self.resolution != h:
            x = F.interpolate(x[None], size=(self.resolution, self.resolution),
                              mode="bilinear", align_corners=False,
                              antialias=self.resolution < h)[0]
        return x, int(self.labels[i])


class PlainModule(pl.LightningModule):
    """Minimal classifier: the same network and optimiser/schedule as `ClassifierModule`."""

    def __init__(self, spec: ArchSpec, cfg: TrainConfig, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = build(spec, seed=seed).to(memory_format=torch.channels_last)
        if cfg.compile:
            self.net.compile()
        self.images = 0
        self.train_s = 0.0
        self._t0: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx: int):
        x, y = batch
        loss = F.cross_entropy(self(x).float(), y, label_smoothing=self.cfg.label_smoothing)
        self.images += int(x.shape[0])
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x).float()
        self.log("test/acc", (logits.argmax(1) == y).float().mean(), batch_size=x.shape[0])

    # Same timing rule as ClassifierModule: the training loop only, synchronised on CUDA.
    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def on_train_epoch_start(self) -> None:
        self._t0 = self._now()

    def on_train_epoch_end(self) -> None:
        if self._t0 is not None:
            self.train_s += self._now() - self._t0
            self._t0 = None

    # Not a copy: the very same method, so optimiser, param groups and schedule are identical.
    configure_optimizers = ClassifierModule.configure_optimizers


def _accelerator() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def run_plain(spec: ArchSpec, cfg: TrainConfig, *, root: Path, seed: int,
              num_workers: int) -> dict[str, Any]:
    """Train and test ``spec`` with the plain pipeline; metrics as `train_spec` names them."""
    accelerator = _accelerator()
    cuda = accelerator == "gpu"
    with quiet_logs(True):
        pl.seed_everything(seed, workers=False, verbose=False)
        dm = make_datamodule("cifar10", root=root, batch_size=cfg.batch_size,
                             train_fraction=cfg.train_fraction, val_fraction=cfg.val_fraction,
                             seed=seed)
        common = {"mean": dm.mean, "std": dm.std, "pad": dm.crop_pad, "flip": dm.flip,
                  "resolution": spec.input[1]}
        train_set = PlainCIFAR(*dm.arrays("train"), train=True, **common)
        test_set = PlainCIFAR(*dm.arrays("test"), train=False, **common)
        loader_kw = {"batch_size": cfg.batch_size, "num_workers": num_workers,
                     "pin_memory": cuda, "persistent_workers": num_workers > 0}
        train_loader = DataLoader(train_set, shuffle=True,
                                  drop_last=len(train_set) >= cfg.batch_size, **loader_kw)
        test_loader = DataLoader(test_set, shuffle=False, **loader_kw)
        model = PlainModule(spec, cfg, seed)
        trainer = pl.Trainer(
            max_epochs=cfg.epochs, accelerator=accelerator, devices=1,
            precision=resolve_precision(cfg.precision, accelerator),
            deterministic=cfg.deterministic, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            limit_val_batches=0, log_every_n_steps=10,
        )
        t = time.perf_counter()
        trainer.fit(model, train_dataloaders=train_loader)
        fit_s = time.perf_counter() - t
        tested = trainer.test(model, dataloaders=test_loader, verbose=False)
    return {
        "status": "ok",
        "test_accuracy": float(tested[0]["test/acc"]) if tested else None,
        "train_seconds": fit_s,
        "images_per_second": model.images / model.train_s if model.train_s > 0 else None,
        "epochs": int(trainer.current_epoch),
        "images": model.images,
        "loop_seconds": model.train_s,
    }


def run_nas(spec: ArchSpec, cfg: TrainConfig, *, root: Path, seed: int) -> dict[str, Any]:
    out = train_spec(spec, data={"name": "cifar10", "root": str(root)}, train=cfg, seed=seed,
                     test=True)
    return dict(out)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _images_per_epoch(n: int, batch_size: int) -> int:
    """Training images per epoch with the loaders' drop_last rule (keep a lone partial batch)."""
    return n // batch_size * batch_size if n >= batch_size else n


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help="CIFAR-10 (tar/folder/pickles; default %(default)s)")
    p.add_argument("--models", nargs="+", default=["resnet20", "mobile"],
                   help="'mobile' (mobile-space MobileNetV2 ancestor), 'mobile:GENOME', or a "
                        "baseline name built at 32x32 (resnet20, resnet18, ...)")
    p.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=PIPELINES)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.4, help="peak learning rate")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"))
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--schedule", default="onecycle", choices=("onecycle", "cosine"))
    p.add_argument("--warmup-epochs", type=float, default=0.0,
                   help="onecycle: rising part in epochs (0 = 25%%); cosine: linear warm-up")
    p.add_argument("--train-fraction", type=float, default=1.0,
                   help="stratified share of the 50,000 training images (smoke runs)")
    p.add_argument("--precision", default="auto",
                   help="Lightning precision; auto = bf16-mixed on CUDA, 32-true on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader workers of the plain pipeline (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args()

    root = args.root.expanduser()
    if not root.exists():
        p.error(f"--root {root} does not exist; pass the CIFAR-10 tar or folder")
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs,
        train_fraction=args.train_fraction, val_fraction=0.0, precision=args.precision,
        compile=args.compile,
    )
    accelerator = _accelerator()
    precision = resolve_precision(cfg.precision, accelerator)

    # Decode (or load the cached arrays) once up front, and count the training images.
    t = time.perf_counter()
    dm = make_datamodule("cifar10", root=root, batch_size=cfg.batch_size,
                         train_fraction=cfg.train_fraction, val_fraction=0.0, seed=args.seed)
    n_train, n_test = len(dm.arrays("train")[1]), len(dm.arrays("test")[1])  # small copies
    per_epoch = _images_per_epoch(n_train, cfg.batch_size)
    print(f"data: {root} ({'cache' if dm.from_cache else 'decoded'} in "
          f"{time.perf_counter() - t:.1f} s): {n_train} train images ({per_epoch} per epoch), "
          f"{n_test} test")
    del dm
    print(f"device: {_device_name()}; torch {torch.__version__}, Lightning {pl.__version__}; "
          f"precision {precision}; compile {cfg.compile}; plain num_workers {args.num_workers}")
    print(f"recipe: {cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g} "
          f"{cfg.schedule}, wd {cfg.weight_decay:g}, label smoothing {cfg.label_smoothing:g}, "
          f"seed {args.seed}")

    rows: list[dict[str, Any]] = []
    for name in args.models:
        spec, how = model_spec(name)
        macs, params, _ = totals(spec)
        print(f"\n{name}: {how} ({params / 1e6:.2f}M params, {macs / 1e6:.1f}M MACs)",
              flush=True)
        for pipe in args.pipelines:
            try:
                if pipe == "nas":
                    out = run_nas(spec, cfg, root=root, seed=args.seed)
                else:
                    out = run_plain(spec, cfg, root=root, seed=args.seed,
                                    num_workers=args.num_workers)
            except CandidateFailed as e:
                out = {"status": f"failed: {e}"}
            ips = out.get("images_per_second")
            epochs = out.get("epochs") or 0
            row = {
                "model": name, "spec": spec.name, "params": params, "macs": macs,
                "pipeline": pipe, "status": out["status"], "images_per_second": ips,
                "epoch_seconds": (per_epoch / ips) if ips else None,
                "train_seconds": out.get("train_seconds"),
                "test_accuracy": out.get("test_accuracy"), "epochs": epochs,
                "images_per_epoch": per_epoch,
            }
            rows.append(row)
            print(f"  {pipe:<5} done: {row['status']}, {_fmt(ips, '.0f')} img/s, "
                  f"{_fmt(row['train_seconds'], '.1f')} s", flush=True)
            _free()

    print(f"\n{'model':<12} {'pipeline':<8} {'img/s':>10} {'s/epoch':>9} {'train s':>9} "
          f"{'test acc':>9}")
    for r in rows:
        acc = r["test_accuracy"]
        print(f"{r['model']:<12} {r['pipeline']:<8} {_fmt(r['images_per_second'], ',.0f'):>10} "
              f"{_fmt(r['epoch_seconds'], '.2f'):>9} {_fmt(r['train_seconds'], '.1f'):>9} "
              f"{'-' if acc is None else f'{100 * acc:.2f}%':>9}")
    ratios: dict[str, float | None] = {}
    for name in args.models:
        ips = {r["pipeline"]: r["images_per_second"] for r in rows if r["model"] == name}
        if ips.get("nas") and ips.get("plain"):
            ratios[name] = ips["nas"] / ips["plain"]
            print(f"throughput nas/plain, {name}: {ratios[name]:.2f}x (target >= 3x on a GPU)")
    best = [r for r in rows if r["test_accuracy"] is not None and r["train_seconds"]]
    hits = [r for r in best if r["test_accuracy"] >= 0.93 and r["train_seconds"] <= 60]
    if best:
        print("93% within 60 s of training: "
              + (", ".join(f"{r['model']}/{r['pipeline']}" for r in hits) if hits else "no run"))

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "device": _device_name(), "torch": torch.__version__,
            "lightning": pl.__version__, "precision": precision,
            "num_workers": args.num_workers, "train_config": cfg.to_dict(),
            "seed": args.seed, "root": str(root), "rows": rows, "ratios": ratios,
        }
        args.json.write_text(json.dumps(record, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
