"""`nfbench data`: what a dataset holds and every problem in it, before any run uses it.

Prints per class the image counts, mask coverage, image modes and sizes, then lists every
problem (unreadable or truncated files, masks of the wrong size, empty classes) and notes
(anomalous images without a mask). Exit code 2 when there is a problem, so a script can gate
a long run on it. Uses the same checks as `nfbench run` (nfbench.datasets.validate).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from nfbench.datasets.base import ClassData, Dataset, DatasetError
from nfbench.datasets.catalog import KNOWN_DATASETS, open_dataset
from nfbench.datasets.mvtec import mvtec_class_dirs, read_mvtec_layout
from nfbench.datasets.scenarios import build_scenario
from nfbench.datasets.validate import FileCheck, check_dataset
from nfbench.datasets.visa import SPLIT_CSV, read_split_csv, read_visa

DEFAULT_CACHE_DIR = Path(".cache/nfbench")  # the same default as `nfbench run`


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `nfbench data`."""
    parser.add_argument("--data-root", type=Path, help="dataset root (not for synthetic)")
    parser.add_argument("--dataset", choices=KNOWN_DATASETS,
                        help="default: the --scenario's dataset; else visa when the root has "
                             f"{SPLIT_CSV}, folder when a root is given, synthetic otherwise")
    parser.add_argument("--scenario", help="only the classes of this scenario, e.g. mvtec:10-5")
    parser.add_argument("--tasks", help='only these classes, e.g. "bottle,cable;capsule"')
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="where the synthetic set lives and verified files are remembered")


def dataset_name(args: argparse.Namespace) -> str:
    """The dataset to open: explicit, from the scenario, or guessed from the root."""
    from_scenario = args.scenario.split(":", 1)[0].strip().lower() if args.scenario else None
    if args.dataset and from_scenario and args.dataset != from_scenario:
        raise DatasetError(f"--dataset {args.dataset} but --scenario {args.scenario} names "
                           f"dataset '{from_scenario}'")
    if args.dataset or from_scenario:
        return args.dataset or from_scenario
    if args.data_root is None:
        return "synthetic"
    return "visa" if (Path(args.data_root).expanduser() / SPLIT_CSV).is_file() else "folder"


def _class_reader(name: str, root: Path) -> tuple[list[str], Callable[[str], ClassData]]:
    """Every class name in the tree, and a reader of one class."""
    csv_path = root / SPLIT_CSV
    if name == "visa" and csv_path.is_file():
        names = sorted(set(read_split_csv(csv_path)["object"]) - {""})
        return names, lambda c: read_visa(root, classes=[c])[c]
    return mvtec_class_dirs(root), lambda c: read_mvtec_layout(root, name=name, classes=[c])[c]


def open_by_class(name: str, root: Path | None, cache_dir: Path) -> tuple[Dataset, list[str],
                                                                          dict[str, str]]:
    """(the readable classes, every class name, class -> why it could not be read).

    open_dataset stops at the first bad class; here each class is read on its own so every
    bad one is listed. A problem with the root itself is still raised.
    """
    try:
        dataset = open_dataset(name, root, cache_dir)
        return dataset, dataset.class_names, {}
    except DatasetError as err:
        first_error = err
    if name == "synthetic" or root is None:
        raise first_error
    root = Path(root).expanduser()
    names, read_one = _class_reader(name, root)
    if not names:
        raise first_error
    classes: dict[str, ClassData] = {}
    broken: dict[str, str] = {}
    for c in names:
        try:
            classes[c] = read_one(c)
        except DatasetError as err:
            broken[c] = str(err)
    return Dataset(name, root, classes), names, broken


def _sizes(checks: list[FileCheck]) -> str:
    counts = Counter(c.size for c in checks if c.size is not None)
    if len(counts) == 1:
        return "{}x{}".format(*next(iter(counts)))
    return ", ".join(f"{w}x{h} ({n})" for (w, h), n in sorted(counts.items()))


def class_table(dataset: Dataset, classes: list[str], broken: dict[str, str],
                checks: list[FileCheck]) -> pd.DataFrame:
    """One row per class: counts, mask coverage, the image modes and sizes found."""
    by_class: dict[str, list[FileCheck]] = {}
    for check in checks:
        by_class.setdefault(check.sample.class_name, []).append(check)
    rows = []
    for name in classes:
        if name in broken:
            rows.append({"class": name, "train normal": "-", "test normal": "-",
                         "test anomalous": "-", "with mask": "-", "modes": "-", "sizes": "-"})
            continue
        data = dataset[name]
        anomalous = [s for s in data.test if s.label == 1]
        mine = by_class.get(name, [])
        rows.append({
            "class": name,
            "train normal": len(data.train),
            "test normal": len(data.test) - len(anomalous),
            "test anomalous": len(anomalous),
            "with mask": sum(s.has_mask for s in anomalous),
            "modes": ", ".join(sorted({c.mode for c in mine if c.mode is not None})) or "-",
            "sizes": _sizes(mine) or "-",
        })
    return pd.DataFrame(rows)


def main_data(args: argparse.Namespace) -> int:
    """`nfbench data`: print the summary; 2 when any problem was found, else 0."""
    start = time.perf_counter()
    name = dataset_name(args)
    dataset, names, broken = open_by_class(name, args.data_root, args.cache_dir)
    scenario = build_scenario(args.scenario or name, names, args.tasks)
    classes = scenario.classes
    readable = [c for c in classes if c not in broken]
    checks = check_dataset(dataset, readable, args.cache_dir)

    problems = [(c, broken[c]) for c in classes if c in broken]
    for c in readable:
        try:
            dataset[c].validate()
        except DatasetError as err:
            problems.append((c, str(err)))
    problems += [(c.sample.class_name, c.problem) for c in checks if c.problem is not None]
    notes = [(c, note) for c in readable for note in dataset[c].notes]

    table = class_table(dataset, classes, broken, checks)
    print(f"# {name} at {dataset.root}: {len(classes)} class(es) ({scenario.name}), "
          f"{len(checks)} images checked in {time.perf_counter() - start:.1f} s\n")
    print(table.to_markdown(index=False))
    numeric = pd.to_numeric(table["test anomalous"], errors="coerce").sum()
    masked = pd.to_numeric(table["with mask"], errors="coerce").sum()
    if numeric == 0:
        print("\nmasks: no anomalous test images")
    elif masked == 0:
        print(f"\nmasks: none in this dataset ({int(numeric)} anomalous test images); "
              "pixel metrics will be skipped")
    else:
        print(f"\nmasks: {int(masked)} of {int(numeric)} anomalous test images have one")
    if notes:
        print("\n## Notes\n")
        print(pd.DataFrame(notes, columns=["class", "note"]).to_markdown(index=False))
    if not problems:
        print("\nno problems found")
        return 0
    print(f"\n## Problems ({len(problems)})\n")
    print(pd.DataFrame(problems, columns=["class", "problem"]).to_markdown(index=False))
    print(f"nfbench: error: {len(problems)} problem(s) in the data; first: {problems[0][1]}",
          file=sys.stderr)
    return 2
