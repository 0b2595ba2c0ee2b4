"""`nfbench paper --results DIR --out DIR`: the experimental section, from the records.

Writes under ``--out``: ``main.tex`` (compiles on its own), ``setup.tex`` (generated from the
records, so it cannot disagree with what ran), ``tables/*.tex`` with the ``tables/*.csv`` each
was printed from (the same rounded numbers), and vector ``figures/*.pdf``: critical-difference
diagrams, ACC against latency, forgetting, R matrices, per-task curves and anomaly maps.
``--pdf`` also runs pdflatex where it is installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from nfbench.benchmarks import report
from nfbench.benchmarks.records.record import CellRecord, load_records
from nfbench.benchmarks.report import data, files, latex

__all__ = ["PaperError", "add_paper_arguments", "compile_pdf", "main_paper", "write_paper"]


class PaperError(RuntimeError):
    """No LaTeX engine, or the document did not compile: one line for the user."""

PAPER_FIGURES = ("R-matrix heatmaps (image AUROC)", "ACC vs latency (Pareto front)",
                 "Forgetting (FM)", "Per-task curves", "Anomaly maps")


def add_paper_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", dest="results_dir", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("paper"))
    parser.add_argument("--pdf", action="store_true",
                        help="also compile main.tex with pdflatex (where it is installed)")


def _write_table(frame, tex_text: str, stem: Path) -> str:
    """Write stem.csv (the printed numbers) and stem.tex; the \\input line for main.tex."""
    files.write_csv(frame, stem.with_suffix(".csv"))
    files.write_text(tex_text, stem.with_suffix(".tex"))
    return f"\\input{{{stem.parent.name}/{stem.name}}}"


def _scenario(sc: str, agg, pc, records: list[CellRecord], results_dir: Path, out: Path
              ) -> tuple[list[str], list[str]]:
    """(body lines, appendix lines) of one scenario: tables, CSVs and figures written."""
    slug = files.slug(sc)
    sub = agg[agg["scenario"] == sc].reset_index(drop=True)
    recs = [r for r in records if r.scenario == sc]
    tables = out / "tables"
    device = latex.tex("/".join(sorted({str(r.environment.get("device", "?")) for r in recs
                                        if r.ok})) or "?")
    body = [f"\\subsection{{Scenario \\texttt{{{latex.tex(sc)}}}}}",
            _write_table(latex.results_frame(sub),
                         latex.results_table(latex.results_frame(sub), sc, f"tab:results-{slug}"),
                         tables / f"results_{slug}"),
            _write_table(latex.cost_frame(sub),
                         latex.cost_table(latex.cost_frame(sub), sc, f"tab:cost-{slug}", device),
                         tables / f"cost_{slug}")]
    made, _ = report.scenario_plots(recs, sub, results_dir, out / "figures", f"_{slug}", "pdf")
    body += [latex.figure(made[t].relative_to(out).as_posix(), f"{latex.tex(t)}, "
                          f"\\texttt{{{latex.tex(sc)}}}.", f"fig:{files.slug(t)}-{slug}")
             for t in PAPER_FIGURES if t in made]
    appendix = []
    classes = [c for t in data.task_names(recs) for c in t]
    pc_sc = pc[pc["scenario"] == sc] if len(pc) else pc
    for kind in dict.fromkeys(latex.results_frame(sub)["strategy"]):
        frame = latex.per_class_frame(pc_sc, sub, classes, kind)
        if not frame.empty:
            stem = tables / f"per_class_{slug}_{files.slug(kind)}"
            appendix.append(_write_table(
                frame.reset_index(names="class"),
                latex.per_class_table(frame, sc, kind, f"tab:class-{slug}-{files.slug(kind)}"),
                stem))
    return body, appendix


def write_paper(results_dir: Path, out_dir: Path) -> Path:
    """Write the paper's parts for every record in ``results_dir``; return main.tex's path."""
    results_dir, out = Path(results_dir), Path(out_dir)
    records, _ = load_records(results_dir)
    if not any(r.ok for r in records):
        raise FileNotFoundError(f"no successful cell records in {results_dir / 'cells'}")
    cells, pc, agg, _ = report.frames(records, results_dir)
    body, appendix = [], []
    for sc in data.scenario_order(records, agg):
        b, a = _scenario(sc, agg, pc, records, results_dir, out)
        body += b
        appendix += a
    cds = report.cd_diagrams(report.rank_tests(pc), out / "figures", "pdf")
    if cds:
        body.append(r"\subsection{Ranks across scenarios and classes}")
        body += [latex.figure(p.relative_to(out).as_posix(),
                              f"Critical-difference diagram, {latex.tex(name)}: mean rank over "
                              "(scenario, class) blocks (1 = best); methods joined by a bar are "
                              "not told apart by the Nemenyi test at the 5\\% level "
                              "(Dem\\v{s}ar 2006).", f"fig:cd-{files.slug(name)}")
                 for name, p in cds.items()]
    if appendix:
        body += [r"\clearpage", r"\appendix", r"\section{Per-class results}", *appendix]
    files.write_text(latex.setup_tex(records), out / "setup.tex")
    return files.write_text(latex.main_tex(body), out / "main.tex")


def compile_pdf(main: Path, timeout: float = 300.0) -> Path:
    """Run pdflatex twice (references) in main.tex's folder; main.pdf's path."""
    engine = shutil.which("pdflatex")
    if engine is None:
        raise PaperError("pdflatex not found: install a LaTeX engine "
                         "(e.g. apt-get install texlive-latex-recommended)")
    for _ in range(2):
        done = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error",
                               main.name], cwd=main.parent, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            first = next((ln for ln in done.stdout.splitlines() if ln.startswith("!")),
                         f"see {main.with_suffix('.log')}")
            raise PaperError(f"pdflatex failed on {main}: {first}")
    return main.with_suffix(".pdf")


def main_paper(args: argparse.Namespace) -> int:
    main = write_paper(args.results_dir, args.out)
    print(f"wrote {main}")
    if args.pdf:
        print(f"wrote {compile_pdf(main)}")
    return 0
