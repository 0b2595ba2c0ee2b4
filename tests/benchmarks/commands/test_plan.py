"""`nfbench plan`: the estimate of a grid's time is within a factor 2 of a real run."""

from __future__ import annotations

import dataclasses
import time

import pytest

from nfbench.benchmarks.commands.cli import main
from nfbench.benchmarks.commands.plan import placeholder_dataset, plan
from nfbench.benchmarks.running.runner import run_grid
from nfbench.datasets.catalog import class_sizes
from nfbench.datasets.sizes import MVTEC_AD

pytestmark = pytest.mark.slow


def test_estimate_is_within_a_factor_2_of_a_real_run(tiny_request):
    request = dataclasses.replace(
        tiny_request, models=["fastflow", "uflow"], strategies=["finetune", "joint"],
        input_size=128, measure_cost=True,
        model_overrides={"fastflow": {"epochs": 6, "batch_size": 3},
                         "uflow": {"epochs": 6, "batch_size": 3}})
    ratios = []
    for attempt in range(2):  # a second try when a busy machine skewed calibration or run
        request = dataclasses.replace(
            request, results_dir=tiny_request.results_dir / f"attempt{attempt}",
            cache_dir=tiny_request.cache_dir / f"attempt{attempt}")
        table, totals = plan(request)
        assert len(table) == 4 and set(table["strategy"]) == {"finetune", "joint"}
        start = time.perf_counter()
        records = run_grid(request, show_progress=False)
        measured = time.perf_counter() - start
        assert all(r.ok for r in records)
        ratios.append(totals["total_s"] / measured)
        print(f"plan {totals['total_s']:.1f} s, real {measured:.1f} s, ratio {ratios[-1]:.2f}")
        if 0.5 <= ratios[-1] <= 2.0:
            break
    assert 0.5 <= ratios[-1] <= 2.0, f"estimate/real ratios {ratios}"


def test_known_sizes_and_placeholders_need_no_data(tmp_path):
    sizes = class_sizes("mvtec", None, tmp_path)
    assert sum(n for n, _ in sizes.values()) == 3629 and sum(n for _, n in sizes.values()) == 1725
    assert sizes == MVTEC_AD
    dataset = placeholder_dataset("mvtec", sizes)
    assert len(dataset["bottle"].train) == 209 and len(dataset["zipper"].test) == 151


def test_plan_command_prints_a_total(capsys):
    code = main(["plan", "--model", "fastflow", "--strategy", "finetune", "--scenario",
                 "mvtec:3x5", "--input-size", "64", "--fastflow.epochs", "1", "--no-cost"])
    out = capsys.readouterr().out
    assert code == 0 and "3 cells" not in out  # one model, one strategy, one seed: 1 cell
    assert "1 cells, " in out and "CPU-hours" in out and "| fastflow " in out


def test_steps_only_plans_paper_mvtec_in_seconds_without_a_backbone(capsys, monkeypatch):
    from nfbench.benchmarks.commands import plan as plan_module

    def refuse(*args, **kwargs):
        raise AssertionError("--steps-only built a backbone")

    monkeypatch.setattr(plan_module, "Backbone", refuse)
    monkeypatch.setattr(plan_module, "calibrate", refuse)
    start = time.perf_counter()
    code = main(["plan", "--config", "paper-mvtec", "--steps-only"])
    out = capsys.readouterr()
    assert code == 0 and time.perf_counter() - start < 120  # seconds on a quiet machine
    # 9 models x 4 strategies x 4 scenarios x 3 seeds = 432 requested, minus the 72 `own`
    # cells the runner skips (FastFlow, CFLOW, CS-Flow, U-Flow, MSFlow have no mechanism of
    # their own; HGAD's acts under every strategy): the rule is the runner's
    # joint is trained once per variant and seed: the 4 scenarios hold the same 15 classes
    assert "360 cells, 14,390,940 optimiser steps (4,112,640 not taken" in out.out
    for model in ("fastflow", "cflow", "csflow", "uflow", "hgad", "ccnf", "msflow", "isoflow"):
        assert f"| {model} " in out.out


def test_plan_counts_the_cells_the_runner_runs(tiny_request):
    request = dataclasses.replace(
        tiny_request, models=["cflow", "fastflow"], strategies=["finetune", "own"],
        model_overrides={"cflow": {"epochs": 1}, "fastflow": {"epochs": 1, "flow_steps": 2}})
    table, totals = plan(request, steps_only=True)
    assert totals["cells"] == 2 and set(table["strategy"]) == {"finetune"}
    records = run_grid(request, show_progress=False)
    assert sum(r.status != "skipped" for r in records) == totals["cells"]


def test_plan_counts_joint_once_across_scenarios_with_the_same_classes(tiny_request):
    request = dataclasses.replace(
        tiny_request, models=["fastflow"], strategies=["finetune", "joint"],
        scenario=["folder:2x1", "folder:1-1"], seeds=[0, 1])
    table, totals = plan(request, steps_only=True)
    joint = table[table["strategy"] == "joint"]
    first = joint[joint["scenario"] == "folder:2x1"]
    assert (first["steps"] > 0).all() and (first["saved_steps"] == 0).all()
    later = joint[joint["scenario"] != "folder:2x1"]
    assert len(later) == 2 and (later["steps"] == 0).all()
    assert later["saved_steps"].tolist() == first["steps"].tolist()
    assert totals["saved_steps"] == later["saved_steps"].sum()
    assert (table[table["strategy"] == "finetune"]["saved_steps"] == 0).all()


def test_plan_warns_naming_the_model_that_slurm_mem_cannot_hold(capsys):
    code = main(["plan", "--model", "fastflow", "--scenario", "mvtec:15x1", "--input-size",
                 "512", "--steps-only", "--slurm-mem", "1"])
    err = capsys.readouterr().err
    assert code == 0 and "warning: fastflow: a cell needs about" in err
    assert "slurm's memory per cell is 1 GB" in err
