"""Supernets: extraction equivalence, channel sorting, BN calibration, registry errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nas.build import build
from nas.config import CONF_DIR
from nas.evaluate import PoolRunner
from nas.registry import SPACES
from nas.supernet import SUPERNETS, MobileSupernet, calibrate_bn, make_supernet

# A small mobile config (three stages, 8-12 px) keeps 50 extractions within seconds; the
# space's own config (conf/space/mobile.yaml with the digits preset) is checked as well.
SMALL = {"widths": [16, 24, 32], "strides": [1, 2, 2], "depths": [1, 2, 3],
         "width_mults": [0.25, 0.5], "resolutions": [8, 12]}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks on a shared 2-core machine run fastest (and steadiest) on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics/affines and kernel maps, so every tensor matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "kernel_maps" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)


def _space_from_conf() -> object:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=["+space=mobile"])
    space_cfg = OmegaConf.to_container(cfg.space, resolve=True)
    return instantiate(space_cfg, num_classes=10, in_channels=1, _convert_="all")


def _check_extraction(sn: MobileSupernet, n: int, seed: int) -> float:
    sn.eval()
    genomes = [sn.largest(), sn.smallest()] + list(sn.space.sample(n - 2, np.random.default_rng(seed)))
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for genome in genomes:
        spec, state = sn.extract(genome)
        assert spec == sn.space.decode(genome)
        net = build(spec)
        net.load_state_dict(state)
        net.eval()
        x = torch.randn(3, sn.space.in_channels, spec.input[1], spec.input[2], generator=g)
        with torch.no_grad():
            ref = sn(x, genome)
            got = net(x)
        assert ref.abs().max() > 1e-3  # a real signal, not a vanishing one
        worst = max(worst, float((got - ref).abs().max()))
    return worst


def test_extract_matches_supernet_on_50_genomes():
    torch.manual_seed(0)
    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space, width=0.25)
    _randomise(sn)
    assert _check_extraction(sn, 50, seed=1) <= 1e-5


def test_extract_matches_at_another_width():
    torch.manual_seed(0)
    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space, width=0.5)
    _randomise(sn, seed=1)
    assert _check_extraction(sn, 10, seed=4) <= 1e-5


def test_extract_matches_on_the_space_config():
    torch.manual_seed(0)
    sn = make_supernet(_space_from_conf())
    _randomise(sn, seed=3)
    assert sn.width == 0.5  # the largest of the digits preset's width multipliers
    assert _check_extraction(sn, 8, seed=2) <= 1e-5


# Residual: one supernet per block type; option-A (zero-pad) and option-B (projection)
# shortcuts; small widths and 8-12 px inputs.
RES_SMALL = {"widths": [[8, 12, 16], [16, 24], [24, 32]], "depths": [1, 2, 3],
             "se": [0.0, 0.25], "stem_width": 8, "groups": [[1, 64], [2, 32]],
             "resolutions": [8, 12]}


@pytest.mark.parametrize("block,shortcut,n", [("basic", "A", 50), ("bottleneck", "B", 50),
                                              ("basic", "B", 10), ("bottleneck", "A", 10)])
def test_residual_extract_matches_supernet(block, shortcut, n):
    torch.manual_seed(0)
    widths = RES_SMALL["widths"] if block == "basic" else [[8, 16], [16, 24], [24, 32]]
    space = SPACES.build("residual", num_classes=10, in_channels=3,
                      **{**RES_SMALL, "widths": widths, "shortcut": shortcut})
    sn = make_supernet(space, block=block)
    assert sn.space.blocks == (block,)
    _randomise(sn)
    assert _check_extraction(sn, n, seed=1) <= 1e-5


def test_residual_supernet_errors():
    space = SPACES.build("residual", num_classes=10, in_channels=3, **{**RES_SMALL,
                                                                    "groups": [[2, 32]]})
    with pytest.raises(ValueError, match=r"needs the groups choice \[1, 64\]"):
        make_supernet(space, block="bottleneck")
    with pytest.raises(ValueError, match=r"block='dense' is not a block choice"):
        make_supernet(space, block="dense")
    with pytest.raises(ValueError, match=r"residual supernets take block, not width"):
        make_supernet(space, width=0.5)


def test_largest_and_smallest_are_the_extremes():
    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    big, small = sn.space.values(sn.largest()), sn.space.values(sn.smallest())
    assert big["resolution"] == 12 and small["resolution"] == 8
    assert big["stage3.depth"] == 3 and small["stage3.depth"] == 1
    assert big["stage3.block3.kernel"] == 7 and small["stage2.block1.kernel"] == 3
    assert big["stage1.block1.expand"] == 6 and small["stage1.block1.expand"] == 3
    assert big["stage2.se"] == 0.25 and small["stage2.se"] == 0
    # Largest subnet = every supernet weight in use.
    _, state = sn.extract(sn.largest())
    n_sub = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    n_maps = sum(p.numel() for n, p in sn.named_parameters() if "kernel_maps" in n)
    n_bn = sum(b.numel() for n, b in sn.named_buffers() if "running" in n)
    assert n_sub == sum(p.numel() for p in sn.parameters()) - n_maps + n_bn


def test_kernel_transformation_changes_small_kernels_only():
    torch.manual_seed(0)
    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    slot = sn.stages[1][0]
    # Identity maps at initialisation: a small kernel is the centre of the largest.
    assert torch.equal(slot.dw_weight(3, 8), slot.dw.weight[:8, :, 2:5, 2:5])
    with torch.no_grad():
        slot.kernel_maps["5to3"].mul_(2.0)
    assert torch.allclose(slot.dw_weight(3, 8), 2 * slot.dw.weight[:8, :, 2:5, 2:5])
    assert torch.equal(slot.dw_weight(7, 8), slot.dw.weight[:8])


def test_sort_channels_keeps_the_largest_subnet_and_orders_by_importance():
    torch.manual_seed(0)
    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    _randomise(sn)
    sn.eval()
    x = torch.randn(2, 3, 12, 12)
    params = [p for p in sn.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    sn(x, sn.largest()).sum().backward()
    opt.step()
    slot = sn.stages[2][1]
    buf_before = opt.state[slot.project.weight]["momentum_buffer"].clone()
    with torch.no_grad():
        before = sn(x, sn.largest())
        some = sn.space.sample(1, np.random.default_rng(0))[0]
        before_some = sn(x, some)
    sn.sort_channels(opt)
    with torch.no_grad():
        after = sn(x, sn.largest())
        after_some = sn(x, some)
    assert torch.allclose(before, after, atol=1e-5)
    assert not torch.allclose(before_some, after_some, atol=1e-5)  # subnets share new channels
    imp = slot.project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])
    # The momentum buffer moved with its weights.
    buf = opt.state[slot.project.weight]["momentum_buffer"]
    assert torch.allclose(torch.sort(buf.abs().sum(dim=(0, 2, 3)))[0],
                          torch.sort(buf_before.abs().sum(dim=(0, 2, 3)))[0])


def test_calibration_then_extraction_matches_calibrating_the_extracted_net():
    torch.manual_seed(0)
    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    _randomise(sn)
    genome = sn.space.sample(1, np.random.default_rng(5))[0]
    res = sn.space.values(genome)["resolution"]
    batches = [torch.randn(8, 3, res, res) for _ in range(3)]
    # Extract with stale statistics, then calibrate the standalone net ...
    spec, state = sn.extract(genome)
    net = build(spec)
    net.load_state_dict(state)
    assert calibrate_bn(net, batches) == 24
    # ... or calibrate the supernet set to the subnet, then extract: the same network.
    calibrate_bn(sn, batches, forward=lambda x: sn(x, genome))
    _, state2 = sn.extract(genome)
    net2 = build(spec)
    net2.load_state_dict(state2)
    net2.eval()
    x = torch.randn(4, 3, res, res)
    with torch.no_grad():
        assert float((net(x) - net2(x)).abs().max()) <= 1e-5
        assert float((net(x) - sn(x, genome)).abs().max()) <= 1e-5


def test_errors_name_the_problem():
    for name in sorted(set(SPACES) - set(SUPERNETS)):
        space = SPACES.build(name, num_classes=10, in_channels=3)
        with pytest.raises(ValueError, match=rf"the {name} space has no supernet; spaces "
                                             rf"with one: mobile, residual"):
            make_supernet(space)
    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    with pytest.raises(ValueError, match=r"width=0.75 is not a width multiplier choice"):
        make_supernet(space, width=0.75)
    sn = make_supernet(space, width=0.5)
    other = list(sn.largest())
    other[space.gene("width").position] = 1  # a width choice the supernet's space lacks
    with pytest.raises(ValueError, match=r"width multiplier 0.5 only"):
        sn.extract(other)
    with pytest.raises(ValueError, match=r"expected 1 channel|genes"):
        sn.extract([0, 0])
    with pytest.raises(ValueError, match="calibration got no batches"):
        calibrate_bn(build(sn.space.decode(sn.smallest())), [])


# --------------------------------------------------------------------------------------------
# Training, resume, evaluator=supernet, bad checkpoints
# --------------------------------------------------------------------------------------------

ROOT = CONF_DIR.parent
# Synthetic 12x12 images and the small space: a few real optimiser steps in seconds.
TINY_DATA = ["data=synthetic", "data.size=12", "data.n_train=160", "data.n_test=32",
             "data.augment=false"]
TINY_SPACE = ["+space=mobile", "space.widths=[16,24,32]", "space.strides=[1,2,2]",
              "space.depths=[1,2,3]", "space.resolutions=[8,12]", "space.width_mults=[0.25,0.5]"]
TINY_TRAIN = ["train.epochs=2", "train.batch_size=32", "train.limit_train_batches=3",
              "supernet.calib_batches=2", "progress=false"]


def supernet_cfg(*extra: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("supernet", overrides=[*TINY_DATA, *TINY_SPACE, *TINY_TRAIN, *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nas.commands.supernet import run_supernet

    run_dir = tmp_path_factory.mktemp("supernet")
    summary = run_supernet(supernet_cfg(), run_dir)
    return run_dir, summary


def test_training_writes_a_checkpoint_and_summary(trained):
    import json

    from nas.supernet import file_hash, load_supernet

    run_dir, summary = trained
    assert summary["steps"] == 6 and summary["epochs"] == 2  # 3 batches x 2 epochs
    assert 0.0 <= summary["accuracy_smallest"] <= 1.0
    assert 0.0 <= summary["accuracy_largest"] <= 1.0
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert summary["checkpoint_sha256"] == file_hash(ckpt)
    metrics = (run_dir / "metrics.csv").read_text()
    assert "val/acc_largest" in metrics and "train/loss_smallest" in metrics
    sn, sha = load_supernet(ckpt)
    assert sha == file_hash(ckpt) and sn.width == 0.5
    # The steps changed the weights: not the initial supernet of the same seed.
    fresh = make_supernet(sn.space)
    torch.manual_seed(0)
    init = MobileSupernet(SPACES.build("mobile", **sn.space.config()))
    assert not torch.equal(sn.stages[0][0].expand.weight, init.stages[0][0].expand.weight)
    assert fresh.space.config() == sn.space.config()


def test_sandwich_samples_largest_smallest_and_seeded_random_subnets():
    from nas.supernet import SupernetModule

    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    m = SupernetModule(space="mobile", space_config=space.config(), random_subnets=2, seed=3)
    a, b = m.sandwich(7), m.sandwich(7)
    assert a == b and len(a) == 4
    assert a[0] == m.supernet.largest() and a[1] == m.supernet.smallest()
    assert m.sandwich(8)[2:] != a[2:]


def test_uniform_sampling_trains_random_subnets_only(tmp_path):
    """supernet.sandwich=false (SPOS): each step draws only the random subnets, seeded, all
    learning from the labels; the run records the choice and logs their mean loss."""
    import pandas as pd

    from nas.commands.supernet import run_supernet
    from nas.supernet import SupernetModule, load_supernet

    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    m = SupernetModule(space="mobile", space_config=space.config(), random_subnets=3, seed=3,
                       sandwich=False)
    a = m.sandwich(7)
    assert a == m.sandwich(7) and len(a) == 3 and m.sandwich(8) != a
    assert a == [tuple(g) for g in m.space.sample(3, np.random.default_rng([3, 7]))]
    with pytest.raises(ValueError, match=r"supernet.sandwich=false trains only random "
                                         r"subnets: set supernet.random_subnets >= 1"):
        SupernetModule(space="mobile", space_config=space.config(), random_subnets=0,
                       sandwich=False)
    for key, bad in (("sandwich", "maybe"), ("distill", 2), ("sort_channels", "yes")):
        with pytest.raises(ValueError, match=rf"supernet.{key}={bad!r} is invalid; pass true "
                                             r"or false"):
            SupernetModule(space="mobile", space_config=space.config(), **{key: bad})
    run = tmp_path / "spos"
    summary = run_supernet(supernet_cfg("supernet.sandwich=false"), run)
    assert summary["steps"] == 6
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["sandwich"] is False
    assert "train/loss" in pd.read_csv(run / "metrics.csv").columns
    assert load_supernet(run / "checkpoints" / "last.ckpt")[0].space.config() == \
        SupernetModule(**ckpt["hyper_parameters"]).space.config()


def test_progressive_shrinking_frees_one_kind_per_phase(tmp_path):
    from nas.commands.supernet import run_supernet
    from nas.supernet import SupernetModule, load_supernet

    space = SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL)
    m = SupernetModule(space="mobile", space_config=space.config(), train={"epochs": 4},
                       progressive=["kernel", "depth"], random_subnets=2, seed=0)
    # 3 phases over 4 epochs: epoch * 3 // 4
    assert [m.held(e) for e in range(4)] == [["kernel", "depth"], ["kernel", "depth"],
                                             ["depth"], []]
    genes = m.space.genes

    def choices(genome, kind):
        return {g.choices[genome[g.position]] for g in genes if g.name.endswith("." + kind)}

    first = [g for step in range(6) for g in m.sandwich(step, 0)]
    second = [g for step in range(6) for g in m.sandwich(step, 2)]
    assert all(choices(g, "kernel") == {7} and choices(g, "depth") == {3} for g in first)
    assert len({g for g in first}) > 1  # resolution, SE and width still vary
    assert all(choices(g, "depth") == {3} for g in second)
    assert set().union(*(choices(g, "kernel") for g in second)) == {3, 5, 7}
    assert m.sandwich(5, 3) == m.sandwich(5) and m.sandwich(5, 3)[1] == m.supernet.smallest()
    for bad in (["width_mult"], [], ["kernel", "kernel"]):
        with pytest.raises(ValueError, match=r"supernet.progressive=.* is invalid; pass null "
                                             r"or distinct gene kinds of the mobile space .*"
                                             r"from: resolution, width, depth, se, kernel"):
            SupernetModule(space="mobile", space_config=space.config(), progressive=bad)
    # The config switch end to end: a tiny run trains through both phases and records them.
    summary = run_supernet(supernet_cfg("supernet.progressive=[kernel]"), tmp_path / "ps")
    assert summary["steps"] == 6
    ckpt = torch.load(tmp_path / "ps" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["progressive"] == ["kernel"]
    load_supernet(tmp_path / "ps" / "checkpoints" / "last.ckpt")


def test_resume_after_kill_continues_to_the_same_weights(tmp_path, trained):
    """A run killed (SIGKILL) after its first epoch's checkpoint, resumed, ends with the
    weights of the uninterrupted run (the module fixture)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from nas.commands.supernet import run_supernet
    from nas.supernet import load_supernet

    killed = tmp_path / "killed"
    ckpt = killed / "checkpoints" / "last.ckpt"
    args = [*TINY_DATA, *TINY_SPACE, *TINY_TRAIN]
    proc = subprocess.Popen([sys.executable, "-m", "nas.supernet", *args,
                             f"hydra.run.dir={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    before = None
    while before is None and time.time() < deadline and proc.poll() is None:
        try:  # the first epoch's checkpoint, completely written
            before = torch.load(ckpt, map_location="cpu", weights_only=True)
        except (FileNotFoundError, RuntimeError, EOFError):
            time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert before is not None and before["global_step"] == 3  # killed in the second epoch
    run_supernet(supernet_cfg(f"resume={killed}"), tmp_path / "unused")
    after = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert after["global_step"] == 6 and after["epoch"] >= before["epoch"]
    import pandas as pd

    metrics = pd.read_csv(killed / "metrics.csv")  # both epochs, across the kill
    assert metrics["epoch"].dropna().astype(int).tolist() == [0, 1]
    assert not list(killed.glob("metrics.part*.csv"))
    resumed, _ = load_supernet(ckpt)
    full, _ = load_supernet(trained[0] / "checkpoints" / "last.ckpt")
    for (name, a), (_, b) in zip(resumed.state_dict().items(), full.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_search_with_supernet_evaluator_end_to_end(tmp_path, trained):
    import pandas as pd

    from nas.archive import Archive
    from nas.commands.search import run_search
    from nas.supernet import InheritedScorer

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[
            *TINY_DATA, *TINY_SPACE, "space.width_mults=[0.5]", "train=fast",
            "train.batch_size=32", "evaluator=supernet", f"evaluator.checkpoint={ckpt}",
            "evaluator.calib_batches=2", "budget.evaluations=6", "budget.initial=4",
            "budget.per_iteration=2", "baselines.names=[]", "progress=false",
            "algorithm.generations=3", "algorithm.pop_size=12"])
    run_search(cfg, tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    assert len(ev) == 6 and (ev["status"] == "ok").all()
    archive = Archive(tmp_path / "run" / "archive.sqlite")
    records = archive.records()
    archive.close()
    scorer = InheritedScorer(ckpt, data=OmegaConf.to_container(cfg.data, resolve=True),
                             train=OmegaConf.to_container(cfg.train, resolve=True), calib_batches=2)
    for r in records:
        assert r.fidelity["evaluator"] == "supernet"
        assert r.fidelity["checkpoint_sha256"] == trained[1]["checkpoint_sha256"][:16]
        # The archived accuracy is the inherited weights' score, reproducibly.
        assert r.accuracy == pytest.approx(scorer.score(r.genome)["accuracy"], abs=1e-9)

    # Export writes the picked subnet's inherited, recalibrated weights.
    from nas.commands.export import summary
    from nas.export import export_run, load

    res = export_run(tmp_path / "run", "knee", out=tmp_path / "export")
    picked = next(r for r in records if r.arch_id == res.row["arch_id"])
    assert res.inherited["accuracy"] == pytest.approx(picked.accuracy, abs=1e-9)
    _, net, _ = scorer.network(picked.genome)
    exported = load(tmp_path / "export", weights=tmp_path / "export" / "weights.pt")
    for k, v in net.state_dict().items():
        assert torch.equal(exported.state_dict()[k], v), k
    text = summary(res)
    assert "inherited from supernet" in text and "python -m nas.train" in text


@pytest.mark.slow
def test_ddp_on_cpu_with_two_gloo_processes(tmp_path):
    """Lightning's DDP path (train.strategy=ddp, 2 CPU processes, gloo): trains, the first
    process writes the one summary, and the checkpoint loads."""
    import json
    import subprocess
    import sys

    from nas.supernet import load_supernet

    run = tmp_path / "ddp"
    p = subprocess.run([sys.executable, "-m", "nas.supernet", *TINY_DATA, *TINY_SPACE,
                        *TINY_TRAIN, "train.batch_size=16", "train.accelerator=cpu",
                        "train.devices=2", "train.strategy=ddp", f"hydra.run.dir={run}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["epochs"] == 2  # 3 batches of each rank's shard
    load_supernet(run / "checkpoints" / "last.ckpt")


def _search_args(ckpt, *extra: str) -> list[str]:
    return [*TINY_DATA, *TINY_SPACE, "space.width_mults=[0.5]", "train=fast",
            "train.batch_size=32", "evaluator=supernet", f"evaluator.checkpoint={ckpt}",
            "evaluator.calib_batches=2", "baselines.names=[]", "progress=false",
            "algorithm.generations=3", "algorithm.pop_size=12", *extra]


def test_supernet_scoring_in_worker_processes_matches_in_process(trained):
    """evaluator.workers=2: two pool workers each load the supernet and score what the
    search's process would; a baseline (no genome) still trains from scratch there."""
    from nas.evaluate import Candidate, make_evaluator
    from nas.supernet import InheritedScorer

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    data = {"name": "synthetic", "size": 12, "n_train": 160, "n_test": 32, "augment": False}
    train = {"epochs": 1, "batch_size": 32, "limit_train_batches": 2, "num_threads": 1}
    scorer = InheritedScorer(ckpt, data=data, train=train, calib_batches=2)
    space = scorer.supernet.space
    genomes = [space.canonical(g) for g in space.sample(5, np.random.default_rng(1))]
    cands = [Candidate(space.arch_id(g), space.decode(g), 0, genome=tuple(g), space="mobile")
             for g in genomes]
    cands.append(Candidate("baseline", space.decode(genomes[0]), 0))  # no genome: trained
    with make_evaluator({"backend": "supernet", "checkpoint": str(ckpt), "calib_batches": 2,
                         "workers": 2}, data=data, train=train) as ev:
        assert isinstance(ev, PoolRunner) and ev.n_workers == 2
        results = ev.evaluate(cands)
    assert [r.arch_id for r in results] == [c.arch_id for c in cands]
    assert all(r.status == "ok" for r in results), [r.reason for r in results]
    for g, r in zip(genomes, results):
        assert r.accuracy == pytest.approx(scorer.score(g)["accuracy"], abs=1e-9)
        assert r.extra["fidelity"] == scorer.fidelity
    assert "fidelity" not in results[-1].extra and results[-1].images_per_second > 0
    with pytest.raises(ValueError, match=r"evaluator.workers=-1 is invalid"):
        make_evaluator({"backend": "supernet", "checkpoint": str(ckpt), "workers": -1},
                       data=data, train=train)
    with pytest.raises(ValueError, match=r"evaluator.calib_batches=0 is invalid"):
        make_evaluator({"backend": "supernet", "checkpoint": str(ckpt), "calib_batches": 0,
                        "workers": 2}, data=data, train=train)


@pytest.mark.slow
def test_supernet_search_resumes_after_sigkill_without_scoring_twice(tmp_path, trained):
    """A supernet-scored search killed mid-way and resumed keeps every row archived before
    the kill as it was (same row id and time) and ends with the archive of an uninterrupted
    run: each architecture scored once."""
    import sqlite3
    import subprocess
    import sys

    from tests.conftest import kill_after_records

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    args = _search_args(ckpt, "budget.evaluations=30", "budget.initial=4",
                        "budget.per_iteration=2")

    def rows(path):
        con = sqlite3.connect(path)
        try:
            return con.execute("SELECT id, arch_id, accuracy, created FROM records "
                               "ORDER BY id").fetchall()
        finally:
            con.close()

    killed, full = tmp_path / "killed", tmp_path / "full"
    kill_after_records([sys.executable, "-m", "nas.search", *args, f"hydra.run.dir={killed}"],
                       killed / "archive.sqlite", 8, cwd=ROOT, poll=0.01)
    before = rows(killed / "archive.sqlite")
    assert 8 <= len(before) < 30
    subprocess.run([sys.executable, "-m", "nas.search", f"resume={killed}", "progress=false"],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "nas.search", *args, f"hydra.run.dir={full}"],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    after, ref = rows(killed / "archive.sqlite"), rows(full / "archive.sqlite")
    assert after[:len(before)] == before  # archived rows untouched, none scored again
    assert len(after) == len(ref) == 30
    assert len({r[1] for r in after}) == 30
    assert [r[1] for r in after] == [r[1] for r in ref]
    for a, b in zip(after, ref):
        assert a[2] == pytest.approx(b[2], abs=1e-9)


def test_scores_run_channels_last_and_match_the_default_layout(trained):
    """The scorer runs subnets channels-last (faster CPU kernels); its per-image hits and
    loss are those of calibrating and validating in the default layout, and the network
    it returns (for export) is back in the default layout."""
    import torch.nn.functional as F

    from nas.supernet import InheritedScorer

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    data = {"name": "synthetic", "size": 12, "n_train": 160, "n_test": 32, "augment": False}
    train = {"epochs": 1, "batch_size": 32, "limit_train_batches": 2, "num_threads": 1}
    scorer = InheritedScorer(ckpt, data=data, train=train, calib_batches=2)
    space = scorer.supernet.space
    for g in space.sample(3, np.random.default_rng(4)):
        spec, net, got = scorer.network(g, per_image=True)
        assert all(p.is_contiguous() for p in net.parameters())
        ref = build(spec)
        ref.load_state_dict(scorer.supernet.extract(space.canonical(g))[1])
        res = spec.input[1]
        calibrate_bn(ref, (x.contiguous() for x, _ in scorer.data.batches("calib", res)))
        hits, loss = [], 0.0
        with torch.no_grad():
            for x, y in scorer.data.batches("val", res):
                logits = ref(x.contiguous())
                hits.append(logits.argmax(1) == y)
                loss += float(F.cross_entropy(logits, y, reduction="sum"))
        hits = torch.cat(hits).numpy()
        assert (got["correct"] == hits).all()
        assert got["val_loss"] == pytest.approx(loss / len(hits), rel=1e-5)


def test_calib_seed_changes_the_calibration_images_only(trained):
    """Another calibration seed calibrates on other training images and validates on the
    same split (what bench_supernet --calib-seed compares)."""
    from nas.supernet import InheritedScorer

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    data = {"name": "synthetic", "size": 12, "n_train": 160, "n_test": 32, "augment": False,
            "split_seed": 0}
    train = {"batch_size": 32, "val_fraction": 0.2, "num_threads": 1}
    a, b = (InheritedScorer(ckpt, data=data, train=train, calib_batches=2, calib_seed=s)
            for s in (0, 1))
    ca, cb = (torch.cat([x for x, _ in s.data.batches("calib", 12)]) for s in (a, b))
    assert ca.shape == cb.shape and not torch.equal(ca, cb)
    for (xa, ya), (xb, yb) in zip(a.data.batches("val", 12), b.data.batches("val", 12),
                                  strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_finetune_steps_change_the_score_path(trained):
    from nas.supernet import InheritedScorer

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    data = {"name": "synthetic", "size": 12, "n_train": 160, "n_test": 32, "augment": False}
    train = {"batch_size": 32, "val_fraction": 0.1, "lr": 0.05, "num_threads": 1}
    plain = InheritedScorer(ckpt, data=data, train=train, calib_batches=2)
    tuned = InheritedScorer(ckpt, data=data, train=train, calib_batches=2, finetune_steps=3)
    g = plain.supernet.smallest()
    spec, net, s0 = plain.network(g)
    _, tuned_net, s1 = tuned.network(g)
    w0 = dict(net.named_parameters())
    moved = [n for n, p in tuned_net.named_parameters() if not torch.equal(p, w0[n])]
    assert moved and s0["val_images"] == s1["val_images"]
    assert tuned.fidelity["finetune_steps"] == 3


def test_bad_checkpoints_and_spaces_name_the_problem(tmp_path, trained):
    from nas.evaluate import check_evaluator

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    space = SPACES.build("mobile", num_classes=10, in_channels=3,
                      **{**SMALL, "width_mults": [0.5]})
    check_evaluator({"backend": "supernet", "checkpoint": str(ckpt)}, space)  # fits
    cases = [
        (tmp_path / "nope.ckpt", space, r"nope.ckpt: no such file"),
        (ckpt, SPACES.build("mobile", num_classes=10, in_channels=3, **SMALL),
         r"trained for a mobile space config with width_mults=\[0.5\], the search's has "
         r"width_mults=\[0.25,0.5\]; run the search with space.width_mults=\[0.5\]"),
        (ckpt, SPACES.build("mobile", num_classes=10, in_channels=3,
                         **{**SMALL, "width_mults": [0.5], "depths": [1, 2]}),
         r"depths=\[\[1,2,3\],\[1,2,3\],\[1,2,3\]\], the search's has depths=\[\[1,2\]"),
        (ckpt, SPACES.build("mobile", num_classes=5, in_channels=3, **{**SMALL, "width_mults": [0.5]}),
         r"num_classes=10, the search's has num_classes=5; use the data set"),
        (ckpt, SPACES.build("residual", num_classes=10, in_channels=3),
         r"is a supernet of the mobile space, but the search's space is residual"),
        (ckpt, SPACES.build("inception", num_classes=10, in_channels=3),
         r"the inception space has no supernet; spaces with one: mobile, residual"),
    ]
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(ckpt.read_bytes()[:1000])
    cases.append((corrupt, space, r"corrupt.ckpt is not a readable PyTorch file \(corrupt or "
                                  r"truncated\?"))
    foreign = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"spec": "x"}}, foreign)
    cases.append((foreign, space, r"plain.ckpt is not a supernet checkpoint"))
    for path, sp, msg in cases:
        with pytest.raises(ValueError, match=msg):
            check_evaluator({"backend": "supernet", "checkpoint": str(path)}, sp)
    from nas.evaluate import make_evaluator

    with pytest.raises(ValueError, match=r"needs evaluator.checkpoint=PATH"):
        make_evaluator({"backend": "supernet", "checkpoint": None},
                       data={"name": "synthetic"}, train={})


def test_evaluator_yaml_keys_are_backend_options():
    from nas.evaluate import BACKENDS, backend_options

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=["+space=mobile", "evaluator=supernet"])
    assert cfg.evaluator.backend == "supernet" and "supernet" in BACKENDS
    assert set(cfg.evaluator) - {"backend"} <= backend_options("supernet")
    assert OmegaConf.is_missing(cfg.evaluator, "checkpoint")  # required, no default


def test_residual_supernet_trains(tmp_path):
    from nas.commands.supernet import run_supernet
    from nas.supernet import load_supernet

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("supernet", overrides=[
            *TINY_DATA, "+space=residual", "space.widths=[[8,12,16],[16,24],[24,32]]",
            "space.depths=[1,2]", "space.stem_width=8", "space.resolutions=[8,12]",
            "space.groups=[[1,64]]", "train.epochs=1", "train.batch_size=32",
            "train.limit_train_batches=2", "supernet.calib_batches=1", "progress=false"])
    summary = run_supernet(cfg, tmp_path / "res")
    assert summary["steps"] == 2 and summary["restrict"] == {"blocks": ["basic"]}
    sn, _ = load_supernet(tmp_path / "res" / "checkpoints" / "last.ckpt")
    assert sn.block == "basic" and sn.space.name == "residual"


def test_cli_names_the_spaces_with_a_supernet(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "nas.supernet", "+space=inception",
                        f"hydra.run.dir={tmp_path / 'r'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2  # a user's mistake: one line, status 2
    assert p.stderr.strip().splitlines()[-1] == ("error: the inception space has no supernet; "
                                                 "spaces with one: mobile, residual")
    assert not (tmp_path / "r").exists()  # nothing but Hydra's bookkeeping was left: removed


def test_a_search_takes_its_space_from_the_supernet_checkpoint(trained):
    """evaluator=supernet: the space settings come from the checkpoint; the command line
    may repeat them (a per-stage list or its one-list shorthand alike) but not contradict
    them, which is one line naming both values."""
    from nas.supernet import adopt_checkpoint_space

    ckpt = trained[0] / "checkpoints" / "last.ckpt"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=["+space=mobile"])
    base = OmegaConf.to_container(cfg.space, resolve=True)
    space, taken = adopt_checkpoint_space(base, ckpt, {})
    assert space["width_mults"] == [0.5] and "space.width_mults=[0.5]" in taken
    built = SPACES.build("mobile", num_classes=10, in_channels=3,
                         **{k: v for k, v in space.items() if k != "_target_"})
    from nas.evaluate import check_evaluator

    check_evaluator({"backend": "supernet", "checkpoint": str(ckpt)}, built)  # it fits
    # the same depths written as one list for every stage: accepted
    same, _ = adopt_checkpoint_space(base, ckpt, {"depths": [1, 2, 3]})
    assert same == space
    with pytest.raises(ValueError, match=r"is a supernet of the mobile space with "
                                         r"width_mults=\[0.5\], but the command line sets "
                                         r"space.width_mults=\[0.25\]; drop that override"):
        adopt_checkpoint_space(base, ckpt, {"width_mults": [0.25]})
