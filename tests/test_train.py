"""nas.train: the one training path, its recipe, and the two training CLIs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf.errors import MissingMandatoryValue

from nas.commands import error_line
from nas.commands.baselines import COLUMNS, run_baselines
from nas.commands.train import train_one
from nas.spec import ArchSpec
from nas.train import (
    CandidateFailed,
    ClassifierModule,
    TrainConfig,
    _cosine_with_warmup,
    param_groups,
    train_spec,
)
from search_spaces import baselines as zoo

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
# Small real data: 1-channel synthetic images, so LeNet-5 (1x32x32) fits as published.
DATA = {"name": "synthetic", "channels": 1, "n_train": 256, "n_test": 64}
FAST = {"epochs": 1, "batch_size": 32, "limit_train_batches": 4, "num_threads": 1}
# No normalisation and ReLU: a huge learning rate overflows it to NaN within a few steps.
RELU_NET = "1x32x32 conv_c16_bias1 relu conv_c16_bias1 relu conv_c16_s2_bias1 relu flatten fc_c10"


@pytest.fixture(scope="module")
def lenet() -> ArchSpec:
    return zoo.get("lenet5", num_classes=10, in_channels=1, resolution=32)


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


# ---------------------------------------------------------------------------- recipe


def test_train_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="train.optimizer='adam'.*sgd, adamw"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="train.epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=3)
    with pytest.raises(ValueError, match=r"unknown key\(s\) train.lr_max: nothing reads them"):
        TrainConfig.from_any({"lr_max": 0.1})


@pytest.mark.parametrize("name", ["proxy", "full", "fast"])
def test_train_yaml_matches_train_config(name):
    cfg = compose_cfg("train_one", [f"train={name}", "arch=lenet5"])
    assert isinstance(TrainConfig.from_any(cfg.train), TrainConfig)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    f = _cosine_with_warmup(4, 20)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and math.isclose(f(12), 0.5) and f(20) == 0.0


def test_no_weight_decay_on_norms_and_biases():
    spec = ArchSpec.from_string("3x16x16 cba_c8 conv_c8_bias1 head_c10")
    decay, no_decay = param_groups(ClassifierModule(spec), 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["params"]
    n = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n == sum(p.numel() for p in ClassifierModule(spec).parameters())


# ---------------------------------------------------------------------------- train_spec


def test_train_spec_reports_metrics(lenet):
    out = train_spec(lenet, data=DATA, train=FAST, seed=0, test=True)
    assert out["status"] == "ok"
    assert 0.0 <= out["accuracy"] <= 1.0 and 0.0 <= out["test_accuracy"] <= 1.0
    assert out["val_loss"] > 0 and out["epochs"] == 1
    assert out["images_per_second"] > 0 and out["train_seconds"] > 0
    assert (out["macs"], out["params"]) == (416_520, 61_706)


def test_train_spec_learns_and_is_reproducible():
    spec = ArchSpec.from_string("3x16x16 cba_c16 cba_c32_s2 head_c4")
    data = {"name": "synthetic", "num_classes": 4, "size": 16, "n_train": 256}
    train = {"epochs": 3, "batch_size": 32, "lr": 0.05, "num_threads": 1,
             "schedule": "onecycle", "optimizer": "adamw", "weight_decay": 0.01}
    a = train_spec(spec, data=data, train=train, seed=3)
    b = train_spec(spec, data=data, train=train, seed=3)
    assert a["accuracy"] >= 0.75  # chance is 0.25
    assert a["accuracy"] == b["accuracy"] and a["val_loss"] == pytest.approx(b["val_loss"])


def test_channel_and_class_mismatch_say_how_to_fix():
    rgb = zoo.get("lenet5", num_classes=10, in_channels=3, resolution=32)
    with pytest.raises(ValueError, match=r"3 input channel\(s\) but synthetic has 1; build it "
                                         r"with in_channels=1"):
        train_spec(rgb, data=DATA, train=FAST, seed=0)
    hundred = zoo.get("lenet5", num_classes=100, in_channels=1, resolution=32)
    with pytest.raises(ValueError, match="100 classes but synthetic has 10; build it with "
                                         "num_classes=10"):
        train_spec(hundred, data=DATA, train=FAST, seed=0)


def test_config_conflicts_are_reported(lenet):
    with pytest.raises(ValueError, match="train.resolution=16 .* 32x32"):
        train_spec(lenet, data=DATA, train={**FAST, "resolution": 16}, seed=0)
    with pytest.raises(ValueError, match="data.batch_size is set by training"):
        train_spec(lenet, data={**DATA, "batch_size": 8}, train=FAST, seed=0)


def test_huge_learning_rate_fails_as_diverged():
    spec = ArchSpec.from_string(RELU_NET)
    with pytest.raises(CandidateFailed, match=r"diverged: loss=nan at step \d+"):
        train_spec(spec, data=DATA, train={**FAST, "lr": 1e3}, seed=0)


def test_time_limit_fails_as_timeout(lenet):
    with pytest.raises(CandidateFailed, match="timeout after 0.001 s"):
        train_spec(lenet, data=DATA, train={**FAST, "max_time_s": 0.001}, seed=0)


def test_run_dir_gets_checkpoint_and_metrics(lenet, tmp_path):
    out = train_spec(lenet, data=DATA, train=FAST, seed=0, run_dir=tmp_path)
    ckpt = Path(out["checkpoint"])
    assert ckpt.is_file() and (tmp_path / "metrics.csv").is_file()
    model = ClassifierModule.load_from_checkpoint(ckpt, weights_only=False)
    assert model.spec == lenet
    x = torch.zeros(2, 1, 32, 32)
    assert model(x).shape == (2, 10)


@pytest.mark.slow
def test_ddp_two_cpu_processes(lenet):
    train = {**FAST, "devices": 2, "strategy": "ddp_spawn", "accelerator": "cpu"}
    out = train_spec(lenet, data=DATA, train=train, seed=0, test=True)
    assert out["status"] == "ok" and 0.0 <= out["accuracy"] <= 1.0
    assert out["images_per_second"] > 0


# ---------------------------------------------------------------------------- CLIs


def test_train_cli_end_to_end(tmp_path):
    cfg = compose_cfg("train_one", ["arch=lenet5", "data=synthetic", "data.channels=1",
                                    "train=fast", "progress=false"])
    record = train_one(cfg, run_dir=tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved == json.loads(json.dumps(record))
    for key in ("accuracy", "test_accuracy", "macs", "params", "spec", "checkpoint"):
        assert key in saved
    assert 0 <= saved["test_accuracy"] <= 1 and saved["params"] == 61_706
    assert Path(saved["checkpoint"]).is_file()
    assert ArchSpec.from_json((tmp_path / "spec.json").read_text()).name == "lenet5"


def test_train_cli_reads_a_spec_file(tmp_path):
    spec = ArchSpec.from_string("1x32x32 cba_c8_s2 head_c10", name="tiny")
    path = tmp_path / "tiny.json"
    path.write_text(spec.to_json())
    cfg = compose_cfg("train_one", [f"arch={path}", "data=synthetic", "data.channels=1",
                                    "train=fast", "progress=false", "test=false"])
    record = train_one(cfg, run_dir=tmp_path / "run")
    assert record["name"] == "tiny" and "test_accuracy" not in record


@pytest.mark.parametrize("space_override", [[], ["+space=mobile"]])
def test_train_cli_space_genome(tmp_path, space_override):
    from nas.registry import SPACES
    from search_spaces import format_genome

    space = SPACES.build("mobile", num_classes=10, in_channels=3)
    genome = format_genome(space.xl)
    cfg = compose_cfg("train_one", [f"arch=mobile:{genome}", "data=synthetic", "train=fast",
                                    "progress=false", "test=false", *space_override])
    record = train_one(cfg, run_dir=tmp_path)
    assert record["name"] == space.decode(space.xl).name and record["status"] == "ok"


def test_train_cli_errors_are_one_line(tmp_path):
    cfg = compose_cfg("train_one", ["data=synthetic"])
    with pytest.raises(MissingMandatoryValue) as e:
        train_one(cfg, run_dir=tmp_path)
    assert error_line(e.value) == ("error: missing mandatory value arch; pass it on the "
                                    "command line, e.g. arch=...")
    cfg = compose_cfg("train_one", ["arch=resnet21", "data=synthetic", "train=fast"])
    with pytest.raises(ValueError) as e:
        train_one(cfg, run_dir=tmp_path)
    assert error_line(e.value).startswith("error: unknown baseline 'resnet21' (did you mean")
    cfg = compose_cfg("train_one", ["arch=resnet20", "data=cifar10"])
    with pytest.raises(MissingMandatoryValue) as e:
        train_one(cfg, run_dir=tmp_path)
    assert "data.root" in error_line(e.value)


def test_train_cli_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nas.train", "data=synthetic",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: missing mandatory value arch")


def test_baselines_cli_end_to_end(tmp_path):
    cfg = compose_cfg("baselines", ["data=synthetic", "data.channels=1", "train=fast",
                                    "progress=false", "baselines.names=[lenet5,resnet20,vgg11]",
                                    "baselines.max_macs=100e6"])
    df = run_baselines(cfg, run_dir=tmp_path)
    csv = pd.read_csv(tmp_path / "baselines.csv")
    assert tuple(csv.columns) == COLUMNS and len(df) == len(csv) == 3
    rows = csv.set_index("name")
    assert list(rows["status"]) == ["ok", "ok", "skipped"]
    assert "max_macs" in rows.loc["vgg11", "reason"]
    for name in ("lenet5", "resnet20"):
        assert 0 <= rows.loc[name, "accuracy"] <= 1 and 0 <= rows.loc[name, "val_accuracy"] <= 1
        assert rows.loc[name, "spec"].startswith("1x32x32 ")
    assert rows.loc["lenet5", "params"] == 61_706


def test_baselines_cli_unknown_name(tmp_path):
    cfg = compose_cfg("baselines", ["data=synthetic", "baselines.names=[lenet6]"])
    with pytest.raises(ValueError, match="unknown baseline 'lenet6'"):
        run_baselines(cfg, run_dir=tmp_path)


def test_baselines_accept_the_later_classic_nets(tmp_path):
    """Every later zoo name resolves for a data set (the fixed-size Inception nets at their
    own 299 px) and is costed; a MACs cap of 1 skips the training."""
    names = ["mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v1_g3", "fractalnet",
             "preact_resnet164", "plain34", "resnet50d", "vgg16_c", "inception_v3"]
    cfg = compose_cfg("baselines", ["data=synthetic", "progress=false",
                                    f"baselines.names=[{','.join(names)}]",
                                    "baselines.max_macs=1"])
    rows = run_baselines(cfg, run_dir=tmp_path).set_index("name")
    assert list(rows.index) == names and set(rows["status"]) == {"skipped"}
    assert rows.loc["inception_v3", "spec"].startswith("3x299x299 ")
    assert rows.loc["fractalnet", "params"] == 33_724_618


def test_train_cli_builds_the_convolutional_classifier():
    from nas.registry import DataInfo
    from nas.registry import arch as resolve_arch

    info = DataInfo("synthetic", num_classes=4, in_channels=3, resolution=64)
    spec = resolve_arch("vgg11", info, 448, head="conv")
    assert spec.name == "vgg11_convhead" and spec.num_classes == 4 and spec.input[1] == 448
    with pytest.raises(ValueError, match="head='conv' applies to baseline names"):
        resolve_arch("mobile:1-2-3", info, head="conv")


# ---------------------------------------------------------------------------- memory


def test_network_that_cannot_fit_is_refused_before_building():
    # 10^12 channels: the weights alone are ~1e14 bytes; building it used to die in the allocator.
    huge = ArchSpec.from_string("1x32x32 cba_c1000000000000_s2 head_c10", name="huge")
    with pytest.raises(CandidateFailed) as e:
        train_spec(huge, data=DATA, train=FAST, seed=0)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("out of memory: spec 'huge' needs about ")
    assert "to train at batch 32" in msg and msg.endswith("; use a smaller network")
    assert "RAM has " in msg or "GPU has " in msg


def test_memory_check_names_the_batch_size_when_that_is_the_fix(lenet, monkeypatch):
    import nas.train

    monkeypatch.setattr(nas.train, "machine_memory", lambda accelerator: ("the RAM", 10**6))
    with pytest.raises(CandidateFailed, match=r"lenet5.*batch 32.*the RAM has 1\.00MB; lower "
                                              r"train\.batch_size=32 or use a smaller network"):
        train_spec(lenet, data=DATA, train=FAST, seed=0)


def test_network_that_cannot_fit_is_a_failed_candidate_in_a_search():
    from nas.evaluate import run_task

    huge = ArchSpec.from_string("1x32x32 cba_c1000000000000_s2 head_c10", name="huge")
    result = run_task({"arch_id": "a", "spec": huge.to_json(), "data": DATA,
                            "train": FAST, "seed": 0})
    assert result["status"] == "failed"
    assert result["reason"].startswith("out of memory: spec 'huge' needs about ")


def test_train_cli_refuses_a_network_that_cannot_fit(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text(ArchSpec.from_string("1x32x32 cba_c1000000000000_s2 head_c10",
                                         name="huge").to_json())
    proc = subprocess.run([sys.executable, "-m", "nas.train", f"arch={path}", "data=synthetic",
                           "data.channels=1", "train=fast", f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training failed: out of memory: spec 'huge' needs about ")


# --------------------------------------------------------------------------------------------
# Stopping at a rung and continuing from the saved state (fidelity=sha)
# --------------------------------------------------------------------------------------------


def test_training_continues_from_a_saved_state_on_the_same_schedule():
    """A run stopped after epoch 1 of a 3-epoch recipe keeps the schedule of 3 epochs; the
    continuation starts from its weights, optimiser and step count (not from scratch) and
    ends the schedule at zero learning rate."""
    import io

    from nas.train import train_spec

    spec = zoo.get("lenet5", num_classes=10, in_channels=1, resolution=16)
    recipe = {**FAST, "epochs": 3, "lr": 0.1}
    first = train_spec(spec, data=DATA, train=recipe, seed=0, stop_epoch=1, keep_state=True)
    ck1 = torch.load(io.BytesIO(first["state"]), weights_only=False)
    assert first["epochs"] == 1 and ck1["global_step"] == 4
    lr1 = ck1["lr_schedulers"][0]["_last_lr"][0]
    # cosine over 12 steps, 4 done: 0.1 * (1 + cos(pi * 4 / 12)) / 2
    assert lr1 == pytest.approx(0.1 * (1 + math.cos(math.pi * 4 / 12)) / 2)
    # continuing to where it already is trains nothing: the weights are the saved ones
    same = train_spec(spec, data=DATA, train=recipe, seed=0, stop_epoch=1,
                      resume=first["state"], keep_state=True)
    ck_same = torch.load(io.BytesIO(same["state"]), weights_only=False)
    fresh = ClassifierModule(spec, train=recipe, seed=0).state_dict()
    for k, v in ck1["state_dict"].items():
        assert torch.equal(ck_same["state_dict"][k], v)
    assert any(not torch.equal(fresh[k], v) for k, v in ck1["state_dict"].items())
    last = train_spec(spec, data=DATA, train=recipe, seed=0, resume=first["state"],
                      keep_state=True)
    ck3 = torch.load(io.BytesIO(last["state"]), weights_only=False)
    assert last["epochs"] == 3 and ck3["global_step"] == 12
    assert ck3["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"stop_epoch=4 is invalid; pass an epoch in 1..3"):
        train_spec(spec, data=DATA, train=recipe, seed=0, stop_epoch=4)
