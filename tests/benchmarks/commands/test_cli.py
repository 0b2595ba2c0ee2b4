"""The CLI's promises: one-line errors with exit code 2, flags generated from configs."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from nfbench.benchmarks.commands.cli import build_parser, main, request_from_args


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    code = ("import sys; from nfbench.benchmarks.commands.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
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
        (["run", "--model", "msflow", "--msflow.image-score", "exp"], "invalid choice: 'exp'"),
        (["run", "--model", "fastflow", "--calibration-split", "1"],
         "calibration split must be in [0, 1), got 1.0"),
        (["run", "--model", "fastflow", "--calibration-split", "tenth"], "not a number"),
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
    assert request.calibration_split == 0.1  # the default: thresholds on held-out normals


def test_calibration_split_flag_reaches_the_request():
    request = request_from_args(build_parser().parse_args(
        ["run", "--model", "fastflow", "--calibration-split", "0"]))
    assert request.calibration_split == 0.0  # calibrate on the training images, as before


def test_list_is_a_compact_table_native_models_first(capsys):
    assert main(["list"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    kinds = [ln.split("|")[2].strip() for ln in lines[1:]]
    assert kinds == sorted(kinds, key=lambda k: k != "native") and "reference" in kinds
    assert any(ln.startswith("| fastflow ") and "FastFlow" in ln for ln in lines)


def test_list_model_shows_its_flags_with_defaults_and_sources(capsys):
    assert main(["list", "cflow"]) == 0
    out = capsys.readouterr().out
    assert "--cflow.coupling-blocks" in out and "paper" in out


def test_run_help_is_short():
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_usage()
    assert len(help_text.splitlines()) <= 12
    assert "--fastflow." not in build_parser()._subparsers._group_actions[0].choices[
        "run"].format_help()


def test_presets_lists_the_grid_files(capsys):
    assert main(["presets"]) == 0
    assert "gpu-check" in capsys.readouterr().out


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)])
def test_strict_run_exits_1_when_a_cell_failed(monkeypatch, tmp_path, capsys, strict, code):
    records = [SimpleNamespace(status=s) for s in ("ok", "failed", "skipped")]
    monkeypatch.setattr("nfbench.benchmarks.commands.cli.run_grid", lambda request: records)
    args = ["run", "--model", "fastflow", "--results", str(tmp_path)]
    assert main(args + (["--strict"] if strict else [])) == code
    assert "3 cells, 1 failed, 1 skipped" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_one_line_error():
    result = _run_cli("run", "--model", "fastflow", "--device", "cuda:7")
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and len(result.stderr.strip().splitlines()) == 1
