"""Check every file a run will read before the run starts.

Readers only list files, so without this a truncated image or a mask of the wrong size would
surface hours into a grid. Every train and test image is fully decoded (`Image.load()`, which
catches truncation; `verify()` alone does not), every mask is decoded and must have its image's
size. Checks run in a thread pool (Pillow decodes without the GIL) and successful ones are
remembered on (path, mtime_ns, size) in a small JSON file, so a re-run decodes only what changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from nfbench.datasets.base import (
    Dataset,
    DatasetError,
    Sample,
    mask_size_error,
    read_pixels,
)
from nfbench.datasets.files import atomic_write

MEMO_NAME = "validated.json"
MEMO_FORMAT = 1  # bump when the checks or the decoding rules change


@dataclass(frozen=True)
class FileCheck:
    """The outcome for one sample: what its image is, or the one-line problem with it."""

    sample: Sample
    mode: str | None = None
    size: tuple[int, int] | None = None  # (width, height) as shown, EXIF applied
    problem: str | None = None


def _stamp(path: Path | None) -> list[int] | None:
    """(mtime_ns, size) of a file: a changed file gets a new stamp and is checked again."""
    if path is None:
        return None
    stat = os.stat(path)
    return [stat.st_mtime_ns, stat.st_size]


def check_sample(sample: Sample) -> FileCheck:
    """Decode the image and its mask; a problem is returned, never raised."""
    try:
        pixels = read_pixels(sample.path)
        if sample.mask_path is not None:
            mask = read_pixels(sample.mask_path, "mask")
            if mask.size != pixels.size:
                raise mask_size_error(sample.mask_path, mask.size, pixels.size)
    except DatasetError as err:
        return FileCheck(sample, problem=str(err))
    return FileCheck(sample, pixels.mode, pixels.size)


class _Memo:
    """Successful checks keyed by the image and mask paths, valid while both stamps match."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.path = Path(cache_dir) / MEMO_NAME if cache_dir is not None else None
        self.entries: dict[str, dict] = {}
        self.changed = False
        if self.path is not None and self.path.is_file():
            try:
                stored = json.loads(self.path.read_text())
                if stored.get("format") == MEMO_FORMAT:
                    self.entries = stored.get("entries", {})
            except (OSError, ValueError, AttributeError):
                self.entries = {}  # a damaged memo only costs a re-check

    @staticmethod
    def _key(sample: Sample) -> str:
        mask = os.path.abspath(sample.mask_path) if sample.mask_path is not None else ""
        return f"{os.path.abspath(sample.path)}|{mask}"

    def lookup(self, sample: Sample) -> FileCheck | None:
        entry = self.entries.get(self._key(sample))
        if entry is None:
            return None
        try:
            fresh = entry["image"] == _stamp(sample.path) and entry["mask"] == _stamp(
                sample.mask_path)
        except OSError:
            return None  # gone since: check it again, which names the file
        if not fresh:
            return None
        return FileCheck(sample, entry["mode"], tuple(entry["size"]))

    def remember(self, check: FileCheck) -> None:
        if self.path is None or check.problem is not None:
            return
        try:
            stamps = {"image": _stamp(check.sample.path), "mask": _stamp(check.sample.mask_path)}
        except OSError:
            return
        self.entries[self._key(check.sample)] = {
            **stamps, "mode": check.mode, "size": list(check.size or ())}
        self.changed = True

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        blob = json.dumps({"format": MEMO_FORMAT, "entries": self.entries})
        try:
            atomic_write(self.path, lambda tmp: Path(tmp).write_text(blob))
        except OSError:
            pass  # the memo is an optimisation; a read-only cache dir must not stop a run


def _samples(dataset: Dataset, class_names: Sequence[str]) -> list[Sample]:
    return [s for name in class_names for s in (*dataset[name].train, *dataset[name].test)]


def iter_checks(
    samples: Sequence[Sample], cache_dir: Path | None = None, workers: int | None = None
) -> Iterator[FileCheck]:
    """Checks in sample order; files already verified (unchanged since) are not decoded again.

    Stopping the iteration early cancels the checks not yet started.
    """
    memo = _Memo(cache_dir)
    known = [memo.lookup(s) for s in samples]
    todo = [s for s, k in zip(samples, known, strict=True) if k is None]
    pool = ThreadPoolExecutor(max_workers=workers or min(16, max(2, os.cpu_count() or 2)))
    try:
        fresh = pool.map(check_sample, todo)
        for check in known:
            if check is None:
                check = next(fresh)
                memo.remember(check)
            yield check
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        memo.save()


def check_dataset(
    dataset: Dataset, class_names: Sequence[str], cache_dir: Path | None = None
) -> list[FileCheck]:
    """Every train and test sample of the classes, checked (for `nfbench data`)."""
    return list(iter_checks(_samples(dataset, class_names), cache_dir))


def find_problems(
    dataset: Dataset, class_names: Sequence[str], cache_dir: Path | None = None
) -> list[str]:
    """Every problem of the classes, one line each: empty classes, then files in order."""
    problems = []
    for name in class_names:
        try:
            dataset[name].validate()
        except DatasetError as err:
            problems.append(str(err))
    checks = check_dataset(dataset, class_names, cache_dir)
    return problems + [c.problem for c in checks if c.problem is not None]


def validate_dataset(
    dataset: Dataset, class_names: Sequence[str], cache_dir: Path | None = None
) -> None:
    """Raise DatasetError naming the first bad file (in class, then sample order); else None."""
    for name in class_names:
        dataset[name].validate()
    # closing() stops the pool at once: the traceback would otherwise keep the generator open
    with closing(iter_checks(_samples(dataset, class_names), cache_dir)) as checks:
        for check in checks:
            if check.problem is not None:
                raise DatasetError(check.problem)
