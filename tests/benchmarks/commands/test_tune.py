"""`nfbench tune`: one row per value, trained and scored on the validation split only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from nfbench.benchmarks.commands.cli import main
from nfbench.benchmarks.commands.tune import summarize_values, verdict
from nfbench.benchmarks.records.record import CellRecord, ErrorInfo, load_records

FAST = ["--fastflow.epochs", "1", "--fastflow.flow-steps", "2", "--fastflow.batch-size", "2"]


def _tune(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["tune", "--model", "fastflow", "--scenario", "folder:2x1", "--data-root", str(data),
            "--input-size", "64", "--results", str(tmp_path / "tune"),
            "--cache-dir", str(tmp_path / "cache"), *extra]


def test_tune_prints_one_row_per_value_without_test_folders(tiny_data, tmp_path, capsys):
    for name in ("alpha", "beta"):  # nothing of the test set may be needed
        shutil.rmtree(tiny_data / name / "test")
        shutil.rmtree(tiny_data / name / "ground_truth")
    argv = _tune(tiny_data, tmp_path, "--param", "lr", "--values", "1e-3", "3e-3",
                 "--seeds", "0", "1", *FAST)
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].split("|")[1].strip() == "lr"
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["1e-3", "3e-3"]
    assert "best on validation image AUROC ACC: lr=" in out
    csv = tmp_path / "tune" / "tune-fastflow-lr-folder_2x1-joint.csv"
    table = pd.read_csv(csv, dtype={"lr": str})
    assert list(table["lr"]) == ["1e-3", "3e-3"]
    assert (table["seeds"] == 2).all() and (table["failed"] == 0).all()
    assert table["image AUROC ACC"].between(0, 100).all()
    cells, _ = load_records(tmp_path / "tune")
    assert len(cells) == 4  # 2 values x 2 seeds
    for record in cells:
        assert record.ok and record.strategy == "joint"
        assert record.config["lr"] in (1e-3, 3e-3) and record.config["epochs"] == 1
        assert record.cost.latency_ms_p50 is None
    scores = pd.concat(pd.read_csv(p) for p in (tmp_path / "tune" / "scores").glob("*.csv"))
    assert all("/validation/" in p for p in scores["path"])  # scored on the split only
    assert len(set(scores["path"])) == 8  # 2 classes x (2 normals + 2 painted copies)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--param", "no_such_field", "--values", "1"], "has no option 'no_such_field'"),
        (["--param", "lr", "--values", "fast"], "'fast' is not a valid float for lr"),
        (["--param", "lr", "--values", "1e-3", "1e-3"], "given twice"),
        (["--param", "lr", "--values", "1e-3", "--fastflow.lr", "1e-2"], "conflicts"),
        (["--param", "lr", "--values", "1e-3", "--cflow.epochs", "2"], "not tuned: cflow"),
        (["--param", "lr", "--values", "1e-3", "--strategy", "sideways"], "sideways"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_data, tmp_path, capsys, extra, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(_tune(tiny_data, tmp_path, *extra))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cache" / "validation").exists()  # failed before any data


def test_unknown_model_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--model", "nosuchmodel", "--param", "lr", "--values", "1e-3"])
    assert exit_info.value.code == 2
    assert "unknown model 'nosuchmodel'" in capsys.readouterr().err


def _records(image: list[float], failed: int = 0) -> list[CellRecord]:
    identity = dict(model="m", variant="m", scenario="s", strategy="joint", seed=0)
    ok = [CellRecord(cell_id=f"c{i}", status="ok", **identity,
                     summary={"image_auroc": {"acc": v}, "pixel_auroc": {"acc": v}})
          for i, v in enumerate(image)]
    return ok + [CellRecord.failed("f", ErrorInfo("E", "m"), **identity)] * failed


def test_table_and_verdict_from_literal_records():
    rows = [{"label": "2e-4", "records": _records([0.70, 0.71, 0.72])},
            {"label": "1e-3", "records": _records([0.80, 0.81, 0.82], failed=1)},
            {"label": "2e-3", "records": _records([0.70, 0.95, 0.80])}]
    table = summarize_values("lr", rows)
    assert list(table["lr"]) == ["2e-4", "1e-3", "2e-3"]
    assert list(table["seeds"]) == [3, 3, 3] and list(table["failed"]) == [0, 1, 0]
    assert table["image AUROC ACC"].tolist() == pytest.approx([71.0, 81.0, 81.6666667])
    assert table.loc[0, "image AUROC 95% CI"] == "[68.5, 73.5]"  # 71 +- t(0.975, 2) * 1/sqrt(3)
    text = verdict("lr", table)
    # 2e-3 has the best mean, but its seeds spread too far to beat anything significantly
    assert text.startswith("best on validation image AUROC ACC: lr=2e-3 (81.7)")
    assert "not significantly better than lr=2e-4, 1e-3" in text
    clear = verdict("lr", summarize_values("lr", rows[:2]))
    assert "lr=1e-3 (81.0); significantly better than every other value" in clear
    single = verdict("lr", summarize_values("lr", [{"label": "1", "records": _records([0.7])}]))
    assert "one seed" in single
