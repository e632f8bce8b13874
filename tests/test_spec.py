"""ArchSpec: round trips, string form, shape inference and error messages."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nas import spec as S
from nas.fuzz import random_spec
from search_spaces import baselines


@pytest.mark.parametrize("name", list(baselines.BASELINES))
def test_baselines_round_trip_json_and_string(name):
    spec = baselines.get(name)
    again = S.ArchSpec.from_json(spec.to_json())
    assert again == spec and again.name == spec.name
    assert S.ArchSpec.from_string(spec.to_string()) == spec


@pytest.mark.parametrize("seed", range(50))
def test_random_specs_round_trip(seed):
    spec = random_spec(np.random.default_rng(seed))
    assert S.ArchSpec.from_json(spec.to_json()) == spec
    assert S.ArchSpec.from_string(spec.to_string()) == spec


def _types_in(spec: S.ArchSpec) -> set[str]:
    seen: set[str] = set()

    def walk(layer: S.Layer, shape: S.Shape) -> None:
        seen.add(layer.type)
        if isinstance(layer, S.Block):
            walk(S.lowered(layer, shape), shape)
        elif isinstance(layer, S.Seq):
            for sub in layer.layers:
                walk(sub, shape)
                shape = S.out_shape(sub, shape)
        elif isinstance(layer, (S.Add, S.Concat, S.Join)):
            for b in layer.branches:
                walk(b, shape)
        elif isinstance(layer, S.Aux):
            walk(layer.branch, shape)

    for layer, shape in zip(spec.layers, [spec.input, *spec.shapes()]):
        walk(layer, shape)
    return seen


# Registered types the random specs leave to their own tests: NAS-Bench-201's cells and the
# DAG they lower to (test_nb201.py builds all 15,625), the zero op only a DAG or a cell uses.
NOT_FUZZED = {"nb201", "nb201r", "dag", "zero"}


def test_random_specs_draw_every_registered_layer_type():
    """The property tests over random specs (cost against PyTorch's counters, round trips,
    building) reach every layer, block and combinator there is, the new ones included."""
    seen: set[str] = set()
    for seed in range(120):  # the seeds test_cost.py checks against PyTorch's counters
        seen |= _types_in(random_spec(np.random.default_rng(seed)))
    assert set(S.LAYER_TYPES) - NOT_FUZZED - seen == set()


def test_string_form_is_short_and_compresses_repeats():
    s = baselines.get("resnet56").to_string()
    assert s == ("3x32x32 cba_c16 basic_c16_scA*9 basic_c32_s2_scA basic_c32_scA*8 "
                 "basic_c64_s2_scA basic_c64_scA*8 head_c10")


def test_tokens_document_fields():
    assert S.MBConv(c=40, k=5, e=6, s=2, se=0.25).token() == "ir_c40_k5_s2_se0.25"
    assert S.layer_from_token("ir_c40_k5_s2_se0.25") == S.MBConv(c=40, k=5, e=6, s=2, se=0.25)
    assert S.Inception(64, 96, 128, 16, 32, 32).token() == "incep_64-96-128-16-32-32"
    assert S.layer_from_token("incep_64-96-128-16-32-32_f1_r1") == S.Inception(
        64, 96, 128, 16, 32, 32, f=True, r=True)
    assert S.layer_from_token("hswish") == S.Act("hswish")


def test_specs_are_frozen_and_hashable():
    spec = baselines.get("resnet20")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.layers[0].c = 3  # type: ignore[misc]
    assert hash(spec) == hash(baselines.get("resnet20"))


def test_shapes_and_num_classes():
    spec = baselines.get("resnet18", resolution=224, num_classes=7)
    shapes = spec.shapes()
    assert shapes[0] == (64, 112, 112) and shapes[1] == (64, 56, 56)
    assert shapes[-2] == (512, 7, 7) and shapes[-1] == (7,)
    assert spec.num_classes == 7


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_inconsistent_spec_names_layer_and_shapes():
    with pytest.raises(S.SpecError) as e:
        S.ArchSpec.from_string("3x8x8 conv_c8_s2 maxpool_k2 maxpool_k2 maxpool_k2 gap flatten "
                               "fc_c10")
    msg = str(e.value)
    assert "layers[3] maxpool_k2" in msg and "(8, 1, 1)" in msg and "empty output" in msg


def test_inconsistency_inside_a_block_names_the_block():
    with pytest.raises(S.SpecError) as e:
        S.ArchSpec.from_string("3x2x2 cba_c8_s2 trans_c4 gap flatten fc_c2")
    assert str(e.value).startswith("layers[1] trans_c4: [3] avgpool_k2_s2 on input (4, 1, 1) "
                                   "would produce an empty output (4, 0, 0)")


def test_fc_on_feature_map_explains_fix():
    with pytest.raises(S.SpecError, match="put 'flatten'"):
        S.ArchSpec.from_string("3x8x8 conv_c8 fc_c10")


def test_residual_shape_mismatch():
    bad = S.Add((S.Conv(c=8, k=3), S.Identity()))
    with pytest.raises(S.SpecError, match="branch output shapes differ"):
        S.ArchSpec(input=(3, 8, 8), layers=(bad,))


@pytest.mark.parametrize(("doc", "needle"), [
    ({"input": [3, 32, 32], "layers": [{"type": "conv", "c": 8, "k": "x"}]},
     "layers[0]: conv.k='x' is invalid; pass an integer"),
    ({"input": [3, 32, 32], "layers": [{"type": "conv", "k": 3}]},
     "layers[0]: 'conv' is missing required field(s) ['c']"),
    ({"input": [3, 32, 32], "layers": [{"type": "conv", "c": 8, "kernel": 3}]},
     "layers[0].kernel: unknown field for 'conv'"),
    ({"input": [3, 32, 32], "layers": [{"type": "convolution", "c": 8}]},
     "layers[0].type: unknown layer type 'convolution'"),
    ({"input": [3, 32, 32], "layers": [{"c": 8}]}, "layers[0]: missing field 'type'"),
    ({"input": [3, 32], "layers": [{"type": "gap"}]}, "input: expected [channels, height"),
    ({"layers": []}, "spec: missing field 'input'"),
    ({"input": [3, 32, 32], "layers": [{"type": "seq", "layers": [{"type": "ir", "c": 0}]}]},
     "layers[0].layers[0]: ir.c=0 is invalid; pass an integer >= 1"),
    ({"input": [3, 32, 32], "layers": [{"type": "act", "fn": "swish"}]},
     "act.fn='swish' is invalid; pass one of relu, relu6"),
])
def test_malformed_json_names_the_field(doc, needle):
    with pytest.raises(S.SpecError) as e:
        S.ArchSpec.from_json(json.dumps(doc))
    assert needle in str(e.value)


def test_invalid_json_text():
    with pytest.raises(S.SpecError, match="malformed"):
        S.ArchSpec.from_json("{not json")


@pytest.mark.parametrize(("text", "needle"), [
    ("224 conv_c8", "must start with the input shape"),
    ("3x8x8 conv_c8_q3", "cannot read 'q3'"),
    ("3x8x8 bogus_c8", "unknown layer type 'bogus'"),
    ("3x8x8 conv_cx", "field 'c' needs a number"),
    ("3x8x8 conv_c8*0", "repeat count"),
    ("3x8x8 incep_1-2-3", "expects 6 dash-separated values"),
])
def test_bad_strings(text, needle):
    with pytest.raises(S.SpecError) as e:
        S.ArchSpec.from_string(text)
    assert needle in str(e.value)


def test_groups_must_divide_channels():
    with pytest.raises(S.SpecError, match="not divisible by groups"):
        S.ArchSpec.from_string("3x8x8 conv_c8_g2")
    with pytest.raises(S.SpecError, match="not divisible by"):
        S.Bottleneck(c=64, m=30, g=4)


def test_unknown_baseline_lists_known():
    with pytest.raises(ValueError) as e:
        baselines.get("resnet19")
    msg = str(e.value)
    assert "(did you mean resnet18" in msg and "mobilenet_v2" in msg


@pytest.mark.parametrize("arg", [{"num_classes": 0}, {"resolution": -1},
                                 {"in_channels": 1.5}])
def test_baseline_bad_arguments(arg):
    with pytest.raises(ValueError, match="must be a positive integer"):
        baselines.get("resnet20", **arg)


def test_tokens_of_the_later_layers():
    assert S.layer_from_token("pick_i0-1-3:8:2") == S.Pick("0-1-3:8:2")
    assert S.layer_from_dict({"type": "pick", "i": 3}) == S.Pick("3")
    assert S.layer_from_token("s2d") == S.SpaceToDepth(2)
    assert S.layer_from_token("d2s_r4") == S.DepthToSpace(4)
    assert S.RBF(c=10).token() == "rbf_c10"
    assert S.layer_from_token("rbf_c10_learn1") == S.RBF(c=10, learn=True)
    mux = S.MuxBlock(c=40, k="3.5.7", e=4, s=2, se=0.75, r=0.5, dg=2, sc="dnu")
    assert mux.token() == "mux_c40_k3.5.7_e4_s2_se0.75_r0.5_dg2_scdnu"
    assert S.layer_from_token(mux.token()) == mux
    assert S.layer_from_dict({"type": "mux", "c": 8, "k": 5}) == S.MuxBlock(c=8, k="5")
    cell = S.Cell(c=8, p=24, ops="sep3~0-skip~1-max3~2-dil5~1", out="2-3", red=True)
    assert cell.token() == "cell_c8_p24_opssep3~0-skip~1-max3~2-dil5~1_out2-3_red1"
    assert S.layer_from_token(cell.token()) == cell
    spec = S.ArchSpec.from_string("3x8x8 conv_c8 join_drop0.15_glob0.5_col2[conv_c8 | "
                                  "seq[conv_c8 conv_c8]] gap flatten fc_c2")
    assert spec.layers[1] == S.Join((S.Conv(c=8), S.Seq((S.Conv(c=8), S.Conv(c=8)))),
                                    drop=0.15, glob=0.5, col=2)
    assert S.ArchSpec.from_string(spec.to_string()) == spec
    assert S.ArchSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(("doc", "needle"), [
    ({"type": "pick", "i": "0-x"}, "pick.i='0-x' is invalid: 'x' is not an index"),
    ({"type": "pick", "i": 2.5}, "pick.i=2.5 is invalid; pass a string"),
    ({"type": "mux", "c": 8, "k": "3,5"}, "mux.k='3,5' is invalid; pass a kernel size"),
    ({"type": "mux", "c": 8, "r": 1.5}, "mux.r=1.5 is invalid"),
    ({"type": "mux", "c": 8, "sc": "dz"}, "mux.sc='dz' is invalid; pass one letter"),
    ({"type": "cell", "c": 8, "p": 4, "ops": "conv~0-skip~1", "out": "2"},
     "unknown operation 'conv'"),
    ({"type": "cell", "c": 7, "p": 4, "ops": "sep3~0-skip~1", "out": "2", "rp": True},
     "cell.c=7 must be even"),
    ({"type": "rbf", "c": 0}, "rbf.c=0 is invalid; pass an integer >= 1"),
    ({"type": "join", "branches": [{"type": "id"}], "glob": -1},
     "join.glob=-1 is invalid; pass a number >= 0"),
])
def test_malformed_later_layers_name_the_field(doc, needle):
    with pytest.raises(S.SpecError) as e:
        S.ArchSpec.from_json(json.dumps({"input": [3, 8, 8], "layers": [doc]}))
    assert needle in str(e.value)
