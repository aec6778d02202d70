"""Fine-tuning the backbone on the seen classes: where the paper's fine-tuned features come from.

The paper reports every benchmark twice, with xlsa17's ImageNet ResNet-101 features and with the
features of a ResNet-101 fine-tuned on the seen classes; the fine-tuning code was never released.
Here the backbone, with a new linear head over the seen classes, is trained by cross-entropy on the
images of the split file's `trainval_loc` — the seen classes' training images — and nothing else:
the other rows of the list are read for their labels only (to check that no unseen class is among
the training labels), never opened as files. test_seen images would leak the seen test accuracy
into the features, unseen-class images the zero-shot setting itself.

The recipe (`Recipe`; config/README.md "Fine-tuning" traces each default): the authors' feature
file names (`res101_150_cub_448_lr_1e_3bs_16`, ...) read as 448 px, learning rate 1e-3, batch 16
and a per-benchmark epoch count — an inference, not published code — completed where they are
silent by LiangjunFeng/Generative-Any-Shot-Learning VisualEmbedding/finetune.py (SGD with momentum
0.9, RandomResizedCrop + horizontal flip).

The val protocol's selection run needs a backbone of its own (`selection_rows`, `finetune --train-part
selection`): trained on the validation split's training part only — the training classes' images
less the validation-seen ones held out — so that the classes its validation scores as unseen were
never learnt, with labels, by the features it reads. The rows come from the protocol's own rule
(tfvaegan.protocols.selection_train_rows), given the list's labels and the split file's locations;
no other image is opened.

Output: a weights-only state dict of the backbone without the head (torchvision's key names, fc
removed), which `extract --weights` loads. `<out>.ckpt` holds the whole training state after every
epoch, written atomically; an interrupted run started again with the same inputs continues from it.
The same inputs, seed and thread count give the same weights on a CPU.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tfvaegan.data.validate import image_split
from tfvaegan.errors import DataError, UserError, exception_first_line
from tfvaegan.features.extract import (
    EXTRACTION,
    build_backbone,
    check_images,
    check_options,
    check_out_path,
    default_workers,
    listed_paths,
    normalised,
    read_list,
    to_rgb,
    weights_path,
)
from tfvaegan.fileio import atomic_torch_save, sha256_of
from tfvaegan.record import log as record_log

log = functools.partial(record_log, stage="finetune")  # the progress lines of fine-tuning

CHECKPOINT_FORMAT = "tfvaegan-finetune-checkpoint/1"
FEATURE_WIDTH = 2048  # the pooled output of every backbone offered (resnet50/101/152)
ASPECT_RANGE = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect ratios (torchvision's default)


@dataclass(frozen=True)
class Recipe:
    """How the backbone is trained; each default's source is in config/README.md ("Fine-tuning")."""

    epochs: int = 150  # the authors' CUB file res101_150_cub_448_lr_1e_3bs_16, read as 150 epochs
    lr: float = 1e-3  # the authors' file names: lr_1e_3
    batch_size: int = 16  # the authors' file names: bs_16
    image_size: int = 448  # the authors' file names: 448
    momentum: float = 0.9  # LiangjunFeng finetune.py: SGD momentum 0.9 (the authors' optimiser is not known)
    weight_decay: float = 0.0  # LiangjunFeng finetune.py: none
    lr_step: int = 0  # epochs between decays; 0: constant, as the authors' names give one rate (LiangjunFeng: 7)
    lr_gamma: float = 0.1  # decay factor with lr_step (LiangjunFeng finetune.py: StepLR gamma 0.1)
    crop_scale: float = 0.08  # smallest crop area fraction (RandomResizedCrop's default, as LiangjunFeng)
    flip: bool = True  # random horizontal flip (LiangjunFeng finetune.py)
    amp: bool = False  # CUDA only: bf16 autocast of the forward pass (opt-in; float32 otherwise)

    def check(self) -> None:
        """Refuses values that would fail deep inside torch, or train nothing, before any work."""
        for option, value, least in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 2),
                                     ("--lr-step", self.lr_step, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                why = " (BatchNorm needs two images per batch)" if option == "--batch-size" else ""
                raise UserError(f"{option}: expected an integer >= {least}{why}, found {value!r}")
        # (option, value, interval as written, test)
        for option, value, interval, inside in (
                ("--lr", self.lr, "(0, inf)", lambda v: v > 0),
                ("--momentum", self.momentum, "[0, 1)", lambda v: 0 <= v < 1),
                ("--weight-decay", self.weight_decay, "[0, inf)", lambda v: v >= 0),
                ("--lr-gamma", self.lr_gamma, "(0, 1]", lambda v: 0 < v <= 1),
                ("--crop-scale", self.crop_scale, "(0, 1]", lambda v: 0 < v <= 1)):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and inside(value)):
                raise UserError(f"{option}: expected a number in {interval}, found {value!r}")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of a 0-based epoch (StepLR when lr_step > 0)."""
        return self.lr * self.lr_gamma ** (epoch // self.lr_step) if self.lr_step else self.lr


# The val protocol's selection part of trainval_loc (tfvaegan.protocols.selection_train_rows with the run's
# settings): (the list's 0-based labels, the split file's 0-based locations, the split file) -> 0-based rows.
SelectionRows = Callable[[np.ndarray, dict, Path], np.ndarray]


@dataclass
class _Parts:
    """What training changes: backbone, head and optimiser; rebuilt whole when a checkpoint does not fit."""

    backbone: torch.nn.Module
    head: torch.nn.Linear
    optimizer: torch.optim.SGD


def finetune_stage(image_root: str | Path, list_file: str | Path, split_file: str | Path, out: str | Path, *,
                   strip_prefix: str = "", weights: str | Path | None = None, allow_random_init: bool = False,
                   backbone: str = EXTRACTION.backbone, recipe: Recipe = Recipe(), device: str = "auto",
                   seed: int = 0, selection_rows: SelectionRows | None = None, workers: int | None = None) -> Path:
    """The trainval images of `list_file` (rows of `split_file`'s trainval_loc) → the fine-tuned
    backbone's weights in `out`; every input is checked before the first step. With `selection_rows`
    only the rows it names (the val protocol's selection part of trainval_loc) are trained on and opened.
    `workers` threads decode images (extract.default_workers() if None)."""
    recipe.check()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    check_options(recipe.batch_size, recipe.image_size, device)
    out = check_out_path(out)
    entries, labels, places = read_list(list_file, strip_prefix)
    rows, part = _training_rows(split_file, labels, list_file, selection_rows)
    seen = np.unique(labels[rows])
    if seen.size < 2:
        raise DataError(f"{split_file}: key 'trainval_loc': expected images of at least two seen classes to "
                        f"fine-tune a classifier on, found {seen.size}")
    # the only paths ever built, checked and opened: those of the rows trained on
    paths = listed_paths(image_root, [entries[i] for i in rows], list_file, [places[i] for i in rows])
    targets = np.searchsorted(seen, labels[rows])
    start = weights_path(backbone, weights)
    fingerprint = _fingerprint(recipe, backbone, seed, start, [entries[i] for i in rows], targets)
    log(f"{len(paths)} training images of {seen.size} seen classes ({part}); the {len(entries) - len(paths)} "
        "other listed images are never opened")
    log(f"{backbone} from {start or f'a random initialisation (seed {seed})'}, {recipe.epochs} epoch(s), "
        f"lr {recipe.lr:g}, batch {recipe.batch_size}, {recipe.image_size} px, {device}"
        f"{', bf16 autocast' if recipe.amp and device.startswith('cuda') else ''}")
    if recipe.amp and not device.startswith("cuda"):
        log("--amp is for CUDA only: training in float32 on the CPU")

    def fresh() -> _Parts:
        return _build(backbone, weights, seed, allow_random_init, seen.size, recipe, torch.device(device))

    parts = fresh()  # a missing or foreign weights file stops here, before the images are decoded
    check_images(paths, workers)
    trained = train(parts, fresh, paths, targets, recipe, seed, torch.device(device), _checkpoint_path(out),
                    fingerprint, workers)
    atomic_torch_save({k: v.detach().cpu() for k, v in trained.state_dict().items()}, out)
    _checkpoint_path(out).unlink(missing_ok=True)
    log(f"wrote {out} (weights of the fine-tuned {backbone}, without its head; `extract --weights {out}`)")
    return out




def _training_rows(split_file, labels: np.ndarray, list_file, selection_rows: SelectionRows | None
                   ) -> tuple[np.ndarray, str]:
    """(the 0-based list rows to train on, what they are): trainval_loc, or the part of it `selection_rows`
    names, which must lie inside trainval_loc."""
    locs = image_split(split_file, labels, list_file)
    if selection_rows is None:
        return locs["trainval"], f"trainval_loc of {split_file}"
    rows = np.sort(np.asarray(selection_rows(labels - 1, locs, Path(split_file)), dtype=np.int64))
    outside = np.setdiff1d(rows, locs["trainval"])
    if outside.size:  # the protocol's split is leak-checked; this guards the images opened here all the same
        raise DataError(f"{split_file}: the selection part holds {outside.size} rows outside trainval_loc "
                        f"(first: {outside[0] + 1})")
    return rows, (f"the val protocol's selection part of trainval_loc of {split_file}: no validation-unseen or "
                  "validation-seen image")


def _checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt")


def _fingerprint(recipe: Recipe, backbone: str, seed: int, start: Path | None, entries: list[str],
                 targets: np.ndarray) -> str:
    """Identifies a training: the recipe, the starting weights and exactly the images and labels it sees."""
    parts = {"format": CHECKPOINT_FORMAT, "recipe": dataclasses.asdict(recipe), "backbone": backbone, "seed": seed,
             "start": sha256_of(start) if start is not None else "random", "images": entries,
             "targets": targets.tolist()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _build(backbone: str, weights, seed: int, allow_random_init: bool, n_classes: int, recipe: Recipe,
           device: torch.device) -> _Parts:
    """The starting backbone (ImageNet weights, or the seeded random one `extract` would use) with a
    seeded head over the seen classes, and SGD over both."""
    net = build_backbone(backbone, weights, seed, allow_random_init).to(device).train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        head = torch.nn.Linear(FEATURE_WIDTH, n_classes).to(device)
    optimizer = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=recipe.lr,
                                momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return _Parts(net, head, optimizer)


def train(parts: _Parts, fresh, paths: list[Path], targets: np.ndarray, recipe: Recipe, seed: int,
          device: torch.device, checkpoint: Path, fingerprint: str, workers: int | None = None) -> torch.nn.Module:
    """The epoch loop from the starting `parts`, resumed from `checkpoint` when it holds this training
    (`fresh` rebuilds the start when a checkpoint fails half-way), the next batch decoded on a pool of
    `workers` threads (extract.default_workers() if None) while one trains; returns the backbone."""
    start, history = resume(checkpoint, fingerprint, parts, device)
    if start is None:
        parts, start, history = fresh(), 0, []  # a refused checkpoint may have restored part of the state
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels
    labels = torch.as_tensor(targets, dtype=torch.long, device=device)
    with ThreadPoolExecutor(workers or default_workers()) as pool:  # PIL decodes without the GIL
        for epoch in range(start, recipe.epochs):
            row = _epoch(parts, paths, labels, recipe, seed, epoch, device, pool)
            history.append(row)
            log(f"epoch {epoch + 1}/{recipe.epochs}  loss {row['loss']:.4f}  train acc {100 * row['accuracy']:.1f}%  "
                f"lr {row['lr']:g}  {row['images_per_s']:.0f} images/s  {row['seconds']:.1f} s")
            if epoch + 1 < recipe.epochs:
                atomic_torch_save({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epochs_done": epoch + 1,
                                   "backbone": parts.backbone.state_dict(), "head": parts.head.state_dict(),
                                   "optimizer": parts.optimizer.state_dict(), "history": history}, checkpoint)
    return parts.backbone


def _epoch(parts: _Parts, paths: list[Path], labels: torch.Tensor, recipe: Recipe, seed: int, epoch: int,
           device: torch.device, pool: ThreadPoolExecutor) -> dict:
    """One pass over the training images in a seeded order, with seeded crops and flips."""
    for group in parts.optimizer.param_groups:
        group["lr"] = recipe.lr_at(epoch)
    # Every random draw of the epoch comes from (seed, epoch): a resumed run repeats it exactly.
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(paths))
    draws = rng.random((len(paths), 5))  # crop area, aspect, left, top, flip: per image, before any decoding
    batches = _batches(order, recipe.batch_size)
    began, total_loss, correct = time.monotonic(), 0.0, 0

    def load(batch: np.ndarray):
        return pool.submit(lambda: np.stack([training_image(paths[i], recipe, draws[i]) for i in batch]))

    pending = load(batches[0])
    for b, batch in enumerate(batches):
        images = torch.from_numpy(pending.result()).to(device)
        if b + 1 < len(batches):
            pending = load(batches[b + 1])  # the next batch decodes while this one trains
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.amp and device.type == "cuda"):
            logits = parts.head(parts.backbone(images))
        target = labels[torch.as_tensor(batch, device=device)]
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.optimizer.step()
        total_loss += loss.item() * len(batch)
        correct += int((logits.argmax(1) == target).sum())
    seconds = time.monotonic() - began
    return {"epoch": epoch + 1, "loss": total_loss / len(paths), "accuracy": correct / len(paths),
            "lr": recipe.lr_at(epoch), "seconds": seconds, "images_per_s": len(paths) / max(seconds, 1e-9)}


def _batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive batches of `order`; a last batch of one image joins the one before (BatchNorm in
    training mode cannot normalise a single image), so every image is seen every epoch."""
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def training_image(path: Path, recipe: Recipe, draw: np.ndarray) -> np.ndarray:
    """RandomResizedCrop to image_size x image_size (area fraction in [crop_scale, 1], aspect in 3/4..4/3)
    and a horizontal flip, both from the five uniform numbers `draw`; normalised (3, S, S) float32."""
    try:
        with Image.open(path) as img:
            img = to_rgb(img)
            w, h = img.size
            area = w * h * (recipe.crop_scale + (1 - recipe.crop_scale) * draw[0])
            aspect = math.exp(math.log(ASPECT_RANGE[0]) + math.log(ASPECT_RANGE[1] / ASPECT_RANGE[0]) * draw[1])
            cw, ch = min(w, math.sqrt(area * aspect)), min(h, math.sqrt(area / aspect))
            left, top = draw[2] * (w - cw), draw[3] * (h - ch)
            size = (recipe.image_size, recipe.image_size)
            img = img.resize(size, Image.BILINEAR, box=(left, top, left + cw, top + ch))
            if recipe.flip and draw[4] < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except Exception as exc:  # a file that went bad after the up-front check
        raise DataError(f"{path}: expected an image PIL can decode, found {exception_first_line(exc)}") from None
    return normalised(pixels)


def resume(checkpoint: Path, fingerprint: str, parts: _Parts, device: torch.device) -> tuple[int | None, list]:
    """(epochs done, history) restored into `parts` from `checkpoint` when it holds this training;
    (0, []) without one; (None, []) when it cannot be used — it is only a cache, so that is a note,
    and the caller starts afresh (the next checkpoint replaces it)."""
    if not checkpoint.is_file():
        return 0, []
    try:
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a fine-tuning checkpoint")
        if saved.get("fingerprint") != fingerprint:
            log(f"ignoring {checkpoint}: it belongs to other images, labels, weights or recipe")
            return None, []
        done, history = int(saved["epochs_done"]), list(saved["history"])
        if not 1 <= done == len(history):
            raise ValueError(f"epochs_done {done} with {len(history)} history rows")
        parts.backbone.load_state_dict(saved["backbone"])
        parts.head.load_state_dict(saved["head"])
        parts.optimizer.load_state_dict(saved["optimizer"])
    except Exception as exc:  # truncated, foreign or inconsistent: every kind means "start afresh"
        log(f"ignoring {checkpoint}: not a usable checkpoint ({exception_first_line(exc)}); starting afresh")
        return None, []
    log(f"resuming from {checkpoint} after epoch {done}")
    return done, history
