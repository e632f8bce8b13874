"""nas.report: run folders are read tolerantly and the HTML page is self-contained."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nas import pareto
from nas import report as R
from nas import run as RF
from nas.commands.report import main as report_main
from nas.cost import totals
from nas.spec import ArchSpec
from search_spaces import baselines

# --------------------------------------------------------------------------------------------
# A small but real run folder (shared with tests/test_export.py)
# --------------------------------------------------------------------------------------------

#: (spec string, accuracy, latency_ms, status); MACs grow down the list (see test below).
#: Front on (error, MACs): ids 0, 1, 2, 3, 5; id 4 is dominated by id 3; id 6 failed.
#: The knee is id 2 (accuracy jumps to 85% there, then barely moves).
ARCHS = [
    ("3x32x32 cba_c4_s2 head_c10", 0.40, 0.10, "ok"),
    ("3x32x32 cba_c8_s2 ir_c16_e3_s2 head_c10", 0.70, 0.30, "ok"),
    ("3x32x32 cba_c16_s2 ir_c24_e3_s2 ir_c24_e3 head_c10", 0.85, 0.80, "ok"),
    ("3x32x32 cba_c16 ir_c32_k5_s2_se0.25 ir_c32 head_c10", 0.86, 2.00, "ok"),
    ("3x32x32 cba_c32 ir_c32_s2 ir_c64_s2 head_c10", 0.80, 1.50, "ok"),
    ("3x32x32 cba_c24 ir_c48_e4_s2 ir_c48_e4 ir_c96_e4_s2 head_c10", 0.87, 3.00, "ok"),
    ("3x32x32 cba_c2_s2 head_c10", float("nan"), float("nan"), "failed"),
]
FRONT_IDS = [0, 1, 2, 3, 5]
KNEE_ID = 2


def arch_id(i: int, shift: int = 0) -> str:
    return f"{(i + 1) * 0x1f3a5 + shift:08x}"


def make_run_dir(path: Path, *, acc_shift: float = 0.0, id_shift: int = 0,
                 files: tuple[str, ...] = ("evaluated", "pareto", "hypervolume", "baselines",
                                           "config")) -> Path:
    """Write a run folder as nas.search does (real spec strings, real costs)."""
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (text, acc, lat, status) in enumerate(ARCHS):
        spec = ArchSpec.from_string(text)
        macs, params, acts = totals(spec)
        a = acc + acc_shift if status == "ok" else float("nan")
        rows.append({"id": i, "arch_id": arch_id(i, id_shift), "space": "mobile",
                     "genome": "-".join(str(x) for x in range(i, i + 4)), "spec": text,
                     "macs": macs, "params": params, "activations": acts, "latency_ms": lat,
                     "accuracy": a, "error": 1 - a, "status": status,
                     "reason": "" if status == "ok" else "loss became NaN",
                     "iteration": i // 3, "seed": 7, "train_seconds": 1.5})
    ev = pd.DataFrame(rows)
    base_rows = []
    for name, acc in (("resnet20", 0.91), ("mobilenet_v2", float("nan"))):
        spec = baselines.get(name, resolution=32, num_classes=10)
        macs, params, acts = totals(spec)
        base_rows.append({"name": name, "spec": spec.to_string(), "macs": macs,
                          "params": params, "activations": acts, "accuracy": acc})
    base = pd.DataFrame(base_rows)
    pareto = ev[ev["id"].isin(FRONT_IDS)].copy()
    pareto["source"] = "search"
    pareto["name"] = pareto["arch_id"]
    pareto["rank"] = 0
    b = base[base["accuracy"].notna()].assign(source="baseline", rank=0, status="ok")
    pareto = pd.concat([pareto, b], ignore_index=True)
    hv = pd.DataFrame({"iteration": [0, 1, 2], "evaluations": [3, 6, 7],
                       "hypervolume": [0.5, 0.7 + acc_shift, 0.75 + acc_shift]})
    if "evaluated" in files:
        ev.to_csv(path / "evaluated.csv", index=False)
    if "pareto" in files:
        pareto.to_csv(path / "pareto.csv", index=False)
    if "hypervolume" in files:
        hv.to_csv(path / "hypervolume.csv", index=False)
    if "baselines" in files:
        base.to_csv(path / "baselines.csv", index=False)
    if "config" in files:
        (path / "config.yaml").write_text(yaml.safe_dump(
            {"space": {"name": "mobile"}, "data": {"name": "cifar10", "batch_size": 128},
             "train": {"epochs": 2}, "seed": 7}))
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "2024-01-01" / "12-00-00")


def test_fixture_front_is_what_the_comments_say(run_dir: Path):
    run = RF.read_run(run_dir)
    assert list(run.ok.sort_values("macs")["id"]) == [0, 1, 2, 3, 4, 5]
    assert run.evaluated["macs"].idxmin() == 6  # the failed one is the cheapest
    assert sorted(RF.front_of(run.evaluated)["id"]) == FRONT_IDS


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def test_read_run_tolerates_missing_optional_files(tmp_path: Path):
    d = make_run_dir(tmp_path / "r", files=("evaluated",))
    run = RF.read_run(d)
    assert run.hypervolume is None and run.baselines is None and run.config == {}
    assert sorted(run.pareto["id"]) == FRONT_IDS  # recomputed from evaluated.csv
    assert len(run.ok) == len(ARCHS) - 1


def test_read_run_names_the_fix_when_not_a_run_folder(tmp_path: Path):
    with pytest.raises(RF.RunFolderError, match="not a nas run folder: no evaluated.csv/"
                                               "archive.sqlite; pass the folder printed"):
        RF.read_run(tmp_path)


def test_non_dominated_and_knee():
    F = np.array([[0.6, 1.0], [0.3, 2.0], [0.15, 10.0], [0.2, 20.0], [0.14, 100.0]])
    assert list(pareto.non_dominated(F)) == [0, 1, 2, 4]
    front = F[pareto.non_dominated(F)]
    assert pareto.knee_point(front) == 2


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    page.close()
    return page


def _assert_self_contained(page: _Page) -> None:
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            v = attrs.get(key) or ""
            assert not v or v.startswith("data:") or v.startswith("#"), (tag, key, v[:60])
        assert tag not in ("script", "link", "iframe") or not (attrs.get("src")
                                                                or attrs.get("href"))


def test_report_page_lists_every_pareto_architecture(run_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert report_main([str(run_dir), "--out", str(out), "--quiet"]) == 0
    page = _parse(out / "report.html")
    text = "".join(page.text)
    pareto = pd.read_csv(run_dir / "pareto.csv")
    for _, row in pareto.iterrows():
        assert str(row["name"]) in text
        assert row["spec"] in text
    imgs = [a for t, a in page.tags if t == "img"]
    assert imgs and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    assert any(t == "svg" for t, _ in page.tags)
    # one collapsible per-layer cost table per Pareto architecture
    assert sum(t == "details" for t, _ in page.tags) >= len(pareto)
    assert text.count("total") >= len(pareto)
    assert "resnet20" in text  # baselines labelled
    _assert_self_contained(page)
    assert (out / "front.png").stat().st_size > 1000
    assert (out / "hypervolume.png").stat().st_size > 1000


def test_report_overlays_several_runs(tmp_path: Path, capsys):
    a = make_run_dir(tmp_path / "day" / "run_a")
    b = make_run_dir(tmp_path / "day" / "run_b", acc_shift=-0.05, id_shift=7)
    out = tmp_path / "both"
    assert report_main([str(a), str(b), "--out", str(out)]) == 0
    text = "".join(_parse(out / "report.html").text)
    assert "day/run_a" in text and "day/run_b" in text
    for i in FRONT_IDS:
        assert arch_id(i) in text and arch_id(i, 7) in text
    printed = capsys.readouterr().out
    assert "Pareto architectures of day/run_a" in printed and "report.html" in printed


def test_report_cli_rejects_a_non_run_folder(tmp_path: Path, capsys):
    assert report_main([str(tmp_path), "--quiet"]) == 2
    assert "not a nas run folder" in capsys.readouterr().err


def test_write_front_plot_for_the_search(run_dir: Path, tmp_path: Path):
    run = RF.read_run(run_dir)
    png = R.write_front_plot(run.evaluated, run.pareto, run.baselines, tmp_path / "pareto.png",
                             tmp_path / "pareto.html", title="my search")
    assert png.stat().st_size > 1000
    page = _parse(tmp_path / "pareto.html")
    text = "".join(page.text)
    assert "my search" in text and arch_id(KNEE_ID) in text
    _assert_self_contained(page)
    # no pareto frame: the front is computed
    R.write_front_plot(run.evaluated, None, None, tmp_path / "p2.png")
    assert (tmp_path / "p2.png").is_file()


def test_run_folder_with_only_the_archive(tmp_path: Path):
    from nas.archive import Archive, Record

    d = tmp_path / "run"
    d.mkdir()
    ev = pd.read_csv(make_run_dir(tmp_path / "csv") / "evaluated.csv")
    with Archive(d / "archive.sqlite") as archive:
        for _, r in ev.iterrows():
            ok = r["status"] == "ok"
            archive.add(Record(
                id=None, arch_id=r["arch_id"], space="mobile",
                genome=tuple(int(g) for g in r["genome"].split("-")), spec=r["spec"],
                macs=int(r["macs"]), params=int(r["params"]), activations=int(r["activations"]),
                latency_ms=r["latency_ms"] if ok else None, accuracy=r["accuracy"] if ok else None,
                error=r["error"] if ok else None, status=r["status"],
                reason=None if ok else r["reason"], seed=7, iteration=int(r["iteration"])))
        spec = baselines.get("resnet20")
        macs, params, acts = totals(spec)
        archive.add(Record(id=None, arch_id="baseline:resnet20", space="baseline", genome=None,
                           spec=spec.to_string(), macs=macs, params=params, activations=acts,
                           latency_ms=None, accuracy=0.9, error=0.1, status="ok", reason=None))
    run = RF.read_run(d)
    assert len(run.evaluated) == len(ARCHS) and list(run.baselines["name"]) == ["resnet20"]
    assert sorted(run.pareto["arch_id"]) == sorted(arch_id(i) for i in FRONT_IDS)
    out = tmp_path / "out"
    R.write_report([run], out, cost="params")
    text = "".join(_parse(out / "report.html").text)
    assert "resnet20" in text and "parameters (log)" in text


def test_front_plot_against_latency(run_dir: Path, tmp_path: Path):
    run = RF.read_run(run_dir)
    R.write_front_plot(run.evaluated, None, run.baselines, tmp_path / "p.png",
                       tmp_path / "p.html", cost="latency_ms")
    text = "".join(_parse(tmp_path / "p.html").text)
    assert "latency (ms) (log)" in text
    with pytest.raises(ValueError, match="cost must be one of"):
        R.write_front_plot(run.evaluated, None, None, tmp_path / "q.png", cost="flops")
