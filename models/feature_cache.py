"""Backbone features computed once per (backbone, weights, input size, image content).

The backbone is frozen, so every model, epoch and strategy can reuse the same features: this
is the suite's main speed lever. The key hashes the image *file bytes* together with every
setting that shapes the features, so an edited image or a changed setting never hits a stale
entry.

At paper scale the features of a dataset are tens to hundreds of GB in float32, so host memory
is bounded by design (DESIGN.md, "Scale"): features are stored as float16 and never stacked
for a whole phase or test set; `features()` returns a `FeatureSet` that reads the rows a batch
asks for. Where they live is the store mode:

- `memory`: float16 arrays in this process (small grids, tests);
- `disk`: one flat float16 file per image under one folder per backbone setting, written once
  (atomically, under a file lock) and memory-mapped batch by batch, so every worker and Slurm
  task on a node shares one copy through the page cache;
- `recompute`: nothing stored; each batch runs the backbone on the device (rounded through
  float16, so its numbers are those the other modes serve);
- `auto`: `choose_store` picks one from the free disk and memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from nfbench.datasets.base import Sample, file_digest, load_image
from nfbench.datasets.files import atomic_write
from nfbench.models.backbone import Backbone, FeatureInfo

# bump when the stored layout or preprocessing changes (2: image decoding; 3: float16 flat
# files, one per image, memory-mapped)
CACHE_FORMAT = 3
STORE_MODES = ("auto", "memory", "disk", "recompute")
STORED_DTYPE = np.float16
# auto keeps this share of the free disk and memory for everything else
AUTO_HEADROOM = 0.5


class StoreError(ValueError):
    """An unknown store mode: a one-line user error."""


def images_to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) arrays -> float (B, 3, H, W) in [0, 1]."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return batch.float().div_(255.0)


def bytes_per_image(info: FeatureInfo) -> int:
    """Stored (float16) bytes of one image's features, every level."""
    return sum(c * s * s for c, s in zip(info.channels, info.sizes, strict=True)) * 2


@dataclass(frozen=True)
class StoreChoice:
    """The store mode a grid runs with and why (it goes into every record)."""

    mode: str
    reason: str

    def describe(self) -> dict[str, str]:
        return {"mode": self.mode, "reason": self.reason}


def choose_store(requested: str, feature_bytes: int, cache_dir: Path | None,
                 processes: int = 1) -> StoreChoice:
    """`auto`: disk when the cache folder's disk holds the features with room to spare (one
    copy shared by every process, kept across runs), else memory when every process can hold
    its own copy in free memory, else recompute on the device. Any other mode is taken as
    asked."""
    if requested not in STORE_MODES:
        raise StoreError(f"unknown feature store {requested!r} ({'|'.join(STORE_MODES)})")
    if requested != "auto":
        return StoreChoice(requested, "asked for")
    gb = feature_bytes / 1e9
    if cache_dir is not None:
        free_disk = shutil.disk_usage(existing_parent(Path(cache_dir))).free
        if feature_bytes <= AUTO_HEADROOM * free_disk:
            return StoreChoice("disk", f"auto: {gb:.2f} GB of features, {free_disk / 1e9:.0f} "
                                       "GB free on disk")
    free_memory = psutil.virtual_memory().available
    if feature_bytes * processes <= AUTO_HEADROOM * free_memory:
        return StoreChoice("memory", f"auto: {gb:.2f} GB x {processes} process(es), "
                                     f"{free_memory / 1e9:.0f} GB free memory, disk too small")
    return StoreChoice("recompute", f"auto: {gb:.2f} GB of features fit neither the disk nor "
                                    "the memory")


def existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class FeatureCache:
    """Serves per-level features of samples as `FeatureSet`s, each image computed at most once
    (except under `recompute`)."""

    def __init__(
        self,
        backbone: Backbone,
        cache_dir: Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        mode: str | None = None,
    ) -> None:
        self.backbone = backbone.to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.mode = mode or ("disk" if cache_dir else "memory")
        if self.mode not in STORE_MODES[1:]:
            raise StoreError(f"feature store {self.mode!r} is not memory|disk|recompute")
        if self.mode == "disk" and cache_dir is None:
            raise StoreError("the disk feature store needs a cache folder")
        self.setting_key = self._setting_key(backbone)
        self.disk_dir = Path(cache_dir) / self.setting_key if self.mode == "disk" else None
        self.choice = StoreChoice(self.mode, "asked for")  # what the records say was used
        info = backbone.feature_info
        self.shapes = [(c, s, s) for c, s in zip(info.channels, info.sizes, strict=True)]
        self._memory: dict[str, list[np.ndarray]] = {}
        self._digests: dict[tuple[str, int, int], str] = {}
        self.extraction_seconds = 0.0
        self.computed_images = 0  # images run through the backbone by this process
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

    # ---- where an entry lives ---------------------------------------------------------------
    def _disk_path(self, key: str) -> Path:
        assert self.disk_dir is not None
        return self.disk_dir / key[:2] / f"{key}.f16"

    def _has(self, key: str) -> bool:
        if self.mode == "memory":
            return key in self._memory
        return self.mode == "recompute" or self._disk_path(key).is_file()

    def _store(self, key: str, levels: list[np.ndarray]) -> None:
        if self.mode == "memory":
            self._memory[key] = levels
            return
        flat = np.concatenate([level.ravel() for level in levels])
        atomic_write(self._disk_path(key), flat.tofile)

    def read(self, key: str) -> list[np.ndarray]:
        """One image's stored levels (float16; a memory map under `disk`)."""
        if self.mode == "memory":
            return self._memory[key]
        total = sum(int(np.prod(shape)) for shape in self.shapes)
        flat = np.memmap(self._disk_path(key), dtype=STORED_DTYPE, mode="r", shape=(total,))
        levels, offset = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            levels.append(flat[offset : offset + size].reshape(shape))
            offset += size
        return levels

    def _lock(self):
        """A lock on the store for whoever computes missing entries: several processes
        (workers, Slurm tasks) share one store, and each entry is computed once."""
        if self.disk_dir is None:
            return nullcontext()
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.disk_dir / ".lock"))

    # ---- serving ----------------------------------------------------------------------------
    def features(self, samples: Sequence[Sample], desc: str = "features") -> FeatureSet:
        """The samples' features, in sample order, computing missing entries now (in batches,
        each written as soon as it is computed); nothing is read until a batch asks."""
        keys = [self.content_key(s) for s in samples]
        if not all(self._has(k) for k in keys):
            with self._lock():  # another process may have computed them meanwhile: look again
                missing = [i for i, k in enumerate(keys) if not self._has(k)]
                for lo in tqdm(range(0, len(missing), self.batch_size), desc=desc, leave=False,
                               disable=not self.show_progress or not missing):
                    idx = missing[lo : lo + self.batch_size]
                    maps = self.compute([samples[i] for i in idx])
                    for j, i in enumerate(idx):  # copies: an entry never holds its batch
                        self._store(keys[i], [m[j].cpu().numpy().copy() for m in maps])
        return FeatureSet(self, list(samples), keys)

    @torch.no_grad()
    def compute(self, samples: Sequence[Sample]) -> list[torch.Tensor]:
        """The backbone's maps of the samples on the device, rounded to the stored float16."""
        start = time.perf_counter()
        size = self.backbone.input_size
        batch = images_to_tensor([load_image(s.path, size) for s in samples])
        maps = [m.detach().to(torch.float16) for m in self.backbone(batch.to(self.device))]
        for m, shape in zip(maps, self.shapes, strict=True):
            if tuple(m.shape[1:]) != shape:
                raise RuntimeError(f"backbone map {tuple(m.shape[1:])}, expected {shape}")
        self.computed_images += len(samples)
        self.extraction_seconds += time.perf_counter() - start
        return maps


class FeatureSet:
    """The features of a fixed list of samples, read batch by batch; a sequence of per-level
    views, so code written for a list of (N, C, H, W) tensors (`f[lo:hi]`, `f[idx]`,
    `f.shape[0]`, as in `FlowADModel.iter_batches`) reads one batch at a time."""

    def __init__(self, cache: FeatureCache, samples: list[Sample], keys: list[str]) -> None:
        self.cache = cache
        self.samples = samples
        self.keys = keys
        self._last: tuple[tuple[int, ...], list[torch.Tensor]] | None = None

    def __len__(self) -> int:
        return len(self.cache.shapes)

    def __getitem__(self, level: int) -> LevelView:
        if not 0 <= level < len(self):
            raise IndexError(level)
        return LevelView(self, level)

    def __iter__(self) -> Iterator[LevelView]:
        return (LevelView(self, level) for level in range(len(self)))

    @property
    def num_samples(self) -> int:
        return len(self.keys)

    def batch(self, index: slice | Sequence[int] | torch.Tensor | np.ndarray) -> list[torch.Tensor]:
        """Every level of the rows in `index`, float32 (on the device under `recompute`, else
        on the CPU). The last batch is kept, so the per-level views of one batch read once."""
        rows = tuple(int(i) for i in np.arange(self.num_samples)[_as_index(index)].ravel())
        if self._last is None or self._last[0] != rows:
            self._last = (rows, self._read(rows))
        return self._last[1]

    def _read(self, rows: tuple[int, ...]) -> list[torch.Tensor]:
        cache = self.cache
        if cache.mode == "recompute":
            return [m.float() for m in cache.compute([self.samples[i] for i in rows])]
        out = [np.empty((len(rows), *shape), dtype=STORED_DTYPE) for shape in cache.shapes]
        for j, i in enumerate(rows):
            for level, values in enumerate(cache.read(self.keys[i])):
                out[level][j] = values
        return [torch.from_numpy(level).float() for level in out]

    def iter_batches(self, batch_size: int) -> Iterator[list[torch.Tensor]]:
        """Every level, `batch_size` rows at a time, in order."""
        for lo in range(0, self.num_samples, batch_size):
            yield self.batch(slice(lo, lo + batch_size))


def _as_index(index):
    return index.cpu().numpy() if isinstance(index, torch.Tensor) else index


class LevelView:
    """One level of a FeatureSet: indexing it reads those rows (of every level, kept for the
    other levels' views of the same batch)."""

    def __init__(self, owner: FeatureSet, level: int) -> None:
        self.owner = owner
        self.level = level

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.owner.num_samples, *self.owner.cache.shapes[self.level])

    def __len__(self) -> int:
        return self.owner.num_samples

    def __getitem__(self, index) -> torch.Tensor:
        return self.owner.batch(index)[self.level]


def open_feature_cache(backbone: Backbone, cache_dir: Path, device: str | torch.device,
                       requested: str, images: int, processes: int = 1) -> FeatureCache:
    """The cache of a grid of `images` images, in the store `choose_store` picks; the choice
    is kept on the cache (`cache.choice`) for the records."""
    choice = choose_store(requested, images * bytes_per_image(backbone.feature_info), cache_dir,
                          processes)
    cache = FeatureCache(backbone, cache_dir, device, mode=choice.mode)
    cache.choice = choice
    return cache
