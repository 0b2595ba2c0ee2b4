"""Smoke tests of submitit against the real local Slurm cluster (no nfbench code yet)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.slurm
submitit = pytest.importorskip(
    "submitit", reason='submitit not importable: pip install -e ".[cluster]"')
cloudpickle = pytest.importorskip("cloudpickle")

DEADLINE_S = 90  # no test waits longer than this on any one condition


def _cell(x: int) -> dict:
    import os as _os

    return {"x": x, "square": x * x, "array_task": _os.environ.get("SLURM_ARRAY_TASK_ID")}


def _sleep(seconds: float) -> float:
    import time as _time

    _time.sleep(seconds)
    return seconds


@pytest.fixture
def executor(slurm_cluster, tmp_path):
    # Test modules are imported by path (--import-mode=importlib), so the job process could not
    # import them by name: ship this module's functions by value.
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    ex = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert ex.cluster == "slurm"
    ex.update_parameters(slurm_partition=slurm_cluster.partition, timeout_min=5,
                         cpus_per_task=1, nodes=1, tasks_per_node=1)
    try:
        yield ex
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _wait(job, condition, what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            job.cancel(check=False)
            pytest.fail(f"job {job.job_id}: timed out after {DEADLINE_S} s waiting for {what} "
                        f"(state {job.state})")
        time.sleep(1)


def test_cluster_is_up(slurm_cluster):
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
    out = subprocess.run(["sinfo", "-h", "-p", slurm_cluster.partition, "-o", "%T"],
                         capture_output=True, text=True, check=True, env=slurm_cluster.env())
    assert out.stdout.split()[0] in ("idle", "mixed", "allocated")  # up; a job may run
    assert set(slurm_cluster.pids) == {"munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"}


def test_map_array_returns_results(executor):
    jobs = executor.map_array(_cell, [1, 2, 3])
    assert len(jobs) == 3 and len({j.job_id.split("_")[0] for j in jobs}) == 1  # one array
    for job in jobs:
        _wait(job, lambda job=job: job.done(force_check=True), "completion")
    results = [job.result() for job in jobs]
    assert [r["square"] for r in results] == [1, 4, 9]
    assert sorted(r["array_task"] for r in results) == ["0", "1", "2"]
    # the result files can land before accounting has the end state: poll sacct for it
    for job in jobs:
        _wait(job, lambda job=job: job.get_info(mode="force").get("State") == "COMPLETED",
              "COMPLETED in sacct")


def test_cancelled_job_reports_cancelled_and_raises(executor):
    job = executor.submit(_sleep, 60)

    def running() -> bool:
        job.done(force_check=True)  # refreshes the sacct state
        return job.state == "RUNNING"

    _wait(job, running, "RUNNING")
    job.cancel()
    _wait(job, lambda: job.done(force_check=True), "the cancelled job to be done")
    assert job.state.startswith("CANCELLED")

    outcome: dict = {}

    def get_result() -> None:
        try:
            outcome["value"] = job.result()
        except BaseException as exc:  # noqa: BLE001 - record whatever result() raises
            outcome["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=get_result, daemon=True)
    thread.start()
    thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive(), f"result() of a cancelled job still blocking after {DEADLINE_S} s"
    assert "value" not in outcome, f"cancelled job returned {outcome['value']!r}"
    assert isinstance(outcome["error"], submitit.core.utils.UncompletedJobError)
    assert time.monotonic() - start < 30, "result() of a cancelled job is not prompt"


def test_second_cluster_runs_beside_and_stops_cleanly(slurm_cluster, slurm_lifecycle):
    """start.sh/stop.sh: a second run folder does not collide with the session cluster, and
    stop.sh leaves none of its daemons' PIDs alive (the session fixture checks the same)."""
    second = slurm_lifecycle.start()
    try:
        assert second.run_dir != slurm_cluster.run_dir
        assert len(second.pids) == 5
        assert not set(second.pids.values()) & set(slurm_cluster.pids.values())
        assert slurm_lifecycle.alive(second) and len(slurm_lifecycle.alive(second)) == 5
    finally:
        still_alive = slurm_lifecycle.stop(second)
    assert still_alive == []
    slurm_lifecycle.remove(second)
    assert len(slurm_lifecycle.alive(slurm_cluster)) == 5  # the session cluster is untouched
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                         check=True, env=slurm_cluster.env())
    assert out.stdout.split()[0] in ("idle", "mixed", "allocated")  # up; a job may run
