"""The CLI's promises: one-line errors with exit code 2, flags generated from configs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nfbench.benchmarks.cli import build_parser, main, request_from_args


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from nfbench.benchmarks.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--model", "nosuchmodel"], "unknown model 'nosuchmodel'"),
        (["run", "--model", "fastflow", "--no-such-flag", "1"], "unrecognized arguments"),
        (["run", "--model", "fastflow", "--scenario", "mvtec:15x1", "--data-root",
          "/nonexistent/mvtec"], "/nonexistent/mvtec"),
        (["run", "--model", "fastflow", "--strategy", "sideways"], "strategy 'sideways'"),
        (["run", "--model", "fastflow", "--fastflow.flow-steps", "many"], "invalid int"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle):
    result = _run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0] and lines[0].startswith("nfbench: error:")


def test_model_flags_come_from_the_config(tmp_path):
    args = build_parser().parse_args(
        ["run", "--model", "fastflow", "--fastflow.flow-steps", "4",
         "--fastflow.conv3x3-only", "true", "--strategy", "finetune", "joint", "--seeds", "0",
         "1", "--results", str(tmp_path)])
    request = request_from_args(args)
    assert request.model_overrides == {"fastflow": {"flow_steps": 4, "conv3x3_only": True}}
    assert request.strategies == ["finetune", "joint"] and request.seeds == [0, 1]


def test_preset_values_yield_to_flags():
    request = request_from_args(build_parser().parse_args(
        ["run", "--config", "bench", "--seeds", "3"]))
    assert request.seeds == [3] and "fastflow" in request.models


def test_list_shows_every_flag_with_its_default(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "--fastflow.flow-steps" in out and " 8 " in out


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)])
def test_strict_run_exits_1_when_a_cell_failed(monkeypatch, tmp_path, capsys, strict, code):
    records = [{"status": "ok"}, {"status": "failed"}, {"status": "skipped"}]
    monkeypatch.setattr("nfbench.benchmarks.cli.run_grid", lambda request: records)
    args = ["run", "--model", "fastflow", "--results", str(tmp_path)]
    assert main(args + (["--strict"] if strict else [])) == code
    assert "3 cells, 1 failed, 1 skipped" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_one_line_error():
    result = _run_cli("run", "--model", "fastflow", "--device", "cuda:7")
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and len(result.stderr.strip().splitlines()) == 1
