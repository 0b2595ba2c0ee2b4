"""Grids as files: presets are TOML files whose keys are the CLI's."""

from __future__ import annotations

from pathlib import Path

import pytest

from nfbench.benchmarks.commands.cli import build_parser, request_from_args
from nfbench.benchmarks.commands.grids import GridError, load_grid, presets


def test_presets_are_listed_with_their_description():
    listed = presets()
    assert {"bench", "check", "diagnose", "gpu-check"} <= set(listed)
    assert all(listed.values())


def test_check_preset_sets_every_model_table():
    grid = load_grid("check")
    assert grid["model_overrides"]["fastflow"] == {"epochs": 3, "flow_steps": 4}
    assert grid["input_size"] == 128 and grid["measure_cost"] is False


def test_a_user_grid_file_with_flags_on_top(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('models = ["fastflow"]\nstrategies = ["replay"]\nseeds = [0, 1]\n'
                    'results = "out"\n[fastflow]\nflow-steps = 2\n[replay]\nper-class = 4\n')
    args = build_parser().parse_args(["run", "--config", str(path), "--seeds", "3",
                                      "--replay.per-class", "5"])
    request = request_from_args(args)
    assert request.seeds == [3] and request.results_dir == Path("out")
    assert request.model_overrides == {"fastflow": {"flow_steps": 2}}
    assert request.strategy_overrides == {"replay": {"per_class": 5}}


@pytest.mark.parametrize("text, needle", [
    ("modles = ['fastflow']\n", "unknown key 'modles'"),
    ("[nosuchmodel]\nepochs = 1\n", "neither a model, a strategy nor an executor"),
    ("models = [\n", "mine.toml"),
])
def test_bad_grid_files_are_one_line_errors(tmp_path, text, needle):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(GridError, match=needle):
        load_grid(str(path))
    with pytest.raises(GridError, match="unknown preset"):
        load_grid("no-such-preset")


def test_models_with_backbones_of_their_own_run_as_sub_grids(tmp_path, tiny_data):
    from nfbench.benchmarks.running.runner import RunRequest, backbone_groups, run_grid

    path = tmp_path / "mixed.toml"
    path.write_text('models = ["fastflow", "uflow"]\nscenario = "folder:2x1"\ninput-size = 64\n'
                    'measure-cost = false\n[fastflow]\nepochs = 1\nflow-steps = 2\n'
                    '[uflow]\nepochs = 1\nflow-steps = 2\nbackbone = "resnet18"\n'
                    'backbone-weights = "none"\nbackbone-layers = ["1", "2", "3"]\n')
    grid = load_grid(str(path))
    assert grid["model_backbones"] == {"uflow": {"backbone": "resnet18", "backbone_weights":
                                                 "none", "backbone_layers": ["1", "2", "3"]}}
    request = RunRequest(**{**grid, "strategies": ["finetune"], "seeds": [0],
                            "data_root": tiny_data, "results_dir": tmp_path / "res",
                            "cache_dir": tmp_path / "cache"})
    assert [g.models for g in backbone_groups(request)] == [["fastflow"], ["uflow"]]
    fastflow, uflow = run_grid(request, show_progress=False)
    assert fastflow.ok and uflow.ok
    assert fastflow.backbone["name"] == "efficientnet_lite0"
    assert uflow.backbone["name"] == "resnet18"
    assert uflow.backbone["pretrained"] is False
