"""Genome search spaces (``search_spaces``) and their CLI (``python -m nas.space``).

Every test that is not about one space's ancestors runs over the whole registry.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from nas.build import build
from nas.commands import space as cli
from nas.cost import cost, totals
from nas.registry import SPACES
from nas.spec import Head
from search_spaces import SearchSpace, baselines
from search_spaces import inception as inception_mod
from search_spaces import mobile as mobile_mod
from search_spaces import residual as residual_mod
from search_spaces.base import format_genome

CONF = Path(__file__).resolve().parents[1] / "conf" / "space"
NAMES = sorted(SPACES)
PRESETS = sorted(p.stem for p in CONF.glob("*.yaml"))


def load(preset: str, num_classes: int = 10, in_channels: int = 3, **overrides) -> SearchSpace:
    """A space from its Hydra config file, as a run builds it."""
    cfg = OmegaConf.merge(OmegaConf.load(CONF / f"{preset}.yaml"), overrides)
    return instantiate(cfg, num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------------------------
# Ancestors: documented genomes decode exactly to the baselines
# --------------------------------------------------------------------------------------------

MV2 = ("2-1-1-0-0-2-0-2-0-0-0-0-2-0-0-2-0-2-0-2-0-0-3-0-0-2-0-2-0-2-0-2-2-0-0-2-0-2-0-2-0-0-2-0-"
       "0-2-0-2-0-2-0-0-0-0-0-2-0-0-0-0-0-0")
GOOGLENET = ("0-2-2-2-1-2-2-0-0-2-2-2-2-2-2-0-0-2-2-2-1-2-2-0-0-2-2-2-1-2-2-0-0-2-2-2-1-2-2-0-0-"
             "2-2-2-2-2-2-0-0-2-2-2-2-2-2-0-0-2-2-2-2-2-2-0-0-2-2-2-2-2-2-0-0")
# (preset, baseline, classes, genome): the genomes the modules' docstrings document.
ANCESTORS = [
    ("mobile", "mobilenet_v2", 10, MV2),
    ("mobile_imagenet", "mobilenet_v2", 1000, "4" + MV2[1:]),
    ("residual_imagenet", "resnet18", 1000, "0-0-0-0-1-1-1-1-1-1-1-1"),
    ("residual_imagenet", "resnet34", 1000, "0-0-0-0-2-1-3-1-5-1-2-1"),
    ("residual_imagenet", "resnet50", 1000, "0-1-0-0-2-1-3-1-5-1-2-1"),
    ("residual_imagenet", "resnext50_32x4d", 1000, "0-1-1-0-2-1-3-1-5-1-2-1"),
    ("residual_imagenet", "se_resnet50", 1000, "0-1-0-1-2-1-3-1-5-1-2-1"),
    ("residual", "resnet20", 10, "0-0-0-0-2-0-2-0-2-0"),
    ("residual", "resnet32", 10, "0-0-0-0-4-0-4-0-4-0"),
    ("residual", "resnet44", 10, "0-0-0-0-6-0-6-0-6-0"),
    ("residual", "resnet56", 10, "0-0-0-0-8-0-8-0-8-0"),
    ("inception", "googlenet", 10, GOOGLENET),
    ("inception_imagenet", "googlenet", 1000, GOOGLENET),
]
MODULES = {"mobile": mobile_mod, "residual": residual_mod, "inception": inception_mod}


@pytest.mark.parametrize(("preset", "name", "classes", "genome"), ANCESTORS,
                         ids=[f"{p}-{n}" for p, n, _, _ in ANCESTORS])
def test_ancestor_genome_decodes_exactly_to_the_baseline(preset, name, classes, genome):
    space = load(preset, num_classes=classes)
    base = baselines.get(name, num_classes=classes, resolution=space.default_resolution)
    g = space.parse_genome(genome)
    assert space.ancestor_genome(name) == g
    assert space.encode(base) == g
    spec = space.decode(g)
    assert spec == base
    assert spec.to_string() == base.to_string()
    assert cost(spec) == cost(base)
    assert spec.name == space.arch_id(g)
    assert name in space.ancestors()


@pytest.mark.parametrize(("preset", "name", "classes", "genome"), ANCESTORS,
                         ids=[f"{p}-{n}" for p, n, _, _ in ANCESTORS])
def test_ancestor_genome_is_documented(preset, name, classes, genome):
    doc = re.sub(r"\s+", "", MODULES[preset.split("_")[0]].__doc__)
    wanted = genome if preset != "mobile_imagenet" else MV2  # documented as "first gene 4"
    assert wanted in doc


def test_mobilenet_v2_ancestor_matches_published_cost():
    space = load("mobile_imagenet", num_classes=1000)
    macs, params, _ = totals(space.decode(space.ancestor_genome("mobilenet_v2")))
    assert (macs, params) == (300_774_272, 3_504_872)


def test_ancestor_outside_the_config_is_a_clear_error():
    with pytest.raises(ValueError, match="not in the residual space"):
        load("residual").ancestor_genome("resnet50")
    with pytest.raises(ValueError, match="not an ancestor of the mobile space"):
        load("mobile").ancestor_genome("resnet50")
    with pytest.raises(ValueError, match="not in the mobile space"):
        load("mobile").encode(baselines.get("resnet20"))


# --------------------------------------------------------------------------------------------
# Random genomes build, run, and cost exactly what PyTorch counts
# --------------------------------------------------------------------------------------------

# Small stage widths and resolutions keep 200 builds + forwards per space to a few seconds;
# the layout (stages, genes, trunk) is the real one. The full CIFAR-size configs run below
# on a few genomes, and on 200 each under -m slow.
SMALL = {
    "mobile": dict(widths=[8, 8, 16, 16, 24, 32], resolutions=[8, 12, 16]),
    "residual": dict(stem_width=8, widths=[[8, 16], [16, 24], [24, 32]], resolutions=[8, 16]),
    "inception": dict(base_widths={m: [max(8, w // 8) for w in ws]
                                   for m, ws in baselines.GOOGLENET_MODULES.items()},
                      resolutions=[8, 16]),
    "nb201": dict(channels=[8, 12, 16], cells=2, resolution=16),
}
# ImageNet-style trunks, shrunk the same way (stride-2 stems, projection shortcuts, ResNeXt).
SMALL_IMAGENET = {
    "mobile_imagenet": dict(widths=[8, 8, 16, 16, 24, 32], resolutions=[96, 112]),
    "residual_imagenet": dict(stem_width=16, widths=[[16, 32], [32, 48], [48, 64], [64, 80]],
                              resolutions=[96]),
    "inception_imagenet": dict(base_widths=SMALL["inception"]["base_widths"],
                               resolutions=[96]),
}


def check_against_pytorch(space: SearchSpace, genomes: np.ndarray) -> None:
    for g in genomes:
        spec = space.decode(g)
        macs, params, _ = totals(spec)
        net = build(spec, seed=0).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            y = net(torch.randn(2, *spec.input))
        where = f"{space.name} genome {format_genome(g)}: {spec.to_string()}"
        assert tuple(y.shape) == (2, space.num_classes), where
        assert fc.get_total_flops() == 2 * 2 * macs, where  # batch 2, 2 FLOPs per MAC
        assert sum(p.numel() for p in net.parameters()) == params, where


@pytest.mark.parametrize("name", NAMES)
def test_200_random_genomes_build_run_and_cost_exactly(name, one_thread):
    space = SPACES.build(name, num_classes=7, in_channels=3, **SMALL[name])
    check_against_pytorch(space, space.sample(200, np.random.default_rng(0)))


@pytest.mark.parametrize("preset", sorted(SMALL_IMAGENET))
def test_random_genomes_of_imagenet_trunks_cost_exactly(preset, one_thread):
    space = load(preset, num_classes=5, in_channels=1, **SMALL_IMAGENET[preset])
    check_against_pytorch(space, space.sample(20, np.random.default_rng(1)))


@pytest.mark.parametrize("name", NAMES)
def test_default_configs_build_run_and_cost_exactly(name, one_thread):
    space = load(name)
    check_against_pytorch(space, space.sample(4, np.random.default_rng(2)))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_200_random_genomes_of_default_configs(name, one_thread):
    # 10-40 s each: the default (largest) configs, exact against PyTorch's counters
    space = load(name)
    check_against_pytorch(space, space.sample(200, np.random.default_rng(3)))


# --------------------------------------------------------------------------------------------
# Canonical form, ids, sampling, features, size
# --------------------------------------------------------------------------------------------


def _with_inactive_genes_changed(space: SearchSpace, genome: tuple, rng) -> tuple:
    g = list(genome)
    for gene in space.genes:
        if not space.is_active(genome, gene):
            g[gene.position] = int(rng.integers(0, gene.hi + 1))
    return tuple(g)


@pytest.mark.parametrize("name", NAMES)
def test_genomes_differing_only_in_skipped_genes_are_one_architecture(name):
    space = load(name)
    rng = np.random.default_rng(0)
    changed = 0
    for g in space.sample(50, rng):
        g = tuple(int(x) for x in g)
        other = _with_inactive_genes_changed(space, g, rng)
        changed += other != g
        assert space.canonical(other) == g
        assert space.arch_id(other) == space.arch_id(g)
        assert space.decode(other) == space.decode(g)
        assert space.features(np.array([other])).tolist() == space.features(np.array([g])).tolist()
    if any(gene.active_if for gene in space.genes):
        assert changed > 0
    else:  # inception: every gene always matters
        assert changed == 0


def test_mobile_skipped_block_genes_are_canonical_zero():
    space = load("mobile")
    g = list(space.ancestor_genome("mobilenet_v2"))
    g[space.gene("stage1.depth").position] = 0  # depth 1: blocks 2..4 of stage 1 skipped
    a, b = list(g), list(g)
    b[space.gene("stage1.block3.kernel").position] = 2
    b[space.gene("stage1.block4.expand").position] = 1
    assert space.arch_id(a) == space.arch_id(b)
    assert space.decode(a) == space.decode(b)
    assert space.canonical(b)[space.gene("stage1.block3.kernel").position] == 0
    c = list(a)
    c[space.gene("stage1.block1.kernel").position] = 2  # an active gene: another network
    assert space.arch_id(c) != space.arch_id(a)


def test_residual_groups_gene_matters_only_for_bottlenecks():
    space = load("residual_imagenet", num_classes=1000)
    r18 = list(space.ancestor_genome("resnet18"))
    other = list(r18)
    other[space.gene("groups").position] = 1
    assert space.arch_id(other) == space.arch_id(r18)
    r50 = list(space.ancestor_genome("resnet50"))
    x50 = list(r50)
    x50[space.gene("groups").position] = 1
    assert space.arch_id(x50) != space.arch_id(r50)


@pytest.mark.parametrize("name", NAMES)
def test_sample_returns_canonical_genomes_within_bounds(name):
    space = load(name)
    x = space.sample(300, np.random.default_rng(5))
    assert x.shape == (300, space.n_var) and x.dtype == np.int64
    assert np.all(x >= space.xl) and np.all(x <= space.xu)
    assert np.array_equal(space.canonical_batch(x), x)
    assert all(space.canonical(row) == tuple(row.tolist()) for row in x[:50])
    assert np.array_equal(x, space.sample(300, np.random.default_rng(5)))
    assert space.sample(0, np.random.default_rng(0)).shape == (0, space.n_var)
    assert len({tuple(r) for r in x.tolist()}) > 250  # not degenerate
    with pytest.raises(TypeError, match="numpy Generator"):
        space.sample(3, 0)
    with pytest.raises(ValueError, match="non-negative"):
        space.sample(-1, np.random.default_rng(0))


@pytest.mark.parametrize("name", NAMES)
def test_bounds_and_gene_descriptors(name):
    space = load(name)
    assert space.xl.dtype == np.int64 and space.xu.dtype == np.int64
    assert len(space.xl) == len(space.xu) == space.n_var == len(space.genes)
    assert space.decode(space.xl).input[1] == min(space.resolutions)
    assert space.decode(space.xu).input[1] == max(space.resolutions)
    for i, gene in enumerate(space.genes):
        assert gene.position == i and space.xu[i] == len(gene.choices) - 1
        assert gene.meaning and gene.name
        assert len(set(gene.choices)) == len(gene.choices)
        if gene.active_if is not None:
            assert space.genes[gene.active_if[0]].active_if is None


@pytest.mark.parametrize("name", NAMES)
def test_distinct_canonical_genomes_are_distinct_networks(name):
    space = load(name)
    x = space.sample(300, np.random.default_rng(7))
    by_genome = {tuple(g): space.decode(g).to_string() for g in x.tolist()}
    assert len(set(by_genome.values())) == len(by_genome)
    ids = {space.arch_id(g) for g in by_genome}
    assert len(ids) == len(by_genome)
    assert all(re.fullmatch(rf"{name}-[0-9a-f]{{10}}", i) for i in ids)


@pytest.mark.parametrize("name", NAMES)
def test_encode_inverts_decode(name):
    space = load(name)
    for g in space.sample(30, np.random.default_rng(8)):
        assert space.encode(space.decode(g)) == tuple(g.tolist())


def test_arch_id_depends_on_the_config():
    a, b = load("mobile"), load("mobile", num_classes=100)
    g = a.ancestor_genome("mobilenet_v2")
    assert a.arch_id(g) != b.arch_id(g)
    assert a.arch_id(g) == load("mobile").arch_id(g)


def test_arch_id_memo_keeps_validation_and_stays_out_of_pickles():
    """arch_id is memoised per genome of plain ints (searches ask it tens of thousands of
    times); every form of a genome gets the same id, a bad genome is still refused after
    good ones were memoised, and the memo is not part of the space's pickle."""
    import pickle

    space = load("mobile")
    genomes = space.sample(50, np.random.default_rng(3))
    space.arch_id(genomes[0])
    size = len(pickle.dumps(space))
    ids = [space.arch_id(g) for g in genomes]  # ndarray rows
    assert ids == [space.arch_id(tuple(g.tolist())) for g in genomes]
    assert ids == [space.arch_id(list(g.tolist())) for g in genomes]
    assert ids == [space._id(space.canonical(g)) for g in genomes]
    g0 = tuple(genomes[0].tolist())
    with pytest.raises(ValueError, match="is not an integer"):
        space.arch_id(tuple(True if i == 0 else v for i, v in enumerate(g0)))
    bad = (space.xu[0] + 1,) + g0[1:]
    with pytest.raises(ValueError, match="out of bounds"):
        space.arch_id(tuple(int(v) for v in bad))
    assert len(pickle.dumps(space)) == size
    assert "_id_memo" in vars(space) and "_id_memo" not in vars(pickle.loads(pickle.dumps(space)))
    assert [pickle.loads(pickle.dumps(space)).arch_id(g) for g in genomes] == ids


@pytest.mark.parametrize("name", NAMES)
def test_features_are_deterministic_one_hot_plus_scalars(name):
    space = load(name)
    x = space.sample(40, np.random.default_rng(9))
    f = space.features(x)
    assert f.shape == (40, len(space.feature_names())) and f.dtype == np.float64
    assert np.array_equal(f, space.features(x.copy()))
    assert np.all((f >= 0) & (f <= 1))
    assert np.array_equal(space.features(x[3]), f[3])  # 1-D genome -> 1-D vector
    # One one-hot block per multi-choice gene: one 1 per active gene (nb201 describes the
    # cell's function instead, tested in test_nb201.py).
    onehot = [n for n in space.feature_names() if "=" in n]
    active = space._active_mask(x)
    multi = [g.position for g in space.genes if len(g.choices) > 1]
    if name != "nb201":
        assert np.array_equal(f[:, :len(onehot)].sum(1), active[:, multi].sum(1))
    with pytest.raises(ValueError, match="shape"):
        space.features(np.zeros((2, space.n_var + 1), dtype=int))
    with pytest.raises(ValueError, match="out of bounds"):
        space.features(np.array([space.xu + 1]))
    with pytest.raises(ValueError, match="not an integer"):
        space.features(np.full((1, space.n_var), 0.5))


def test_mobile_features_zero_for_skipped_blocks():
    space = load("mobile")
    g = list(space.xl)  # every stage depth 1
    f = dict(zip(space.feature_names(), space.features(np.array([g]))[0]))
    assert f["stage1.block1.kernel=3"] == 1
    assert all(f[f"stage1.block2.kernel={k}"] == 0 for k in space.kernels)
    assert f["stage1.depth~"] == 0 and f["resolution~"] == 0


def _brute_force_size(space: SearchSpace) -> int:
    canon = {space.canonical(g) for g in itertools.product(
        *(range(hi + 1) for hi in space.xu.tolist()))}
    specs = {space.decode(g).to_string() for g in canon}
    assert len(specs) == len(canon)  # distinct canonical genomes are distinct networks
    return len(canon)


@pytest.mark.parametrize(("name", "config"), [
    ("mobile", dict(widths=[8, 16], strides=[1, 2], depths=[[1, 2], [1, 3]], kernels=[3, 5],
                    expansions=[3, 6], se=[0, 0.25], width_mults=[1.0], resolutions=[16])),
    ("residual", dict(stem_width=8, widths=[[8, 16], [16, 32]], depths=[1, 2, 3],
                      groups=[[1, 64], [8, 8]], se=[0], resolutions=[16, 24])),
    ("inception", dict(base_widths={m: [8] * 6 for m in baselines.GOOGLENET_MODULES},
                       multipliers=[1.0, 1.5], resolutions=[8])),
], ids=["mobile", "residual", "inception"])
def test_size_is_exact(name, config):
    space = SPACES.build(name, **config)
    if name == "inception":  # 2^(9 x 8) genomes, no inactive genes: a plain product
        assert space.size() == 2 ** space.n_var // 2  # resolution gene has one choice
        assert space.size() == np.prod([len(g.choices) for g in space.genes], dtype=object)
    else:
        assert space.size() == _brute_force_size(space)


def test_default_sizes_are_exact_python_ints():
    mob = load("mobile")
    per_stage = 2 * sum(9 ** d for d in (1, 2, 3, 4))  # SE x (kernel x expansion)^depth
    assert mob.size() == 3 * 3 * per_stage ** 6
    res = load("residual")
    assert res.size() == 1 * (1 + 2) * 2 * (9 * 3) ** 3
    inc = load("inception")
    assert isinstance(inc.size(), int) and inc.size() > 2 ** 64


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_bad_genomes_are_clear_errors(name):
    space = load(name)
    g = list(space.xl)
    with pytest.raises(ValueError, match=f"has {space.n_var - 1} genes, expected {space.n_var}"):
        space.decode(g[:-1])
    gene = space.genes[-1]
    bad = list(g)
    bad[-1] = gene.hi + 5
    msg = (f"gene {gene.position} '{gene.name}' = {gene.hi + 5} is out of bounds "
           f"[0, {gene.hi}] ({gene.meaning}, choices ")
    with pytest.raises(ValueError, match=re.escape(msg)):
        space.decode(bad)
    bad[-1] = -1
    with pytest.raises(ValueError, match="out of bounds"):
        space.canonical(bad)
    bad[-1] = 0.5
    with pytest.raises(ValueError, match=re.escape(f"gene {gene.position} '{gene.name}' = 0.5 "
                                                   f"is not an integer")):
        space.validate(bad)
    bad[-1] = "1"
    with pytest.raises(ValueError, match="not an integer"):
        space.validate(bad)
    bad[-1] = True
    with pytest.raises(ValueError, match="not an integer"):
        space.validate(bad)
    assert space.validate([float(v) for v in g]) == tuple(g)  # integral floats (pymoo) pass
    with pytest.raises(ValueError, match="parse_genome"):
        space.validate("0-1")
    with pytest.raises(ValueError, match="item 1"):
        space.parse_genome("0-x-1")
    assert space.parse_genome(format_genome(g)) == tuple(g)


def test_mobile_out_of_bounds_message_names_gene_bounds_and_meaning():
    space = load("mobile")
    g = list(space.xl)
    pos = space.gene("stage2.block1.kernel").position
    g[pos] = 9
    with pytest.raises(ValueError) as e:
        space.decode(g)
    assert str(e.value) == (f"gene {pos} 'stage2.block1.kernel' = 9 is out of bounds [0, 2] "
                            f"(kernel size, choices 3/5/7)")


BAD_CONFIGS = [
    ("mobile", dict(num_classes=0), "num_classes"),
    ("mobile", dict(in_channels=True), "in_channels"),
    ("mobile", dict(strides=[1, 2]), "one stride per stage"),
    ("mobile", dict(kernels=[3, 4]), "odd"),
    ("mobile", dict(kernels=[3, 3]), "distinct"),
    ("mobile", dict(kernels=[]), "at least one"),
    ("mobile", dict(expansions=[0.5]), "expansions"),
    ("mobile", dict(width_mults=[0]), "width_mults"),
    ("mobile", dict(width_mults=[1.0, 1.001]), "round to the same channels"),
    ("mobile", dict(depths=[[1, 2]] * 5), "5 per-stage lists for 6 stages"),
    ("mobile", dict(depths=[0, 1]), "depths"),
    ("mobile", dict(resolutions=[32, 224]), "mixes CIFAR-size"),
    ("mobile", dict(resolutions="32"), "expected a list"),
    ("residual", dict(style="tiny"), "style"),
    ("residual", dict(resolutions=[224]), "needs CIFAR-size"),
    ("residual", dict(widths=[[16, 48], [32, 64], [64, 128]]), "shortcut 'A'"),
    ("residual", dict(stem_width=32), "shortcut 'A'"),
    ("residual", dict(widths=[16, 32, 64]), "one list of width choices per stage"),
    ("residual", dict(groups=[[32, 4]]), "not an integer"),
    ("residual", dict(groups=[[32]]), r"\[groups, base_width\]"),
    ("residual", dict(blocks=["basic", "dense"]), "blocks"),
    ("residual", dict(shortcut="C"), "shortcut"),
    ("inception", dict(base_widths={"3a": [64, 96, 128, 16, 32, 32]}), "needs exactly"),
    ("inception", dict(base_widths={**baselines.GOOGLENET_MODULES, "3a": [1, 2]}), "6 widths"),
    ("inception", dict(multipliers=[-1.0]), "multipliers"),
    ("inception", dict(k5=4), "odd"),
    ("inception", dict(divisor=0), "divisor"),
]


@pytest.mark.parametrize(("name", "config", "match"), BAD_CONFIGS,
                         ids=[f"{n}-{m[:20]}" for n, _, m in BAD_CONFIGS])
def test_bad_configs_are_clear_errors(name, config, match):
    with pytest.raises(ValueError, match=match) as e:
        SPACES.build(name, **config)
    assert name in str(e.value)


def test_unknown_space_lists_the_registry():
    with pytest.raises(ValueError, match="unknown search space 'dense'; known: mobile, residual, inception"):
        SPACES.build("dense")


def test_encode_needs_a_spec_of_matching_shape():
    space = load("mobile")
    with pytest.raises(TypeError):
        space.encode("mobilenet_v2")
    with pytest.raises(ValueError, match="1000"):
        space.encode(baselines.get("mobilenet_v2", resolution=32))


def test_space_without_encode_says_so():
    class Tiny(SearchSpace):
        name = "tiny"

        def __init__(self):
            super().__init__(num_classes=3, in_channels=1)
            self._add_gene("resolution", (8,), "input resolution")

        def _build(self, v):
            return [Head(c=3)]

        def _config(self):
            return {}

    t = Tiny()
    spec = t.decode([0])
    with pytest.raises(NotImplementedError, match="tiny space cannot encode"):
        t.encode(spec)
    assert t.size() == 1 and t.features(np.zeros((2, 1), int)).shape == (2, 0)


# --------------------------------------------------------------------------------------------
# Config: registry, Hydra, round trips
# --------------------------------------------------------------------------------------------


def test_registry_and_presets():
    assert NAMES == ["inception", "mobile", "nb201", "residual"]
    assert set(PRESETS) == {n for n in NAMES} | {f"{n}_imagenet" for n in NAMES
                                                 if n != "nb201"}


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_instantiate_with_hydra(preset):
    space = load(preset, num_classes=100, in_channels=1)
    assert isinstance(space, SPACES[preset.split("_")[0]])
    assert (space.num_classes, space.in_channels) == (100, 1)
    imagenet = preset.endswith("_imagenet")
    assert (space.default_resolution >= 96) == imagenet
    assert space.decode(space.xu).input == (1, space.default_resolution,
                                            space.default_resolution)
    # the config round-trips through the registry
    again = SPACES.build(space.name, **space.config())
    assert again.config() == space.config()


def test_hydra_compose_of_the_space_group():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):
        cfg = compose(config_name=None, overrides=["+space=residual_imagenet",
                                                   "space.se=[0.0]"])
    space = instantiate(cfg.space, num_classes=10, in_channels=3)
    assert space.se == (0.0,) and space.style == "imagenet"


@pytest.mark.parametrize("name", NAMES)
def test_default_preset_equals_class_defaults(name):
    assert load(name).config() == SPACES[name]().config()
    assert SPACES[name]().default_resolution <= 32


@pytest.mark.parametrize("preset", PRESETS)
def test_every_yaml_key_has_a_comment(preset):
    for line in (CONF / f"{preset}.yaml").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert re.match(r"^\w+:", line) and " # " in line, line


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_describes_a_space(capsys):
    assert cli.main(["residual"]) == 0
    out = capsys.readouterr().out
    assert "residual space: 10 genes, 118,098 architectures" in out
    assert "resnet56: 0-0-0-0-8-0-8-0-8-0" in out
    assert "only when block is bottleneck" in out


def test_cli_decodes_a_genome_and_an_ancestor(capsys):
    assert cli.main(["mobile_imagenet", "--genome", "4" + MV2[1:]]) == 0
    out = capsys.readouterr().out
    assert "300,774,272 MACs, 3,504,872 params" in out
    assert "id      mobile-" in out
    assert baselines.get("mobilenet_v2").to_string() in out
    assert cli.main(["residual_imagenet", "--ancestor", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "genome  0-1-0-0-2-1-3-1-5-1-2-1" in out
    assert "4,089,184,256 MACs, 25,557,032 params" in out


def test_cli_sample_and_overrides(capsys):
    assert cli.main(["mobile", "--sample", "2", "--seed", "3", "--classes", "5", "--channels",
                     "1", "--config", "depths=[1,2]", "--config", "se=[0]"]) == 0
    out = capsys.readouterr().out
    assert out.count("genome  ") == 2 and "1x" in out and "head_c5_" in out
    assert "se0.25" not in out


def test_cli_stats(capsys):
    assert cli.main(["inception", "--stats", "12", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"inception space: {load('inception').size():,} architectures" in out
    assert "12 samples (seed 0, 12 distinct) at resolution 32, 10 classes" in out
    assert re.search(r"macs\s+\S+\s+\S+\s+\S+", out) and "params" in out
    s = cli.stats(load("mobile"), 30, seed=1, resolution=24, progress=False)
    assert s["resolution"] == 24 and s["macs"][0] <= s["macs"][1] <= s["macs"][2]


@pytest.mark.parametrize(("argv", "match"), [
    (["densenet"], "unknown search space 'densenet'; known: mobile, residual, inception"),
    (["mobile", "--genome", "1-2-3"], "has 3 genes"),
    (["mobile", "--ancestor", "resnet50"], "not an ancestor"),
    (["mobile", "--config", "nope=1"], "unknown key 'nope'"),
    (["mobile", "--config", "kernels=[4]"], "odd"),
    (["residual", "--stats", "3", "--resolution", "64"], "resolution = 64 is not a choice"),
])
def test_cli_errors_exit_2(argv, match, capsys):
    assert cli.main(argv) == 2
    assert re.search(re.escape(match), capsys.readouterr().err)


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "--stats" in capsys.readouterr().out
