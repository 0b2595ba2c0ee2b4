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
    "check": {
        "models": ["fastflow"],
        "strategies": ["finetune"],
        "seeds": [0],
        "scenario": "synthetic",
        "tasks": "brick;grass",
        "input_size": 128,
        "measure_cost": False,
        "model_overrides": {"fastflow": {"epochs": 3, "flow_steps": 4}},
    },
}
