"""The embedded demo benchmark: generated images whose attributes define the classes.

Every class is one combination of four attribute groups (colour, shape, size, texture). The
unseen classes are combinations never shown during training, while every single attribute
value still occurs among the seen classes — the situation zero-shot learning is made for. The
benchmark is written in the xlsa17 layout, so the rest of the pipeline treats it exactly like
CUB or SUN:

    <out>/images/<class>/<class>_<k>.png   the images
    <out>/image_list.txt                   "<relative path> <1-based label>" per line, in the row
                                           order of the feature file that `extract` will write
    <out>/att_splits.mat                   att (A x C, columns L2-normalised), original_att,
                                           allclasses_names, and 1-based trainval/test_seen/
                                           test_unseen/train/val locations

Everything is a function of the seed, so the same seed gives byte-identical files.
"""
from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tfvaegan.data.matfile import write_mat
from tfvaegan.errors import DataError, UserError
from tfvaegan.fileio import atomic_write_text, staging_folder

# Attribute groups and their values; a class is one value per group.
COLOURS = {
    "red": (0.85, 0.15, 0.15),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
}
SHAPES = ("circle", "ring", "bar", "cross")
SIZES = {"small": 0.2, "large": 0.36}  # object radius as a fraction of the image side
TEXTURES = ("solid", "striped")
ATTRIBUTE_NAMES = (
    [f"colour_{c}" for c in COLOURS] + [f"shape_{s}" for s in SHAPES]
    + [f"size_{s}" for s in SIZES] + [f"texture_{t}" for t in TEXTURES]
)
N_CLASSES = len(COLOURS) * len(SHAPES) * len(SIZES) * len(TEXTURES)


class OptionError(UserError, ValueError):
    """An out-of-range option of the demo; its message starts with 'demo: '."""

    def __init__(self, message: str):
        super().__init__(f"demo: {message}")


@dataclass(frozen=True)
class DemoClass:
    colour: str
    shape: str
    size: str
    texture: str

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.shape}_{self.size}_{self.texture}"

    def attributes(self) -> np.ndarray:
        """One-hot per group, concatenated: the class embedding before normalisation."""
        values = (self.colour, self.shape, self.size, self.texture)
        groups = (tuple(COLOURS), SHAPES, tuple(SIZES), TEXTURES)
        return np.concatenate([np.array([v == g for g in group], dtype=np.float64)
                               for v, group in zip(values, groups)])


def all_classes() -> list[DemoClass]:
    return [DemoClass(*combo) for combo in itertools.product(COLOURS, SHAPES, SIZES, TEXTURES)]


def choose_unseen(classes: list[DemoClass], n_unseen: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded choice of unseen classes such that every attribute value stays among the seen ones."""
    if not 1 <= n_unseen <= len(classes) // 2:
        raise OptionError(f"n_unseen: expected 1..{len(classes) // 2}, found {n_unseen}")
    attributes = np.stack([c.attributes() for c in classes])
    for _ in range(1000):
        unseen = np.sort(rng.choice(len(classes), n_unseen, replace=False))
        seen_mask = np.ones(len(classes), bool)
        seen_mask[unseen] = False
        if attributes[seen_mask].sum(0).min() >= 2:  # each value shown by at least two seen classes
            return unseen
    raise RuntimeError("could not find an unseen-class choice that keeps every attribute seen")


def render(cls: DemoClass, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB image (H, W, 3) uint8 of the class's object at a random place, with nuisance noise."""
    s = image_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    radius = SIZES[cls.size] * s * rng.uniform(0.9, 1.1)
    margin = radius + 1
    cy, cx = rng.uniform(margin, s - margin, size=2)
    dy, dx = (yy - cy) / radius, (xx - cx) / radius
    if cls.shape == "circle":
        mask = dx ** 2 + dy ** 2 <= 1.0
    elif cls.shape == "ring":
        mask = (dx ** 2 + dy ** 2 <= 1.0) & (dx ** 2 + dy ** 2 >= 0.45)
    elif cls.shape == "bar":
        mask = (np.abs(dx) <= 1.0) & (np.abs(dy) <= 0.35)
    else:  # cross
        mask = (np.abs(dx) <= 1.0) & (np.abs(dy) <= 1.0) & ((np.abs(dx) <= 0.3) | (np.abs(dy) <= 0.3))
    colour = np.clip(np.array(COLOURS[cls.colour]) + rng.normal(0, 0.05, 3), 0, 1)
    background = 0.5 + rng.normal(0, 0.03, 3)
    image = np.broadcast_to(background, (s, s, 3)).copy()
    image[mask] = colour
    if cls.texture == "striped":
        period = max(4.0, s / 10)
        phase = rng.uniform(0, period)
        stripes = ((xx + yy + phase) % period) < period / 2
        image[mask & stripes] = colour * 0.25
    image += rng.normal(0, 0.04, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _split_locations(labels: np.ndarray, unseen: np.ndarray, n_val_classes: int,
                     test_seen_fraction: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """xlsa17-style 0-based locations: trainval/test_seen/test_unseen partition the images;
    train/val split the seen classes (val = images of held-out seen classes), and like xlsa17's
    they cover trainval ∪ test_seen."""
    classes = np.unique(labels)
    seen = np.setdiff1d(classes, unseen)
    locs = {"trainval": [], "test_seen": [], "test_unseen": []}
    for c in classes:
        rows = np.flatnonzero(labels == c)
        if c in unseen:
            locs["test_unseen"].append(rows)
            continue
        rows = rng.permutation(rows)
        n_test = max(1, int(round(test_seen_fraction * len(rows))))
        locs["test_seen"].append(np.sort(rows[:n_test]))
        locs["trainval"].append(np.sort(rows[n_test:]))
    out = {k: np.sort(np.concatenate(v)) for k, v in locs.items()}
    val_classes = rng.choice(seen, n_val_classes, replace=False)
    seen_rows = np.concatenate([out["trainval"], out["test_seen"]])
    in_val = np.isin(labels[seen_rows], val_classes)
    out["val"] = np.sort(seen_rows[in_val])
    out["train"] = np.sort(seen_rows[~in_val])
    return out


def _check_out(out: Path, classes: list[DemoClass]) -> None:
    """Accept a new or empty folder, or one whose images/ a previous demo run wrote (whatever its options:
    snakemake deletes the declared outputs, not images/, before rerunning the rule); refuse anything else
    rather than delete or mix with files that are not the demo's."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: expected a folder for the demo (new, empty or a previous demo output), "
                        f"found a file")
    out.mkdir(parents=True, exist_ok=True)
    if not any(out.iterdir()):
        return
    names = {c.name for c in classes}
    image_dir = out / "images"
    foreign = ([p.name for p in image_dir.iterdir() if not (p.is_dir() and p.name in names)]
               if image_dir.is_dir() else None)
    if foreign is None or foreign:
        found = f"images/ holding {foreign[:3]}" if foreign else "no images/ of a previous demo run"
        raise DataError(f"{out}: expected a new or empty folder or a previous demo output, found a non-empty "
                        f"folder with {found} (choose another --out; nothing was changed)")


def make_demo(out: str | Path, seed: int = 0, images_per_class: int = 20, image_size: int = 32,
              n_unseen: int = 12, n_val_classes: int = 8, test_seen_fraction: float = 0.2,
              progress: bool = True) -> dict:
    """Write the demo benchmark under `out`; returns a summary (class counts, file paths)."""
    if images_per_class < 5:
        raise OptionError(f"images_per_class: expected >= 5, found {images_per_class}")
    if image_size < 32:
        raise OptionError(f"image_size: expected >= 32, found {image_size}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    classes = all_classes()
    unseen = choose_unseen(classes, n_unseen, rng)
    n_seen = len(classes) - len(unseen)
    if not 1 <= n_val_classes < n_seen:
        raise OptionError(f"n_val_classes: expected 1..{n_seen - 1}, found {n_val_classes}")

    _check_out(out, classes)
    image_dir = out / "images"
    # The images are made in a staging folder and swapped in whole: no half-written PNG, and no
    # image of an earlier run with other options left among them.
    with staging_folder(out, ".images.building-") as staging:
        entries, labels = [], []
        for label, cls in enumerate(classes):
            (staging / cls.name).mkdir()
            for k in range(images_per_class):
                name = f"{cls.name}/{cls.name}_{k:03d}.png"
                Image.fromarray(render(cls, image_size, rng)).save(staging / name, format="PNG")
                entries.append(f"images/{name}")
                labels.append(label)
            if progress:
                print(f"demo: class {label + 1}/{len(classes)} ({cls.name}) written", file=sys.stderr)
        # The old list and split file describe the old images: they go first, so that a crash
        # from here on leaves an output that is visibly incomplete rather than inconsistent.
        for name in ("image_list.txt", "att_splits.mat"):
            (out / name).unlink(missing_ok=True)
        if image_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=".images.old-", dir=out))
            os.replace(image_dir, old / "images")
            shutil.rmtree(old)
        os.replace(staging, image_dir)
    labels_arr = np.array(labels)
    locs = _split_locations(labels_arr, unseen, n_val_classes, test_seen_fraction, rng)

    original_att = np.stack([c.attributes() for c in classes], axis=1) * 100.0  # A x C, percent
    att = original_att / np.linalg.norm(original_att, axis=0, keepdims=True)
    write_mat(out / "att_splits.mat", {
        "att": att,
        "original_att": original_att,
        "allclasses_names": [c.name for c in classes],
        "attribute_names": list(ATTRIBUTE_NAMES),
        **{f"{key}_loc": (rows + 1).reshape(-1, 1).astype(np.float64) for key, rows in locs.items()},
    })
    atomic_write_text(out / "image_list.txt",
                      "".join(f"{entry} {label + 1}\n" for entry, label in zip(entries, labels)))
    summary = {
        "classes": len(classes), "seen": n_seen, "unseen": len(unseen),
        "unseen_names": [classes[i].name for i in unseen], "images": len(entries),
        "split_file": str(out / "att_splits.mat"), "image_list": str(out / "image_list.txt"),
    }
    if progress:
        print(f"demo: {summary['images']} images, {n_seen} seen and {len(unseen)} unseen classes "
              f"written to {out}", file=sys.stderr)
    return summary
