"""The NAS-Bench-201 space: exact costs, the genome/table mapping, canonical form, listing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.build import build
from nas.commands.space import enumerate_frame
from nas.commands.space import main as space_main
from nas.cost import totals
from nas.registry import SPACES
from nas.spec import ArchSpec, SpecError
from search_spaces.nb201 import EDGES, OPS, arch_string, genome_of_arch_string

BEST = (2, 2, 0, 2, 2, 2)
# The cell NAS-Bench-201's paper and every later tool name as the best-known CIFAR-10 cell.
BEST_ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
             "nor_conv_3x3~2|")


@pytest.fixture(scope="module")
def space():
    return SPACES.build("nb201")


def _torch_counts(spec: ArchSpec) -> tuple[int, int]:
    net = build(spec, seed=0).eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.randn(1, *spec.input))
    return fc.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("genome", [
    (2,) * 6,                # every edge conv3x3: the largest network
    (1,) * 6,                # every edge none: the cell outputs zero
    (3,) * 6, (4,) * 6, (0,) * 6, BEST,
    (2, 1, 1, 1, 1, 2),      # conv 1<-0 feeds nothing that reaches the output: dead
    (1, 1, 2, 2, 2, 1),      # node 1 and 2 receive nothing: their edges are dead
])
def test_costs_equal_pytorch_counters(space, genome):
    spec = space.decode(genome)
    macs, params, _ = totals(spec)
    assert (macs, params) == _torch_counts(spec)


def test_cost_range_matches_the_paper(space):
    # Dong & Yang, NAS-Bench-201 (ICLR 2020), CIFAR-10 networks: parameters from 0.07 MB to
    # 1.53 MB and FLOPs (their multiply-accumulates) from 7.78 M to 220.1 M.
    every = [totals(space.decode(g))[:2] for g in space.all_canonical()]
    macs = [m for m, _ in every]
    params = [p for _, p in every]
    assert round(min(params) / 1e6, 2) == 0.07 and round(max(params) / 1e6, 2) == 1.53
    assert round(min(macs) / 1e6, 2) == 7.78 and round(max(macs) / 1e6, 1) == 220.1
    assert totals(space.decode((2,) * 6))[:2] == (220_119_680, 1_531_546)


def test_small_configs_cost_exactly_on_random_genomes():
    space = SPACES.build("nb201", num_classes=5, in_channels=1, channels=[4, 8, 8], cells=1,
                      resolution=8)
    for g in space.sample(30, np.random.default_rng(0)):
        spec = space.decode(g)
        assert totals(spec)[:2] == _torch_counts(spec)


def test_genome_is_the_table_key_in_naslib_order(space):
    from nas.table import load_table

    assert arch_string(BEST) == BEST_ARCH and genome_of_arch_string(BEST_ARCH) == BEST
    for g in itertools.product(range(5), repeat=6):
        assert genome_of_arch_string(arch_string(g)) == g
    table = load_table("analog-nasbench")
    acc = table.frame["baseline_accuracy"]
    assert acc.loc["1-1-1-1-1-1"] == pytest.approx(10.0)  # all none: chance on CIFAR-10
    top = acc.sort_values(ascending=False)
    assert acc.loc["2-2-0-2-2-2"] >= top.iloc[10]  # the known best cell is in the top 11
    assert acc.loc["2-2-0-2-2-2"] > 93.9
    # the decoded spec carries the benchmark's arch string
    assert BEST_ARCH in space.decode(BEST).to_string()


def test_spec_string_and_json_round_trip(space):
    spec = space.decode(BEST)
    assert ArchSpec.from_string(spec.to_string()) == spec
    assert ArchSpec.from_json(spec.to_json()) == spec
    with pytest.raises(SpecError, match="unknown operation 'conv_5x5'"):
        ArchSpec.from_string("3x32x32 nb201_|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|"
                             "none~2| head_c10")
    with pytest.raises(SpecError, match="node 2 needs 2 incoming edges"):
        ArchSpec.from_string("3x32x32 nb201_|none~0|+|none~0|+|none~0|none~1|none~2| head_c10")


def test_canonical_equivalences(space):
    # a chain of skips around one conv computes conv(x): the same network as 3<-0 conv
    assert space.arch_id((0, 1, 1, 2, 1, 0)) == space.arch_id((1, 1, 2, 1, 1, 1))
    assert space.canonical((0, 1, 1, 2, 1, 0)) == (1, 1, 2, 1, 1, 1)
    # a dead edge (its target never reaches the output) does not matter
    assert space.arch_id((2, 3, 2, 1, 1, 1)) == space.arch_id((1, 1, 2, 1, 1, 1))
    # nodes 1 and 2 swap roles when no edge joins them (isomorphic cells)
    a, b, c, d, e = 2, 3, 0, 4, 2
    assert space.arch_id((a, b, c, 1, d, e)) == space.arch_id((b, a, c, 1, e, d))
    # ... but not when they differ in what they compute
    assert space.arch_id((2, 3, 0, 1, 2, 2)) != space.arch_id((2, 3, 0, 1, 3, 2))
    # an output that receives nothing: every such genome is the zero network
    zero = space.arch_id((1,) * 6)
    assert space.arch_id((2, 2, 1, 2, 1, 1)) == zero
    assert space.canonical((2, 2, 1, 2, 1, 1)) == (1,) * 6
    # canonical genomes are fixed points, and distinct canonical genomes differ in cost or
    # spec string (no two classes decode to the same network)
    canon = space.all_canonical()
    assert np.array_equal(space.canonical_batch(canon), canon)
    assert len({space.decode(g).to_string() for g in canon}) == len(canon) == space.size()


def test_counts_ours_and_the_papers(space):
    assert space.n_genomes() == 15_625 and space.size() == 4_930

    # The paper's 6,466 "unique topologies" follow its coarser rule: a none edge, or an edge
    # from a node written as zero, adds a zero term that stays in the sum; a skip edge adds
    # its source's expression as written; a node is its terms sorted and joined.
    def paper_key(g):
        nodes = {0: "0"}
        for j in (1, 2, 3):
            terms = []
            for k, (i, t) in enumerate(EDGES):
                if t != j:
                    continue
                op = OPS[g[k]]
                if op == "none" or nodes[i] == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(nodes[i])
                else:
                    terms.append(f"({nodes[i]})@{op}")
            nodes[j] = "+".join(sorted(terms))
        return nodes[3]

    paper = {}
    for g in itertools.product(range(5), repeat=6):
        paper.setdefault(paper_key(g), set()).add(space.arch_id(g))
    assert len(paper) == 6_466
    # every paper class lies inside one of ours: ours only merges further
    assert all(len(ids) == 1 for ids in paper.values())


def test_sample_is_uniform_over_networks(space):
    x = space.sample(4000, np.random.default_rng(0))
    ids = [space.arch_id(g) for g in x]
    zero = space.arch_id((1,) * 6)
    # 341 of the 15,625 genomes are the zero network; drawn over networks it is 1 in 4,930
    assert sum(i == zero for i in ids) <= 5
    assert len(set(ids)) > 2500


def test_enumerate_lists_every_genome(space, tmp_path, capsys):
    df = enumerate_frame(space, progress=False)
    assert len(df) == 15_625 and df["arch_id"].nunique() == 4_930
    assert list(df.columns) == ["genome", "arch_id", "canonical", "spec", "macs", "params"]
    row = df.set_index("genome").loc["2-2-0-2-2-2"]
    assert row["canonical"] == "2-2-0-2-2-2" and BEST_ARCH in row["spec"]
    assert (row["macs"], row["params"]) == totals(space.decode(BEST))[:2]
    out = tmp_path / "nb201.csv"
    assert space_main(["nb201", "--enumerate", "--csv", str(out), "--no-progress"]) == 0
    assert out.read_text().count("\n") == 15_626
    assert "15,625 genomes, 4,930 distinct networks" in capsys.readouterr().err


def test_enumerate_refuses_a_huge_space(capsys):
    assert space_main(["mobile", "--enumerate"]) == 2
    err = capsys.readouterr().err
    assert "error: the mobile space has" in err and "genomes" in err and "--sample" in err


def test_features_describe_the_function(space):
    f = space.features(np.array([(0, 1, 1, 2, 1, 0), (1, 1, 2, 1, 1, 1)]))
    assert f.shape == (2, len(space.feature_names()))
    assert np.array_equal(f[0], f[1])  # equivalent genomes, equal features
    assert np.all((f >= 0) & (f <= 1))


@pytest.mark.parametrize("argv", [["nas.space", "mobile", "--sample", "2000"],
                                  ["nas.space", "nb201", "--enumerate", "--no-progress"]])
def test_a_reader_that_stops_early_is_not_an_error(argv):
    # Output far larger than a pipe's buffer, so closing the pipe early breaks it for sure.
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = [proc.stdout.readline() for _ in range(2)]  # like `| head -2`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert all(first) and "Traceback" not in err and "BrokenPipeError" not in err
