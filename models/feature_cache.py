"""Backbone features computed once per (backbone, weights, input size, image content).

The backbone is frozen, so every model, epoch and strategy can reuse the same features: this
is the suite's main speed lever. The key hashes the image *file bytes* together with every
setting that shapes the features, so an edited image or a changed setting never hits a stale
entry. Entries live in memory for the process and, optionally, on disk across runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from nfbench.datasets.base import Sample, file_digest, load_image
from nfbench.datasets.files import atomic_write
from nfbench.models.backbone import Backbone

CACHE_FORMAT = 2  # bump when the stored layout or preprocessing changes (2: image decoding)


def images_to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) arrays -> float (B, 3, H, W) in [0, 1]."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return batch.float().div_(255.0)


class FeatureCache:
    """Serves per-level feature tensors for samples, computing each image at most once."""

    def __init__(
        self,
        backbone: Backbone,
        cache_dir: Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
    ) -> None:
        self.backbone = backbone.to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.setting_key = self._setting_key(backbone)
        self.disk_dir = Path(cache_dir) / self.setting_key if cache_dir else None
        self._memory: dict[str, list[torch.Tensor]] = {}
        self._digests: dict[tuple[str, int, int], str] = {}
        self.extraction_seconds = 0.0
        self.show_progress = True

    @staticmethod
    def _setting_key(backbone: Backbone) -> str:
        settings = {k: v for k, v in backbone.describe().items() if k != "weights"}
        settings["format"] = CACHE_FORMAT
        blob = json.dumps(settings, sort_keys=True).encode()
        return f"{backbone.name}-{backbone.input_size}-{hashlib.sha256(blob).hexdigest()[:12]}"

    def content_key(self, sample: Sample) -> str:
        """Digest of the file's bytes; memoised on (path, mtime, size) so it is hashed once."""
        stat = os.stat(sample.path)
        memo = (str(sample.path), stat.st_mtime_ns, stat.st_size)
        if memo not in self._digests:
            self._digests[memo] = file_digest(sample.path)
        return self._digests[memo]

    def _disk_path(self, key: str) -> Path | None:
        return self.disk_dir / key[:2] / f"{key}.pt" if self.disk_dir else None

    def _load(self, key: str) -> list[torch.Tensor] | None:
        if key in self._memory:
            return self._memory[key]
        path = self._disk_path(key)
        if path is not None and path.is_file():
            try:
                feats = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a truncated file from an interrupted run: recompute it
                return None
            self._memory[key] = feats
            return feats
        return None

    def _store(self, key: str, feats: list[torch.Tensor]) -> None:
        self._memory[key] = feats
        path = self._disk_path(key)
        if path is None:
            return
        atomic_write(path, lambda tmp: torch.save(feats, tmp))

    def _lock(self):
        """A lock on the cache folder for whoever computes missing entries: several processes
        (workers, Slurm tasks) can share one cache, and each entry is computed once."""
        if self.disk_dir is None:
            return nullcontext()
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.disk_dir / ".lock"))

    def features(self, samples: Sequence[Sample], desc: str = "features") -> list[torch.Tensor]:
        """Stacked features per level, (N, C_l, H_l, W_l) float32 on CPU, in sample order."""
        keys = [self.content_key(s) for s in samples]
        if any(self._load(k) is None for k in keys):
            with self._lock():  # another process may have computed them meanwhile: look again
                missing = [i for i, k in enumerate(keys) if self._load(k) is None]
                self._compute(samples, keys, missing, desc)
        per_sample = [self._memory[k] for k in keys]
        return [torch.stack([f[level] for f in per_sample]) for level in range(len(per_sample[0]))]

    def _compute(self, samples: Sequence[Sample], keys: list[str], missing: list[int],
                 desc: str) -> None:
        start = time.perf_counter()
        size = self.backbone.input_size
        for lo in tqdm(range(0, len(missing), self.batch_size), desc=desc, leave=False,
                       disable=not self.show_progress or not missing):
            idx = missing[lo : lo + self.batch_size]
            batch = images_to_tensor([load_image(samples[i].path, size) for i in idx])
            maps = self.backbone(batch.to(self.device))
            for j, i in enumerate(idx):
                self._store(keys[i], [m[j].detach().float().cpu().clone() for m in maps])
        self.extraction_seconds += time.perf_counter() - start
