"""`--executor slurm` against the real local Slurm cluster: a grid's records equal a local run's,
a cancelled job becomes a failed record carrying CANCELLED while the other cells finish, and
`nfbench status` lists it. Without Slurm: the one-line error when submitit is missing, the
sbatch options, and the wait loop's verdicts (it ends for every job, dead ones included)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nfbench.benchmarks.commands.cli import main
from nfbench.benchmarks.commands.status import status_rows
from nfbench.benchmarks.records.record import cell_path, read_record
from nfbench.benchmarks.running.executors import build_executor
from nfbench.benchmarks.running.executors import slurm as slurm_executor
from nfbench.benchmarks.running.executors.slurm import SlurmConfig, read_jobs
from nfbench.benchmarks.running.request import RunRequest
from nfbench.benchmarks.running.runner import run_grid

COMPARED = ("status", "R", "summary", "per_class", "thresholds", "threshold_calibration")
DEADLINE_S = 120  # the cancelling thread gives up (and cancels everything) after this


@pytest.fixture
def one_thread(monkeypatch):
    """The jobs get 1 CPU (1 thread); the local run in this process matches."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run_argv(request: RunRequest, results: Path, partition: str) -> list[str]:
    return ["run", "--model", "fastflow", "--strategy", "finetune", "replay",
            "--scenario", request.scenario, "--data-root", str(request.data_root),
            "--input-size", str(request.input_size), "--results", str(results),
            "--cache-dir", str(request.cache_dir), "--fastflow.epochs", "2",
            "--fastflow.flow-steps", "2", "--fastflow.batch-size", "3", "--no-cost",
            "--executor", "slurm", "--slurm-partition", partition, "--slurm-cpus", "1",
            "--slurm-time", "5", "--slurm-mem", "1", "--slurm-extra", "comment=nfbench-test"]


@pytest.mark.slurm
def test_slurm_grid_gives_the_local_records(slurm_cluster, tiny_request, tmp_path, one_thread):
    request = dataclasses.replace(tiny_request, strategies=["finetune", "replay"])
    local = run_grid(request, show_progress=False)
    results = tmp_path / "slurm-results"
    argv = _run_argv(request, results, slurm_cluster.partition)
    assert main(argv) == 0
    for mine in local:
        theirs = read_record(cell_path(results, mine.cell_id))
        for name in COMPARED:
            assert getattr(theirs, name) == getattr(mine, name), (mine.cell_id, name)
    jobs = read_jobs(results)
    assert set(jobs) == {r.cell_id for r in local}
    arrays = {entry["job_id"].split("_")[0] for entry in jobs.values()}
    assert len(arrays) == 1  # one job array
    script = (results / "slurm" / f"{arrays.pop()}_submission.sh").read_text()
    for line in ("--comment=nfbench-test", "--cpus-per-task=1", "--time=5", "--mem=1GB",
                 f"--partition={slurm_cluster.partition}", "--array=0-1"):
        assert line in script
    assert main(argv) == 0  # finished cells are skipped: nothing is submitted again
    assert read_jobs(results) == jobs


def _cancel_when_running(results: Path, model: str, env: dict, out: dict) -> None:
    """Wait for `model`'s job to run, note what status says, scancel it. After DEADLINE_S,
    cancel every job of the grid instead, so the launcher can never wait on them for ever."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        entry = next((e for e in read_jobs(results).values() if e["model"] == model), None)
        if entry:
            state = subprocess.run(["squeue", "-h", "-j", entry["job_id"], "-o", "%T"], env=env,
                                   capture_output=True, text=True).stdout.strip()
            if state == "RUNNING":
                out["status"] = status_rows(results)[0]
                subprocess.run(["scancel", entry["job_id"]], env=env, check=True)
                out["cancelled_at"] = time.monotonic()
                return
        time.sleep(0.5)
    out["timed_out"] = True
    for entry in read_jobs(results).values():
        subprocess.run(["scancel", entry["job_id"]], env=env, check=False)


@pytest.mark.slurm
def test_cancelled_job_is_a_failed_record_and_status_lists_it(slurm_cluster, tiny_request,
                                                               one_thread, capsys):
    # one long cell (a run of many epochs, cancelled from here) beside one short cell
    request = dataclasses.replace(
        tiny_request, models=["cflow", "fastflow"], executor="slurm",
        executor_options={"slurm": {"partition": slurm_cluster.partition, "cpus": 1,
                                    "time": 5}},
        model_overrides={**tiny_request.model_overrides,
                         "cflow": {"epochs": 100_000, "coupling_blocks": 1}})
    results = request.results_dir
    out: dict = {}
    canceller = threading.Thread(target=_cancel_when_running, daemon=True,
                                 args=(results, "cflow", slurm_cluster.env(), out))
    canceller.start()
    records = run_grid(request, show_progress=False)
    returned = time.monotonic()
    canceller.join(timeout=DEADLINE_S)
    assert "timed_out" not in out, "the long job never ran"
    assert returned - out["cancelled_at"] < 30, "the launcher did not return promptly"
    long, short = records
    assert (long.model, long.status, long.error.type, long.error.message) == (
        "cflow", "failed", "Slurm", "CANCELLED")
    assert read_record(cell_path(results, long.cell_id)).error.message == "CANCELLED"
    assert short.model == "fastflow" and short.ok
    running = {row["cell"]: row["state"] for row in out["status"]}
    assert running[long.cell_id] == "running"  # while it ran: a job, no record yet

    capsys.readouterr()
    assert main(["status", "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "Slurm: CANCELLED" in printed
    assert printed.strip().splitlines()[-1] == "2 cells: 1 ok, 1 failed"


# ---- without Slurm --------------------------------------------------------------------------
def test_without_submitit_slurm_is_a_one_line_error(tiny_request, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    results = tmp_path / "no-submitit"
    with pytest.raises(SystemExit) as stop:
        main(["run", "--model", "fastflow", "--scenario", "folder:2x1", "--data-root",
              str(tiny_request.data_root), "--results", str(results), "--executor", "slurm"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'nfbench[cluster]'" in err
    assert not results.exists()


def test_slurm_options_become_submitit_parameters(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('model = ["fastflow"]\nexecutor = "slurm"\nslurm-partition = "gpu"\n'
                    'slurm-gpus = 2\nslurm-cpus = 8\nslurm-mem = 32\nslurm-time = 90\n'
                    'slurm-parallelism = 4\nslurm-extra = ["qos=high", "account=x", '
                    '"exclusive"]\n')
    from nfbench.benchmarks.commands.cli import build_parser, request_from_args

    request = request_from_args(build_parser().parse_args(
        ["run", "--config", str(grid), "--slurm-time", "120"]))
    executor = build_executor(request)
    assert slurm_executor.executor_parameters(executor.config, request.device) == {
        "name": "nfbench", "timeout_min": 120, "nodes": 1, "tasks_per_node": 1,
        "cpus_per_task": 8, "gpus_per_node": 2, "mem_gb": 32, "slurm_partition": "gpu",
        "slurm_array_parallelism": 4,
        "slurm_additional_parameters": {"qos": "high", "account": "x", "exclusive": True}}
    plain = slurm_executor.executor_parameters(SlurmConfig(), "cuda")
    assert plain["gpus_per_node"] == 1  # cuda: 1 GPU
    new_spelling = request_from_args(build_parser().parse_args(
        ["run", "--config", str(grid), "--slurm.time", "120", "--slurm.extra", "qos=low"]))
    assert new_spelling.executor_options["slurm"] == {**request.executor_options["slurm"],
                                                      "extra": ["qos=low"]}


def _fake_job(tmp_path: Path, job_id: str = "7_1") -> SimpleNamespace:
    paths = SimpleNamespace(result_pickle=tmp_path / f"{job_id}_0_result.pkl")
    return SimpleNamespace(job_id=job_id, paths=paths)


def test_wait_verdicts_end_for_every_job(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm_executor, "RESULT_GRACE_S", 0.0)
    item = slurm_executor._Pending(cell=None, job=_fake_job(tmp_path), submitted=0.0)
    verdict = slurm_executor._verdict
    assert verdict(item, None) is None  # Slurm does not answer: wait for the result file
    assert verdict(item, ({"7_1": ("PENDING", "Priority")}, True)) is None
    assert verdict(item, ({"7_1": ("RUNNING", "")}, True)) is None
    for state in ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"):
        assert verdict(item, ({"7_1": (state, "")}, True)) == state
    gone = slurm_executor._Pending(cell=None, job=_fake_job(tmp_path), submitted=0.0)
    verdicts = [verdict(gone, ({}, True)) for _ in range(slurm_executor.LOST_POLLS)]
    assert verdicts[-1] == "LOST" and set(verdicts[:-1]) == {None}
    item.job.paths.result_pickle.write_bytes(b"")
    assert verdict(item, ({"7_1": ("CANCELLED", "")}, True)) == "result"


def test_array_ids_are_expanded():
    assert slurm_executor._parse("12_[3-5%2]|PENDING|JobArrayTaskLimit\n12_1|CANCELLED by 0\n"
                                 "12_2.batch|COMPLETED\n") == {
        "12_3": ("PENDING", "JobArrayTaskLimit"), "12_4": ("PENDING", "JobArrayTaskLimit"),
        "12_5": ("PENDING", "JobArrayTaskLimit"), "12_1": ("CANCELLED", "")}


def test_a_login_node_without_gpu_plans_a_cuda_grid(tiny_request, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    request = dataclasses.replace(tiny_request, device="cuda", executor="slurm")
    env = build_executor(request).environment(show_progress=False)
    assert env.device.type == "cuda"  # the cells' ids say cuda; they run on the GPU nodes
    assert next(env.cache.backbone.parameters()).device.type == "cpu"
