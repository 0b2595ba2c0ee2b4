"""One typed record: a faithful JSON round trip, a migration for schema 1, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nfbench.benchmarks.records.record import (
    SCHEMA_VERSION,
    CellRecord,
    Cost,
    ErrorInfo,
    RecordError,
    load_records,
    read_record,
    write_record,
)


def _record(**changes) -> CellRecord:
    base = dict(cell_id="c1", status="ok", model="fastflow", variant="fastflow",
                scenario="synthetic:2x1", strategy="finetune", seed=0,
                R={"image_auroc": [[0.9, np.nan], [0.8, 0.7]]},
                summary={"image_auroc": {"acc": 0.75, "fm": 0.1, "bwt": -0.1}},
                cost=Cost(train_time_s=[1.0, 2.0], latency_ms_p50=3.0))
    return CellRecord(**{**base, **changes})


def test_round_trip_keeps_every_field_and_turns_nan_into_null(tmp_path):
    record = _record()
    path = tmp_path / "cells" / "c1.json"
    write_record(path, record)
    stored = json.loads(path.read_text())
    assert stored["schema_version"] == SCHEMA_VERSION
    assert stored["R"]["image_auroc"][0][1] is None
    back = read_record(path)
    assert back.cost == record.cost and back.summary == record.summary
    assert np.isnan(back.r_matrix("image_auroc")[0, 1]) and back.r_matrix("pixel_auroc") is None
    assert back.summary_value("image_auroc", "acc") == 0.75
    assert np.isnan(back.summary_value("pixel_auroc", "acc"))
    assert back.label == "fastflow / finetune"


def test_tie_flags_round_trip_and_records_before_them_read_as_untied(tmp_path):
    flag = {"after_task": 1, "task": 0, "class": "brick", "share": 1.0, "value": 1.0,
            "images": 30}
    write_record(tmp_path / "c1.json", _record(ties=[flag]))
    assert read_record(tmp_path / "c1.json").ties == [flag]
    older = {k: v for k, v in _record().to_json().items() if k != "ties"}
    assert CellRecord.from_json(older).ties == []


def test_failed_and_skipped_records_are_the_same_type(tmp_path):
    failed = CellRecord.failed("c2", ErrorInfo("Diverged", "loss is nan", task=1, step=3),
                               model="m", variant="m", scenario="s", strategy="finetune", seed=0)
    skipped = CellRecord.skipped("c3", "no mechanism of its own", model="m", variant="m",
                                 scenario="s", strategy="own", seed=0)
    for record in (failed, skipped):
        write_record(tmp_path / "cells" / f"{record.cell_id}.json", record)
    records, notes = load_records(tmp_path)
    assert [r.status for r in records] == ["failed", "skipped"] and notes == []
    assert records[0].error.step == 3 and records[1].skip_reason == "no mechanism of its own"
    assert records[0].created and not records[0].ok


def test_schema_1_is_migrated_and_an_unknown_schema_is_a_clear_error(tmp_path):
    old = _record().to_json()
    old["schema_version"] = 1
    old["cost"] = {"peak_memory_mb": 1474.0, "memory_kind": "cpu_peak_rss",
                   "train_time_s": [1.0]}
    migrated = CellRecord.from_json(old)
    assert migrated.cost.peak_memory_mb == 1474.0 and migrated.cost.memory_mb_batch1 is None
    assert "schema 1" in migrated.cost.memory_kind
    future = dict(old, schema_version=99)
    with pytest.raises(RecordError, match="schema 99"):
        CellRecord.from_json(future)
    with pytest.raises(RecordError, match="fields this schema does not define"):
        CellRecord.from_json(dict(_record().to_json(), surprise=1))


def test_load_records_names_what_it_left_out(tmp_path):
    write_record(tmp_path / "cells" / "good.json", _record())
    (tmp_path / "cells" / "broken.json").write_text("{not json")
    (tmp_path / "cells" / "future.json").write_text(json.dumps({"schema_version": 99}))
    records, notes = load_records(tmp_path)
    assert [r.cell_id for r in records] == ["c1"]
    assert len(notes) == 2 and any("broken.json" in n for n in notes)


def test_schema_2_records_load_without_routing(tmp_path):
    old = {**_record().to_json(), "schema_version": 2}
    del old["routing"]
    path = tmp_path / "cells" / "c1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    back = read_record(path)
    assert back.routing is None and back.schema_version == SCHEMA_VERSION
