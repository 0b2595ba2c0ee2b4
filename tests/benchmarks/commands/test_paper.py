"""`nfbench paper`: tables that equal their CSVs, a setup paragraph from the records, and a
main.tex that compiles (where a LaTeX engine is installed) with a readable first page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_records import failed, identity, record, write_test_set

from nfbench.benchmarks.commands.cli import main as cli_main
from nfbench.benchmarks.commands.paper import compile_pdf, write_paper
from nfbench.benchmarks.records.record import CellRecord, cell_path, write_record

NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three flows and a ceiling, finetune and joint, one with two seeds; a failed and a
    skipped cell."""
    tmp = tmp_path_factory.mktemp("paper")
    res = tmp / "results"
    samples = write_test_set(tmp)
    for i, variant in enumerate(("fastflow", "cflow", "ccnf", "bank")):
        for strategy, gain in (("finetune", 0.0), ("joint", 0.03)):
            rec = record(res, samples, variant, strategy, 0, acc=0.80 + 0.04 * i + gain,
                         fm=None if strategy == "joint" else 0.05, bwt=None, lat=2.0 + i)
            if variant == "bank":
                rec.is_flow = False
                write_record(cell_path(res, rec.cell_id), rec)
    record(res, samples, "fastflow", "finetune", 1, acc=0.82, fm=0.03, bwt=None, lat=2.0)
    failed(res, "hgad", "finetune", 0)
    skipped = CellRecord.skipped("cflow__synthetic-2x1__cflow__s0__deadbeef",
                                 "cflow has no continual mechanism of its own",
                                 **identity("cflow", "cflow", 0))
    write_record(cell_path(res, skipped.cell_id), skipped)
    out = tmp / "paper"
    write_paper(res, out)
    return out


def _body_rows(tex: str) -> list[list[str]]:
    """The tabular's body rows (between \\midrule and \\bottomrule), as cells."""
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    return [[c.strip() for c in row.split("&")] for row in body.split("\\\\") if row.strip()]


def _numbers(cells: list[str]) -> list[float]:
    return [float(x) for c in cells for x in NUMBER.findall(c)]


def test_results_table_equals_its_csv(grid: Path):
    csv = pd.read_csv(grid / "tables" / "results_synthetic-2x1.csv")
    tex = (grid / "tables" / "results_synthetic-2x1.tex").read_text()
    strategies = list(dict.fromkeys(csv["strategy"]))
    rows = _body_rows(tex)
    assert [r[0].split("$")[0] for r in rows] == list(dict.fromkeys(csv["model"]))
    for row, model in zip(rows, dict.fromkeys(csv["model"]), strict=True):
        part = csv[csv["model"] == model].set_index("strategy")
        expected = [v for s in strategies if s in part.index
                    for v in part.loc[s, ["acc", "half_width", "fm"]] if np.isfinite(v)]
        assert _numbers(row[1:]) == pytest.approx(expected, abs=1e-9), model
    best = csv[csv["mark"] == "best"]
    assert len(best) == 1 and f"\\textbf{{{best['acc'].iloc[0]:.1f}}}" in tex
    assert "$\\pm$" in tex and "booktabs" not in tex and "\\toprule" in tex
    assert "Holm" in tex  # the caption names the procedure
    assert "bank$^{\\dagger}$" in tex  # the ceiling is marked, never the best
    assert csv.loc[csv["model"] == "bank", "mark"].ne("best").all()


@pytest.mark.parametrize("stem", ["cost_synthetic-2x1", "per_class_synthetic-2x1_finetune",
                                  "per_class_synthetic-2x1_joint"])
def test_other_tables_equal_their_csv(grid: Path, stem: str):
    csv = pd.read_csv(grid / "tables" / f"{stem}.csv")
    rows = _body_rows((grid / "tables" / f"{stem}.tex").read_text())
    numeric = csv.select_dtypes("number")
    assert len(rows) == len(csv)
    for row, (_, values) in zip(rows, numeric.iterrows(), strict=True):
        assert _numbers(row[1:]) == pytest.approx([v for v in values if np.isfinite(v)])


def test_setup_comes_from_the_records(grid: Path):
    setup = (grid / "setup.tex").read_text()
    assert "efficientnet\\_lite0" in setup and "Seeds: 0, 1" in setup
    assert "fastflow: epochs 2" in setup
    assert "not run: cflow has no continual mechanism of its own" in setup
    assert "failed: Diverged at task 1" in setup and "hgad/finetune/seed 0" in setup
    main = (grid / "main.tex").read_text()
    assert "\\input{setup}" in main and "\\input{tables/results_synthetic-2x1}" in main
    assert "figures/critical_difference_finetune.pdf" in main  # a CD diagram
    for name in ("critical_difference_finetune", "acc_vs_latency_synthetic-2x1",
                 "forgetting_synthetic-2x1", "r_matrix_image_auroc_synthetic-2x1",
                 "anomaly_maps_synthetic-2x1"):
        assert (grid / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name


def test_paper_without_records_is_one_line(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["paper", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "p")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftoppm") is None,
                    reason="no LaTeX engine (pdflatex) or pdftoppm: .ci/run installs "
                    "texlive-latex-recommended and poppler-utils")
def test_main_compiles_and_page_one_renders(grid: Path):
    pdf = compile_pdf(grid / "main.tex")
    subprocess.run(["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-png", str(pdf),
                    str(grid / "page")], check=True, timeout=120)
    page = next(grid.glob("page*.png"))
    assert page.stat().st_size > 10_000
    text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    assert "Experiments" in text and "Setup." in text and "Table 1" in text
