"""nas.transfer through the one training path: init from a checkpoint or an export's
weights, a new classifier for a new class count, and freezing that really freezes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nas.commands.train import train_one
from nas.spec import ArchSpec
from nas.train import ClassifierModule, train_spec
from nas.transfer import head_index, load_pretrained, parse_freeze
from search_spaces import baselines as zoo

ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 1, "batch_size": 32, "limit_train_batches": 4, "num_threads": 1}
SOURCE = {"name": "synthetic", "channels": 1, "n_train": 256, "n_test": 64, "num_classes": 10}
# A different task: new templates (data_seed) and 4 classes.
TARGET = {"name": "synthetic", "channels": 1, "n_train": 128, "n_test": 32, "num_classes": 4,
          "data_seed": 7}
NET = "1x16x16 cba_c8 basic_c8 basic_c16_s2 head_c{}"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A checkpoint of NET trained one short epoch on the 10-class source task."""
    run = tmp_path_factory.mktemp("source")
    out = train_spec(ArchSpec.from_string(NET.format(10)), data=SOURCE, train=FAST, seed=0,
                     run_dir=run)
    return Path(out["checkpoint"])


def _net_state(ckpt: Path) -> dict:
    sd = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("net."):]: v for k, v in sd.items() if k.startswith("net.")}


def test_freeze_all_but_head_trains_only_a_new_classifier(pretrained, tmp_path):
    source = _net_state(pretrained)
    spec = ArchSpec.from_string(NET.format(4))
    train = {**FAST, "init": str(pretrained), "freeze": "all-but-head"}
    model = ClassifierModule(spec, train=train, seed=1)
    head = head_index(spec)
    assert head == 3
    # the classifier was replaced: 4 outputs, not the checkpoint's 10
    fc = model.net.layers[head].get_submodule("2")  # head = gap, flatten, fc
    assert fc.out_features == 4 and source[f"layers.{head}.2.weight"].shape[0] == 10
    frozen = [p for i in range(head) for p in model.net.layers[i].parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.net.layers[head].parameters())

    out = train_spec(spec, data=TARGET, train=train, seed=1, run_dir=tmp_path)
    assert out["init_layers"] == 3 and out["init_reset_layers"] == [head]
    after = _net_state(Path(out["checkpoint"]))
    for k, v in after.items():
        if not k.startswith(f"layers.{head}."):
            # weights and BN statistics of the frozen trunk are exactly the checkpoint's
            assert torch.equal(v, source[k]), k
    assert not torch.equal(after[f"layers.{head}.2.weight"], fc.weight.detach())  # trained


def test_frozen_parameters_get_no_gradient(pretrained):
    model = ClassifierModule(ArchSpec.from_string(NET.format(4)),
                             train={**FAST, "init": str(pretrained), "freeze": 2}, seed=0)
    model.train()
    assert not model.net.layers[1].training and model.net.layers[2].training
    loss = model(torch.randn(4, 1, 16, 16)).sum()
    loss.backward()
    assert all(p.grad is None for i in (0, 1) for p in model.net.layers[i].parameters())
    assert all(p.grad is not None for p in model.net.layers[2].parameters())


def test_same_classes_load_everything_and_export_weights_work(pretrained, tmp_path):
    spec = ArchSpec.from_string(NET.format(10))
    model = ClassifierModule(spec, train={**FAST, "init": str(pretrained)}, seed=5)
    assert model.init_report.reset == ()
    source = _net_state(pretrained)
    torch.save({k: v for k, v in source.items()}, tmp_path / "weights.pt")
    net = ClassifierModule(spec, train={**FAST, "init": str(tmp_path)}, seed=5).net
    assert all(torch.equal(v, source[k]) for k, v in net.state_dict().items())


def test_mismatched_architecture_is_a_clear_error_and_prefix_reuses_the_stem(pretrained):
    other = ArchSpec.from_string("1x16x16 cba_c8 basic_c12 basic_c16_s2 head_c4")
    with pytest.raises(ValueError, match=r"do not fit layer 1 \(basic_c12\).*init_match=prefix"):
        ClassifierModule(other, train={**FAST, "init": str(pretrained)})
    model = ClassifierModule(other, train={**FAST, "init": str(pretrained),
                                           "init_match": "prefix"})
    assert model.init_report.layers == 1 and model.init_report.reset == (1, 2, 3)
    assert torch.equal(model.net.layers[0].get_submodule("0").weight,
                       _net_state(pretrained)["layers.0.0.weight"])


def test_bad_freeze_values_name_the_fix():
    spec = zoo.get("lenet5")
    assert parse_freeze("all-but-head", spec) == head_index(spec) == len(spec.layers) - 1
    with pytest.raises(ValueError, match="train.freeze='trunk'.*all-but-head.*0 to 11"):
        parse_freeze("trunk", spec)
    with pytest.raises(ValueError, match="train.init_match='loose'"):
        ClassifierModule(spec, train={"init_match": "loose"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(ClassifierModule(spec).net, "/nonexistent/last.ckpt")


def test_head_index_of_classic_classifiers():
    vgg = zoo.get("vgg16", resolution=32)
    assert vgg.layers[head_index(vgg)].type == "fc"
    conv = zoo.get("vgg16", head="conv")
    assert conv.layers[head_index(conv)].token().startswith("conv_c1000_k1")
    inc = zoo.get("inception_v3")
    assert inc.layers[head_index(inc)].type == "head"  # the aux head is not the classifier


def test_train_cli_init_and_freeze(pretrained, tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train_one", overrides=[
            f"arch={tmp_path / 'spec.json'}", "data=synthetic", "data.channels=1",
            "data.num_classes=4", "data.n_train=128", "data.n_test=32", "data.size=16",
            "train=fast", "train.epochs=1", "train.limit_train_batches=2",
            f"init={pretrained}", "freeze=all-but-head", "progress=false"])
    (tmp_path / "spec.json").write_text(ArchSpec.from_string(NET.format(4)).to_json())
    record = train_one(cfg, run_dir=tmp_path / "run")
    assert record["train_config"]["freeze"] == "all-but-head"
    assert record["init_reset_layers"] == [3]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["init_layers"] == 3


def test_search_candidates_start_from_the_shared_stem(tmp_path):
    """A search with train.init and init_match=prefix: every candidate reuses at least the
    mobile space's fixed stem and first block, and the archive records how many layers."""
    import numpy as np

    from nas.archive import Archive
    from nas.commands.search import run_search
    from nas.config import CONF_DIR
    from nas.registry import SPACES

    space = SPACES.build("mobile", num_classes=10, in_channels=3, width_mults=[1.0],
                      resolutions=[16])
    spec = space.decode(space.sample(1, np.random.default_rng(0))[0])
    source = train_spec(spec, data={"name": "synthetic", "n_train": 128, "n_test": 32,
                                    "size": 16}, train=FAST, seed=0, run_dir=tmp_path / "src")
    overrides = [
        "+space=mobile", "data=synthetic", "data.n_train=128", "data.n_test=32", "data.size=16",
        "train=fast", "train.batch_size=64", "train.limit_train_batches=2",
        "budget.evaluations=3", "budget.initial=3", "baselines.names=[]", "progress=false",
        "algorithm=random", "space.resolutions=[16]", "space.width_mults=[1.0]",
        f"train.init={source['checkpoint']}", "train.init_match=prefix"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    run_search(cfg, tmp_path / "run")
    records = Archive(tmp_path / "run" / "archive.sqlite").records()
    assert len(records) == 3 and all(r.status == "ok" for r in records)
    assert all(r.extra["init_layers"] >= 2 for r in records)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_auxiliary_head_loss_joins_the_training_loss():
    import torch.nn.functional as F

    spec = ArchSpec.from_string("3x8x8 cba_c8 aux[head_c3] head_c3")
    model = ClassifierModule(spec, train={"aux_weight": 0.4}, seed=0).train()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    torch.manual_seed(0)
    loss = model.training_step((x, y), 0)
    main = F.cross_entropy(model(x), y)
    aux = F.cross_entropy(model.net.aux_outputs()[0], y)
    assert torch.allclose(loss, main + 0.4 * aux)

