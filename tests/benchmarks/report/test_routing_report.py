"""The report's routing figures: a routing-accuracy column (n/a for rows that do not route),
each routed row beside its oracle (task-aware) row, a plot over tasks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import ttest_rel

from nfbench.benchmarks.records.record import CellRecord, Cost
from nfbench.benchmarks.report import data, intervals, markdown, plots, tables


def _record(strategy: str, seed: int, acc: float, task_aware: bool = False,
            routing: dict | None = None, model: str = "isoflow",
            variant: str | None = None) -> CellRecord:
    R = [[acc, None], [acc, acc]]
    return CellRecord(
        cell_id=f"{variant or model}-{strategy}-{seed}-{task_aware}", status="ok", model=model,
        variant=variant or model, scenario="synthetic:2x1", strategy=strategy, seed=seed,
        task_aware=task_aware, tasks=[["a"], ["b"]], R={"image_auroc": R},
        summary={"image_auroc": {"acc": acc, "fm": 0.0, "bwt": 0.0}}, routing=routing,
        cost=Cost(params_trainable=[1000, 10], state_mb=[1.0, 1.1]))


ROUTING = {"normal": [[1.0, None], [1.0, 0.5]], "anomalous": [[1.0, None], [0.5, 0.5]],
           "confusion": [[[2, 0], [2, 0]], [[2, 0], [1, 1]]]}


def _agg(records: list[CellRecord]):
    return data.aggregate(data.cells_frame(records))


def test_routing_column_and_the_oracle_row_beside_it(monkeypatch):
    records = [_record("isoflow", s, a, routing=ROUTING) for s, a in ((0, 0.8), (1, 0.82))]
    records += [_record("isoflow", s, a, task_aware=True) for s, a in ((0, 0.9), (1, 0.93))]
    records += [_record("replay", 0, 0.85, model="fastflow")]
    agg = intervals.with_routing_gaps(_agg(records), records, {}, {})
    assert list(zip(agg["variant"], agg["task_aware"], strict=True)) == [
        ("fastflow", False), ("isoflow", False), ("isoflow", True)]
    monkeypatch.setattr(markdown, "fmt_vs_best", lambda r: "")  # needs the bootstrap's columns
    details = markdown.details_tables(agg)[0]  # the first table keeps its ten columns
    assert tables.ROUTING_HEADER in details
    cells = [tables.routing_cell(r) for _, r in agg.iterrows()]
    assert cells[0] == "n/a" and cells[2] == "n/a"  # cannot route; oracle routing
    assert cells[1].startswith("75.0") and "/ 50.0" in cells[1]
    table = tables.routing_table(agg)
    assert table is not None and table.count("\n") == 2  # header, rule, one routed row
    assert "81.0" in table and "91.5" in table
    # routed - oracle: paired by seed (one trained model scored two ways), as scipy computes it
    low, high = ttest_rel([0.8, 0.82], [0.9, 0.93]).confidence_interval()
    assert f"-10.5 [{low * 100:.1f}, {high * 100:.1f}] (paired seeds)" in table
    assert np.isnan(agg["routing_gap"]).tolist() == [True, False, True]  # one routed row


def test_no_routing_table_without_a_routed_row():
    assert tables.routing_table(_agg([_record("replay", 0, 0.8, model="fastflow")])) is None


def test_routing_over_tasks_plots_the_mean_over_learned_tasks():
    curves = data.routing_per_task([_record("isoflow", 0, 0.8, routing=ROUTING)])
    assert np.allclose(curves["normal"]["isoflow / isoflow"], [1.0, 0.75])
    assert np.allclose(curves["anomalous"]["isoflow / isoflow"], [1.0, 0.5])
    fig = plots.routing_over_tasks(curves)
    assert fig is not None and len(fig.axes[0].lines) == 1
    plt.close(fig)
    assert plots.routing_over_tasks({"normal": {}, "anomalous": {}}) is None


def test_parameters_per_task_are_a_panel_of_state_per_task():
    records = [_record("isoflow", 0, 0.8)]
    fig = plots.state_per_task(data.state_per_task(records),
                               trainable=data.trainable_per_task(records))
    assert len(fig.axes) == 2
    assert list(fig.axes[1].lines[0].get_ydata()) == [1000, 10]
    plt.close(fig)


def test_an_ablation_sits_beside_the_default_variant_with_its_difference():
    records = [_record("isoflow", s, a) for s, a in ((0, 0.8), (1, 0.84))]
    records += [_record("isoflow", s, a, variant="isoflow[alignment=False]")
                for s, a in ((0, 0.7), (1, 0.72))]
    records += [_record("replay", 0, 0.85, model="fastflow"), _record("joint", 0, 0.9)]
    agg = intervals.with_variant_gaps(_agg(records), records, {}, {})
    table = tables.variants_table(agg)
    assert table is not None and table.count("\n") == 3  # header, rule, default, ablation
    assert "fastflow" not in table and "joint" not in table  # nothing ablated there
    low, high = ttest_rel([0.7, 0.72], [0.8, 0.84]).confidence_interval()
    assert f"-11.0 [{low * 100:.1f}, {high * 100:.1f}] (paired seeds)" in table
    assert tables.variants_table(intervals.with_variant_gaps(
        _agg(records[:2]), records[:2], {}, {})) is None
