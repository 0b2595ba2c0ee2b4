"""Trained models shared between cells: a joint model is trained once per training key.

`joint` trains one model on every class of the scenario. Scenarios that hold the same
classes in the same order (mvtec:15x1, mvtec:14-1, mvtec:10-5 ...) would train exactly the
same model for the same variant, settings and seed; only their evaluation groups the classes
differently. The first such cell saves its trained model (after finish_task) with the random
state training left behind; every later one loads it instead of training, scores the test set
with it and says so in its record (`trained_in`). Its records are the ones retraining would
give (tests/benchmarks/running/test_trained.py), and `nfbench plan` counts the steps once.

The file holds the model's state_dict. The loading cell has built the same model and started
the same task (the structure training began from); buffers that training or finish_task
resized (a memory bank) take the saved shape before the state is loaded. A model whose
learnt state lives outside its parameters and buffers would not come back complete: the test
compares every native model's shared records with retraining, so such a model shows there.
The file lives beside the records (`<results>/trained/`), which every worker and Slurm task
of a grid shares; delete the folder to free the disk once a grid is done (a later cell then
trains again). Scoring is not shared: each scenario scores the test set again with the
loaded model (one pass, next to the training's epochs), so every metric stays exact.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nfbench.datasets.files import atomic_write
from nfbench.models.base import FlowADModel

TRAINED_DIR = "trained"


@dataclass
class TrainedModel:
    """A model's state as its phase's training and finish_task left it, and what that cost."""

    state: dict[str, torch.Tensor]
    steps: int
    seconds: float  # the training's wall time, where it ran
    cell_id: str  # the cell that trained it
    torch_rng: torch.Tensor
    numpy_rng: tuple

    def load_into(self, model: FlowADModel) -> None:
        """Give `model` (built and started like the one that trained) the trained state."""
        for name, tensor in self.state.items():
            owner, _, attr = name.rpartition(".")
            module = model.get_submodule(owner)
            buffer = module._buffers.get(attr)
            if buffer is not None and buffer.shape != tensor.shape:  # grown: a memory bank
                module._buffers[attr] = torch.empty_like(tensor)
        model.load_state_dict(self.state)

    def restore_random_state(self) -> None:
        """Leave the random generators where training left them: what scoring draws (e.g. a
        subsample) is then the same as after training here."""
        torch.set_rng_state(self.torch_rng)
        np.random.set_state(self.numpy_rng)


def trained_path(results_dir: Path, key: str) -> Path:
    return Path(results_dir) / TRAINED_DIR / f"{key}.pt"


def save_trained(path: Path, model: FlowADModel, steps: int, seconds: float,
                 cell_id: str) -> None:
    """Write the trained model (atomically: a reader never sees half a file); a disk that
    cannot take it is a warning, not a failed cell (later cells then train again)."""
    payload = {"state": model.state_dict(), "steps": steps, "seconds": seconds, "cell_id": cell_id,
               "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state()}
    try:
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
    except OSError as err:
        warnings.warn(f"trained model not shared ({path}: {err})", stacklevel=2)


def load_trained(path: Path, device: torch.device) -> TrainedModel | None:
    """The model saved under `path`, on `device`; None when there is none (or it cannot be
    read: the cell then trains, as it would have without sharing)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
        return TrainedModel(payload["state"], int(payload["steps"]), float(payload["seconds"]),
                            str(payload["cell_id"]), payload["torch_rng"], payload["numpy_rng"])
    except (OSError, RuntimeError, EOFError, KeyError, TypeError):
        return None
