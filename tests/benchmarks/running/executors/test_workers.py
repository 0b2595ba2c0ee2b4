"""Executors: N worker processes give the records of the sequential run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nfbench.benchmarks.running.runner import run_grid

pytestmark = pytest.mark.slow

COMPARED = ("R", "summary", "per_class", "thresholds", "threshold_calibration", "status")


def test_two_workers_give_the_sequential_records(tiny_request, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers get 2 cores / 2 workers = 1 thread each
    try:
        request = dataclasses.replace(
            tiny_request, models=["fastflow", "cflow"], strategies=["finetune", "replay"],
            seeds=[0, 1], measure_cost=True,
            model_overrides={**tiny_request.model_overrides,
                             "cflow": {"epochs": 1, "coupling_blocks": 1}})
        sequential = run_grid(request, show_progress=False)
        parallel = run_grid(dataclasses.replace(request, results_dir=tmp_path / "parallel",
                                                workers=2), show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert [r.cell_id for r in parallel] == [r.cell_id for r in sequential]
    for seq, par in zip(sequential, parallel, strict=True):
        for field in COMPARED:
            assert getattr(par, field) == getattr(seq, field), (seq.cell_id, field)
    # every cost figure says it was measured while 2 cells ran at once
    assert {r.cost.concurrent_cells for r in parallel} == {2}
    assert {r.cost.concurrent_cells for r in sequential} == {1}
