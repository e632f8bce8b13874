"""nas.export: pick rules, exported files equivalent to PyTorch, load, clear errors."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import export as E
from nas.build import build
from nas.commands.export import main as export_main
from nas.commands.export import summary as summary_cmd
from nas.export import load
from nas.run import read_run
from nas.spec import ArchSpec
from tests.test_report import ARCHS, KNEE_ID, arch_id, make_run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


# --------------------------------------------------------------------------------------------
# Pick rules
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pick, expected_id", [
    ("3", 3),                         # archive id
    (arch_id(5), 5),                  # arch id
    (arch_id(4)[:6], 4),              # unique arch id prefix
    ("knee", KNEE_ID),
    ("max_macs=1M", 2),               # 671k MACs, 85%: best under 1M
    ("max_macs=10M", 3),              # 7.0M, 86% (11.7M and 13.2M are over budget)
    ("max_macs=1.5G", 5),             # everything fits: the most accurate
    ("max_params=10k", 2),            # 7.7k params
    ("max_params=30_000", 3),         # 24k params
    ("max_latency_ms=1.6", 2),        # 0.8 ms (85%) beats 1.5 ms (80%)
    ("max_latency_ms=2.5", 3),
])
def test_pick_rules_select_what_they_say(run_dir: Path, pick: str, expected_id: int):
    row = E.select(read_run(run_dir).evaluated, pick)
    assert int(row["id"]) == expected_id


def test_pick_by_real_arch_id_forms(run_dir: Path):
    ev = read_run(run_dir).evaluated
    ev["arch_id"] = "mobile-" + ev["arch_id"].astype(str)
    assert int(E.select(ev, f"mobile-{arch_id(3)}")["id"]) == 3
    assert int(E.select(ev, arch_id(3)[:6])["id"]) == 3  # hex part only


def test_budget_pick_never_returns_a_failed_architecture(run_dir: Path):
    ev = read_run(run_dir).evaluated
    failed = ev[ev["status"] == "failed"].iloc[0]
    row = E.select(ev, f"max_macs={int(failed['macs']) + 1}00")  # failed one is cheapest
    assert row["status"] == "ok"


@pytest.mark.parametrize("text, value", [("300M", 3e8), ("1.5G", 1.5e9), ("25k", 25e3),
                                         ("2.5", 2.5), ("1e6", 1e6), ("1,000", 1e3),
                                         ("2t", 2e12)])
def test_parse_number(text: str, value: float):
    assert E.parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("args, message", [
    (["pick=99"], "no architecture with id or arch_id '99'"),
    (["pick=zzzzzz"], "no architecture with id or arch_id 'zzzzzz'"),
    (["pick=max_macs=10k"], "no architecture within max_macs=10k (10.00k MACs); the smallest "
                            "available costs 27.69k MACs (id 0"),
    (["pick=max_params=100"], "the smallest available costs 166 params (id 0"),
    (["pick=max_latency_ms=0.01"], "the smallest available costs 0.1 ms (id 0"),
    (["pick=max_macs=lots"], "cannot read the number 'lots'"),
    (["pick=max_macs=-5M"], "cannot read the number '-5M'"),
    (["pick=max_flops=1G"], "unknown pick rule 'max_flops'"),
    (["pick=knee", "batch=0"], "batch must be a positive integer"),
])
def test_bad_picks_exit_2_with_a_clear_message(run_dir: Path, capsys, args, message):
    assert export_main([str(run_dir), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (run_dir / "export").exists()


def test_not_a_run_folder(tmp_path: Path, capsys):
    assert export_main([str(tmp_path), "pick=knee"]) == 2
    assert "is not a nas run folder: no evaluated.csv/archive.sqlite; pass the folder " \
           "printed at the end of `python -m nas.search`" in capsys.readouterr().err


def test_latency_budget_without_latency_column(tmp_path: Path):
    d = make_run_dir(tmp_path / "r")
    ev = read_run(d).evaluated.drop(columns="latency_ms")
    with pytest.raises(E.PickError, match="no successfully evaluated architecture has a "
                                          "latency_ms value"):
        E.select(ev, "max_latency_ms=5")


# --------------------------------------------------------------------------------------------
# Export round trip
# --------------------------------------------------------------------------------------------


def test_export_round_trip(run_dir: Path, capsys):
    assert export_main([str(run_dir), "pick=knee", "batch=2"]) == 0
    out = run_dir / "export" / arch_id(KNEE_ID)
    for name in ("spec.json", "weights.pt", "model.ts", "model.onnx", "train_command.txt"):
        assert (out / name).is_file(), name
    printed = capsys.readouterr().out
    assert arch_id(KNEE_ID) in printed and "ONNX" in printed

    spec = ArchSpec.from_json((out / "spec.json").read_text())
    assert spec == ArchSpec.from_string(ARCHS[KNEE_ID][0])
    net = load(out / "spec.json", weights=out / "weights.pt")
    assert not net.training
    x = torch.randn(3, *spec.input)  # another batch size than the traced one
    with torch.inference_mode():
        ref = net(x).numpy()
    ts = torch.jit.load(str(out / "model.ts"))
    with torch.inference_mode():
        np.testing.assert_allclose(ts(x).numpy(), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(ref).max())

    cmd = shlex.split((out / "train_command.txt").read_text())
    assert cmd == ["python", "-m", "nas.train", f"arch={(out / 'spec.json').resolve()}",
                   "data=cifar10", "train=full", "seed=7"]


def test_exporting_a_failed_architecture_warns(run_dir: Path, tmp_path: Path, capsys):
    assert export_main([str(run_dir), "pick=6", f"out={tmp_path / 'f'}"]) == 0
    assert "FAILED in the search (loss became NaN)" in capsys.readouterr().out


def test_export_to_chosen_folder_with_budget_pick(run_dir: Path, tmp_path: Path):
    out = tmp_path / "deploy"
    assert export_main([str(run_dir), "--pick", "max_macs=1M", f"out={out}"]) == 0
    assert (out / "model.onnx").is_file()
    assert ArchSpec.from_json((out / "spec.json").read_text()).to_string() == ARCHS[2][0]


@pytest.mark.parametrize("text", [
    "resnet20",  # residual adds, option-A (pad) shortcuts
    "3x32x32 cba_c16 incep_8-8-16-4-8-8 incep_8-0-16-4-8-0_f1_r1 maxpool_k2 head_c10",
    # channel shuffle / split, PReLU, ELU, scaled tanh, 1x7 kernels, join, aux head, scale
    "3x16x16 cba_c16_aprelu shuf2_c16 shuf1_c40_g2_s2 bneck_c24_x48_se1_ahswish elu "
    "cba_c24_k1_kw7 stanh fractal_c16_cols2 aux[head_c10] "
    "add[seq[conv_c16 scale_v0.2] | id] lrelu head_c10",
])
def test_export_checks_pass_on_other_block_kinds(tmp_path: Path, text: str):
    from nas.registry import arch as resolve_arch

    spec = resolve_arch(text)
    res = E.export(spec, tmp_path / "x", seed=1)
    tol = E.RTOL * max(E.MIN_SCALE, res.reference_scale)
    assert res.torchscript_max_diff <= tol and res.onnx_max_diff <= tol
    # exported from a batch-1 example by the dynamo exporter, the batch axis stays dynamic
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(res.files["onnx"]))
    assert {o.domain: o.version for o in model.opset_import}[""] == E.ONNX_OPSET
    sess = ort.InferenceSession(str(res.files["onnx"]), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"
    net = load(res.files["spec"], weights=res.files["weights"])
    x = torch.randn(4, *spec.input)
    with torch.inference_mode():
        ref = net(x).numpy()
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=E.RTOL * np.abs(ref).max())


def test_export_check_fails_loudly():
    ref = np.ones((2, 10), dtype=np.float32)
    with pytest.raises(E.ExportCheckError, match="NOT equivalent"):
        E._check("ONNX", ref, ref + 1e-3, E.RTOL)
    with pytest.raises(E.ExportCheckError, match="NOT equivalent"):
        E._check("ONNX", ref, ref * np.nan, E.RTOL)
    assert E._check("ONNX", 100 * ref, 100 * ref + 5e-3, E.RTOL) == pytest.approx(5e-3, rel=1e-3)
    with pytest.raises(E.ExportCheckError):  # relative: small outputs need small differences
        E._check("ONNX", 1e-2 * ref, 1e-2 * ref + 1e-5, E.RTOL)


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------


def test_load_is_equivalent_to_build_and_reads_lightning_checkpoints(tmp_path: Path):
    spec = ArchSpec.from_string(ARCHS[3][0])
    (tmp_path / "spec.json").write_text(spec.to_json())
    ref = build(spec, seed=3).eval()
    # a Lightning checkpoint: the net sits under a wrapper attribute
    ckpt = {"state_dict": {f"model.{k}": v for k, v in ref.state_dict().items()},
            "epoch": 1, "hyper_parameters": {"lr": 0.1}}
    torch.save(ckpt, tmp_path / "last.ckpt")
    torch.save(ref.state_dict(), tmp_path / "weights.pt")
    x = torch.randn(2, *spec.input)
    with torch.inference_mode():
        want = ref(x)
        for kw in ({"weights": tmp_path / "last.ckpt"}, {"weights": tmp_path / "weights.pt"},
                   {"seed": 3}):
            net = load(tmp_path, **kw)  # a folder holding spec.json works too
            assert torch.equal(net(x), want), kw


def test_load_rejects_weights_of_another_spec(tmp_path: Path):
    (tmp_path / "spec.json").write_text(ArchSpec.from_string(ARCHS[0][0]).to_json())
    other = build(ArchSpec.from_string(ARCHS[1][0]))
    torch.save(other.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="weights do not fit this spec"):
        load(tmp_path / "spec.json", weights=tmp_path / "w.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "missing.json")


def test_import_nas_is_cheap():
    import subprocess
    import sys

    code = "import sys, nas; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------
# Weights a search kept
# --------------------------------------------------------------------------------------------


def test_export_writes_the_weights_the_search_trained(tmp_path):
    """A search keeps its front's trained weights; the export writes them, and they score
    the archived accuracy on the search's validation split. A run without them says so."""
    from hydra import compose, initialize_config_dir

    from nas.commands.search import run_search
    from nas.config import CONF_DIR
    from nas.train import validate_spec

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[
            "+space=mobile", "data=digits", "train.epochs=2",
            "evaluator=local", "algorithm=random", "budget.evaluations=3",
            "budget.initial=3", "baselines.names=[]", "progress=false",
            "space.resolutions=[12]"])
    run = tmp_path / "run"
    run_search(cfg, run)
    res = E.export_run(run, "knee", out=tmp_path / "out")
    row = res.row
    assert res.weights_source == "kept"
    assert res.kept["accuracy"] == pytest.approx(row["accuracy"], abs=1e-6)
    assert row["accuracy"] > 0.3  # trained: chance is 0.1 on digits
    assert "validation accuracy" in summary_cmd(res)
    # weights.pt itself reproduces it
    net = load(res.files["spec"], weights=res.files["weights"])
    again = validate_spec(res.spec, net.state_dict(), data=dict(cfg.data),
                          train=dict(cfg.train), seed=0)
    assert again["accuracy"] == pytest.approx(row["accuracy"], abs=1e-6)
    # only the front's weights are kept
    front = set(read_run(run).evaluated["arch_id"]) and \
        {p.stem for p in (run / "weights").glob("*.ckpt")}
    assert row["arch_id"] in front
    for p in (run / "weights").glob("*.ckpt"):
        p.unlink()
    plain = E.export_run(run, "knee", out=tmp_path / "plain")
    assert plain.weights_source == "initial" and not plain.kept
    assert "NOT trained: the run kept no weights" in summary_cmd(plain)
