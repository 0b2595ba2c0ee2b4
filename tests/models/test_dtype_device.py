"""Every native model keeps to the dtype (and so the device) it was moved to, through a whole
task sequence: training, growth of class tables / GMMs, finish_task and scoring.

There is no GPU in CI, so this runs in float64: a tensor created without the model's device and
dtype (`torch.zeros(...)`, `torch.tensor(...)`, a positional encoding, a table grown on the CPU)
comes out float32 here exactly where it would stay on the CPU under `.to("cuda")`. Where CUDA is
available the same sequence also runs on it, which catches CPU-side index tensors too.
"""

from __future__ import annotations

import pytest
import torch
from flow_checks import TINY_CONFIGS

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import FlowADModel, TrainProgress
from nfbench.models.capabilities import HasClassPosterior, HasLatents
from nfbench.models.nfa import neg_log10_nfa_map
from nfbench.models.registry import create_model

# sizes 8 and 4: each level twice the next (U-Flow), deep enough for CS-Flow's 3-scale pyramid
TINY = FeatureInfo(channels=(4, 8), strides=(4, 8), input_size=32)
# (model, strategy): finetune for every model, plus the model's own mechanism where it has one
NATIVE_MODELS = [m for m in TINY_CONFIGS if not m.startswith("anomalib.")]
CASES = [(m, "finetune") for m in NATIVE_MODELS] + [("hgad", "hgad"), ("ccnf", "ccnf"),
                                         ("patchcore", "patchcore")]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPE = torch.float64


def _features(n: int, device: str, dtype: torch.dtype = DTYPE) -> list[torch.Tensor]:
    return [torch.randn(n, c, s, s, device=device, dtype=dtype)
            for c, s in zip(TINY.channels, TINY.sizes, strict=True)]


def _assert_state(model: FlowADModel, device: str, where: str) -> None:
    """Every floating parameter and buffer is float64 on the model's device."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert t.device.type == device, f"{where}: {name} on {t.device}"
        if t.is_floating_point():
            assert t.dtype == DTYPE, f"{where}: {name} is {t.dtype}"


def _assert_tensor(t: torch.Tensor, device: str, what: str) -> None:
    assert t.dtype == DTYPE, f"{what} is {t.dtype}"
    assert t.device.type == device, f"{what} on {t.device}"


def _train_task(
    model: FlowADModel, task: int, classes: list[int], strategy: str, device: str, step0: int
) -> int:
    """start_task, three Adam steps over param_groups (as the harness: none without
    trainable parameters), then finish_task."""
    model.start_task(task, classes, strategy)
    _assert_state(model, device, f"task {task} start_task")
    groups = model.param_groups()
    assert groups or not model.is_flow, f"{model.name}: a flow with nothing to train"
    optimizer = torch.optim.Adam(groups, lr=1e-3) if groups else None
    ids = torch.tensor(classes * 2, device=device)
    model.train()
    for step in range(3 if optimizer is not None else 0):
        progress = TrainProgress(task, step, step, step0 + step)  # epoch 1+: HGAD's late terms
        terms = model.training_loss(_features(len(ids), device), ids, progress)
        _assert_tensor(terms.total, device, f"task {task} loss")
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        _assert_state(model, device, f"task {task} step {step}")
    model.eval()
    # as the harness: CPU float32 features (the cache's), moved by the model itself
    train_feats = _features(4, "cpu", torch.float32)
    with torch.no_grad():
        model.finish_task(train_feats, torch.tensor((classes * 4)[:4]))
    _assert_state(model, device, f"task {task} finish_task")
    return step0 + 3


def _check_outputs(model: FlowADModel, classes: list[int], device: str, where: str) -> None:
    feats = _features(3, device)
    id_sets = [None]
    if model.class_conditional:  # known classes and one never seen; ids on the CPU too
        ids = torch.tensor([classes[0], classes[-1], 99])
        id_sets += [ids.to(device), ids]
    with torch.no_grad():
        for ids in id_sets:
            out = model.score(feats, ids)
            mode = "task-agnostic" if ids is None else "task-aware"
            _assert_tensor(out.maps, device, f"{where} {mode} maps")
            _assert_tensor(out.image_scores, device, f"{where} {mode} image scores")
            assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
        if model.is_flow:  # every native flow has latents (PatchCore is no flow)
            assert isinstance(model, HasLatents), where
        for i, z in enumerate(model.latents(feats) if isinstance(model, HasLatents) else []):
            _assert_tensor(z, device, f"{where} latents level {i}")
        if model.gaussian_latents:
            nfa = neg_log10_nfa_map(model.latents(feats), 16)
            _assert_tensor(nfa, device, f"{where} a-contrario map")
        if isinstance(model, HasClassPosterior):
            _assert_tensor(model.posterior_entropy(feats), device, f"{where} posterior entropy")
    _assert_state(model, device, f"{where} scoring")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "strategy"), CASES)
def test_task_sequence_keeps_dtype_and_device(name: str, strategy: str, device: str):
    torch.manual_seed(0)
    model = create_model(name, TINY, **TINY_CONFIGS[name]).to(device=device, dtype=DTYPE)
    _assert_state(model, device, "after .to")
    step = _train_task(model, 0, [0], strategy, device, 0)
    _check_outputs(model, [0], device, "task 1")
    _train_task(model, 1, [1, 2], strategy, device, step)  # tables and GMMs grow here
    _check_outputs(model, [0, 1, 2], device, "task 2")
    if model.class_conditional:  # the growth really happened, on the right dtype
        grown = model.embedding.table() if name == "ccnf" else model.gmms[0].mus
        assert grown.shape[0] == 3
        _assert_tensor(grown, device, "grown table")
