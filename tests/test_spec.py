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
    assert "Did you mean" in msg and "resnet18" in msg and "mobilenet_v2" in msg


@pytest.mark.parametrize("arg", [{"num_classes": 0}, {"resolution": -1},
                                 {"in_channels": 1.5}])
def test_baseline_bad_arguments(arg):
    with pytest.raises(ValueError, match="must be a positive integer"):
        baselines.get("resnet20", **arg)
