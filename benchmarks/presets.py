"""Named grids for `nfbench run --config NAME`. Explicit flags override a preset's values.

`bench` is what `make bench` runs: the embedded synthetic set, every native model, the three
generic strategies, sized to finish in minutes on a 2-core CPU. `check` is the small
deterministic run that `nfbench check` compares with reports/baselines/.
"""

from __future__ import annotations

from pathlib import Path

PRESETS: dict[str, dict] = {
    "bench": {
        "models": ["fastflow", "cflow", "csflow", "uflow", "hgad", "ccnf"],
        "strategies": ["finetune", "replay", "joint", "own"],
        "seeds": [0],
        "scenario": "synthetic",
        "input_size": 128,
        "results_dir": Path("results"),
    },
    "diagnose": {
        "models": ["hgad", "ccnf"],
        "strategies": ["own"],
        "seeds": [0],
        "scenario": "synthetic",
        "input_size": 128,
    },
    # `nfbench check`: every native model, tiny schedules, 2 synthetic tasks (about a minute)
    "check": {
        "models": ["fastflow", "cflow", "csflow", "uflow", "hgad", "ccnf"],
        "strategies": ["finetune", "own"],
        "seeds": [0],
        "scenario": "synthetic",
        "tasks": "brick;grass",
        "input_size": 128,
        "measure_cost": False,
        "model_overrides": {
            "fastflow": {"epochs": 3, "flow_steps": 4},
            "cflow": {"epochs": 2, "coupling_blocks": 2},
            "csflow": {"epochs": 2, "n_coupling_blocks": 2},
            "uflow": {"epochs": 2, "flow_steps": 2},
            "hgad": {"epochs": 2, "coupling_blocks": 2},
            "ccnf": {"epochs": 3, "coupling_blocks": 2},
        },
    },
    # `make gpu-check`: every native model and strategy on CUDA, growth by two classes in one
    # task, cost measured (CUDA timing and memory paths); fails if any cell fails
    "gpu-check": {
        "models": ["fastflow", "cflow", "csflow", "uflow", "hgad", "ccnf"],
        "strategies": ["finetune", "replay", "joint", "own"],
        "seeds": [0],
        "scenario": "synthetic",
        "tasks": "brick;capsule,circuit",
        "input_size": 128,
        "device": "cuda",
        "results_dir": Path("results/gpu-check"),
        "model_overrides": {m: {"epochs": 2} for m in
                            ("fastflow", "cflow", "csflow", "uflow", "hgad", "ccnf")},
    },
}
