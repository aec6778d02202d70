"""Feature extraction: images → pooled 2048-d ResNet features in the xlsa17 res101.mat layout.

The backbone is torchvision's ResNet-101 with ImageNet weights, read from a local file or from
torchvision's cache; nothing is downloaded. Without weights, extraction stops with one error that
says where to put them — unless the caller explicitly allows a seeded random initialisation,
which the embedded demo does (its images are simple enough that a random network's features
still separate colour, shape, size and texture; real benchmarks need the ImageNet weights).

Output (`features` D x N float32, `labels` N x 1 1-based, `image_files` N x 1 cell) matches the
res101.mat files of xlsa17, so the split file's 1-based locations index its rows.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tfvaegan.data.matfile import describe, read_mat, write_mat
from tfvaegan.errors import DataError, UserError, exception_in_one_line

# torchvision's ImageNet checkpoints (the *_Weights.IMAGENET1K_V1 file names in its cache).
WEIGHT_FILES = {
    "resnet50": "resnet50-0676ba61.pth",
    "resnet101": "resnet101-63fe2227.pth",
    "resnet152": "resnet152-394f9c45.pth",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MIN_IMAGE_SIZE = 16  # below this ResNet's stride-32 stages pool a single padded pixel


@dataclass(frozen=True)
class ExtractionSettings:
    """How features are extracted: the one source of these defaults, for `extract` and `dataset build`
    (their options and functions) and the workflow's `extraction` keys (whose schema defaults a test keeps
    equal to these). The device is the CPU unless asked: the same images give the same features on any
    machine, a GPU one included, until `--device cuda` is chosen."""

    backbone: str = "resnet101"     # torchvision backbone whose pooled 2048-d output is the feature
    weights: str | None = None      # ImageNet state-dict file; None = torchvision's cache
    allow_random_init: bool = False  # without weights, a seeded random backbone (demo, tests)
    image_size: int = 224           # side of the centre crop in pixels
    batch_size: int = 64            # images per forward pass
    device: str = "cpu"             # cpu, cuda or cuda:N
    seed: int = 0                   # seed of the random initialisation
    strip_prefix: str = ""          # prefix removed from every listed image path


EXTRACTION = ExtractionSettings()


def safe_image_path(image_root: str | Path, entry: str) -> Path:
    """The file `entry` names under `image_root`; refuses entries that would leave the root."""
    root = Path(image_root).resolve()
    text = str(entry).strip().replace("\\", "/")
    if not text:
        raise DataError(f"image list entry: expected a path relative to {root}, found an empty entry")
    if "\0" in text:
        raise DataError(f"image list entry {entry!r}: expected a path, found a NUL byte in it")
    if PurePosixPath(text).is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise DataError(
            f"image list entry {entry!r}: expected a path relative to the image root {root}, found an "
            f"absolute path (use --strip-prefix to drop the prefix recorded on the original machine)")
    candidate = (root / text).resolve()
    if candidate != root and root not in candidate.parents:
        raise DataError(f"image list entry {entry!r}: expected a path inside {root}, found one that leaves it")
    return candidate


def weights_path(backbone: str = EXTRACTION.backbone, weights: str | Path | None = None) -> Path | None:
    """The ImageNet checkpoint to use: `weights` if given, else torchvision's cache, else None."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights {path}: file not found")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[backbone]
    return cached if cached.is_file() else None


def _missing_weights_message(backbone: str) -> str:
    name = WEIGHT_FILES[backbone]
    return (f"no ImageNet weights for {backbone} and no internet use here: put {name} "
            f"(https://download.pytorch.org/models/{name}) into {Path(torch.hub.get_dir()) / 'checkpoints'} "
            f"or pass --weights PATH; --allow-random-init extracts with a seeded random network instead "
            f"(only meaningful for the demo)")


def build_backbone(backbone: str = EXTRACTION.backbone, weights: str | Path | None = None, seed: int = EXTRACTION.seed,
                   allow_random_init: bool = False):
    """The ResNet with its classifier removed (outputs the pooled 2048-d features), in eval mode."""
    import torchvision  # imported when needed: it adds seconds to every command's start-up

    if backbone not in WEIGHT_FILES:
        raise UserError(f"backbone: expected one of {sorted(WEIGHT_FILES)}, found {backbone!r}")
    path = weights_path(backbone, weights)
    if path is None and not allow_random_init:
        raise UserError(_missing_weights_message(backbone))
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        model = getattr(torchvision.models, backbone)(weights=None)
    model.fc = torch.nn.Identity()
    if path is not None:
        _load_backbone_state(model, path, backbone)
    return model.eval()


def _load_backbone_state(model, path: Path, backbone: str) -> None:
    """Loads a state dict into `model` (whose fc is already removed), strict on everything but fc."""
    expected = (f"backbone weights {path}: expected a state dict (mapping of parameter names to tensors) "
                f"saved with torch.save, found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # EOFError, UnpicklingError, KeyError, RuntimeError... on foreign files
        # torch's own message suggests weights_only=False, which would run code from the file: never echo it
        raise UserError(f"{expected} a file that does not load as tensors only ({type(exc).__name__})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # training checkpoints nest the weights
    if not isinstance(state, Mapping) or not state:
        found = "an empty mapping" if isinstance(state, Mapping) else f"a {type(state).__name__}"
        raise UserError(f"{expected} {found}")
    bad = next(((k, v) for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)), None)
    if bad is not None:
        raise UserError(f"{expected} entry {bad[0]!r} holding {type(bad[1]).__name__}")
    # DataParallel prefixes every key with "module."; the fc head is discarded, so its shape may differ
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    # torchvision's ImageNet files predate BatchNorm's num_batches_tracked buffer, which eval never uses
    problems = {"missing keys": [k for k in own if k not in state and not k.endswith("num_batches_tracked")],
                "unexpected keys": [k for k in state if k not in own],
                "shape mismatch": [k for k in state if k in own and state[k].shape != own[k].shape]}
    if any(problems.values()):
        problems = [f"{what} {keys[:3]}{' ...' if len(keys) > 3 else ''}" for what, keys in problems.items() if keys]
        raise UserError(f"backbone weights {path}: not a {backbone} state dict ({'; '.join(problems)})")
    model.load_state_dict(state, strict=False)


def check_options(batch_size: int, image_size: int, device) -> None:
    """Refuses option values that would otherwise fail deep inside torch, after the work began."""
    for option, value, least in (("--batch-size", batch_size, 1), ("--image-size", image_size, MIN_IMAGE_SIZE)):
        if not isinstance(value, int) or value < least:
            raise UserError(f"{option}: expected an integer >= {least}, found {value!r}")
    try:
        kind = torch.device(device)
    except (RuntimeError, TypeError):
        kind = None
    if kind is None or kind.type not in ("cpu", "cuda"):
        raise UserError(f"--device: expected cpu, cuda or cuda:N, found {device!r}")
    if kind.type == "cuda" and not (torch.cuda.is_available() and (kind.index or 0) < torch.cuda.device_count()):
        raise UserError(f"--device: expected a GPU that exists, found {device!r} but this machine has "
                        f"{torch.cuda.device_count() if torch.cuda.is_available() else 'no usable'} CUDA device(s)")


def check_out_path(out: str | Path) -> Path:
    """`--out` names a file that can be written: not a folder, and no file where a parent folder goes."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: expected a file path, found a directory")
    blocker = next(p for p in out.absolute().parents if p.exists())
    if not blocker.is_dir():
        raise UserError(f"--out {out}: expected a path inside folders, found {blocker}, which is a file")
    return out


def _decode_failure(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "a file in no image format PIL recognises"
    return exception_in_one_line(exc)


def to_rgb(img):
    # convert("RGB") clips 16-bit greyscale at 255 instead of scaling it, so such images come out white
    if img.mode == "I" or img.mode.startswith("I;16"):
        img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).clip(0, 255).round().astype(np.uint8))
    return img.convert("RGB")


def load_image(path: Path, image_size: int) -> np.ndarray:
    """Resize the shorter side to image_size, centre-crop a square, normalise: (3, S, S) float32."""
    try:
        with Image.open(path) as img:
            img = to_rgb(img)
            w, h = img.size
            scale = image_size / min(w, h)
            img = img.resize((max(image_size, round(w * scale)), max(image_size, round(h * scale))),
                             Image.BILINEAR)
            w, h = img.size
            left, top = (w - image_size) // 2, (h - image_size) // 2
            img = img.crop((left, top, left + image_size, top + image_size))
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise DataError(f"{path}: expected an image PIL can decode, found {_decode_failure(exc)}") from None
    return normalised(pixels)


def normalised(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] → (3, H, W) float32 with ImageNet's mean and std, as the backbone was trained."""
    pixels = (pixels - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _decode_problem(path: Path) -> str | None:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (MIN_IMAGE_SIZE, MIN_IMAGE_SIZE))  # JPEGs decode scaled down, still to their end
            img.load()  # verify() misses truncated and corrupt JPEGs
    except Exception as exc:
        return _decode_failure(exc)
    return None


def default_workers() -> int:
    """Image-decoding threads when none are given: the CPUs this process may run on, at most 8. The workflow
    gives each job its own threads instead (--workers), so that a job decodes on what it requested."""
    try:
        available = len(os.sched_getaffinity(0))  # a cpuset (taskset, a container, a SLURM cgroup) counts
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(8, available))


def check_images(image_paths: Sequence[str | Path], workers: int | None = None) -> None:
    """Decodes every image once, on `workers` threads (default_workers() if None), so that a bad file stops
    extraction before any work rather than at its batch."""
    with ThreadPoolExecutor(workers or default_workers()) as pool:  # PIL decodes without the GIL
        problems = list(pool.map(_decode_problem, image_paths))
    bad = [(str(path), why) for path, why in zip(image_paths, problems) if why]
    if bad:
        others = f"; also {[path for path, _ in bad[1:4]]}{' ...' if len(bad) > 4 else ''}" if len(bad) > 1 else ""
        raise DataError(f"{bad[0][0]}: expected an image PIL can decode, found {bad[0][1]} "
                        f"({len(bad)} of {len(image_paths)} images unreadable{others})")


def extract_features(image_paths: Sequence[str | Path], weights: str | Path | None = None,
                     batch_size: int = EXTRACTION.batch_size, device: str = EXTRACTION.device,
                     image_size: int = EXTRACTION.image_size, backbone: str = EXTRACTION.backbone,
                     seed: int = EXTRACTION.seed, allow_random_init: bool = EXTRACTION.allow_random_init,
                     progress: bool = True, workers: int | None = None) -> np.ndarray:
    """Pooled backbone features of the images, in their order: (N, 2048) float32; `workers` threads decode
    them for the check."""
    check_options(batch_size, image_size, device)
    model = build_backbone(backbone, weights, seed, allow_random_init).to(device)
    n = len(image_paths)
    if progress:
        print(f"extract: checking that the {n} images decode", file=sys.stderr)
    check_images(image_paths, workers)
    out = np.empty((n, 2048), dtype=np.float32)
    start = time.monotonic()
    report_every = max(1, (n // batch_size) // 20)  # about twenty progress lines
    with torch.inference_mode():
        for b, first in enumerate(range(0, n, batch_size)):
            batch = np.stack([load_image(Path(p), image_size) for p in image_paths[first:first + batch_size]])
            features = model(torch.from_numpy(batch).to(device))
            out[first:first + len(batch)] = features.float().cpu().numpy()
            done = first + len(batch)
            if progress and (b % report_every == 0 or done == n):
                rate = done / max(time.monotonic() - start, 1e-9)
                print(f"extract: {done}/{n} images ({100 * done // n}%, {rate:.0f} images/s)", file=sys.stderr)
    return out


def read_image_list(list_file: str | Path, strip_prefix: str = "") -> tuple[list[str], np.ndarray]:
    """Entries and 1-based labels from a text list ("<path> <label>" per line) or a .mat file
    holding `image_files` and `labels` (an xlsa17 res101.mat, to re-extract its images in order)."""
    return read_list(list_file, strip_prefix)[:2]


def read_list(list_file: str | Path, strip_prefix: str = "") -> tuple[list[str], np.ndarray, list[str]]:
    """read_image_list, plus where each entry came from ("line 7"), for messages about it (`listed_paths`)."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"image list {list_file}: file not found")
    if list_file.suffix == ".mat":
        entries, labels = _read_mat_list(list_file)
        places = [f"image_files entry {i}" for i in range(1, len(entries) + 1)]
    else:
        try:
            text = list_file.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{list_file}: expected UTF-8 text, found byte {exc.object[exc.start]:#04x} at "
                            f"offset {exc.start} that is not") from None
        entries, label_list, places = [], [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            path, _, label = line.rstrip().rpartition(" ")
            # isdigit() alone accepts '²' and other non-ASCII digits that int() refuses
            if not path or not (label.isascii() and label.isdigit()) or int(label) < 1:
                raise DataError(f"{list_file}: line {number}: expected '<relative path> <1-based label>', "
                                f"found {line.strip()!r}")
            entries.append(path.strip())
            label_list.append(int(label))
            places.append(f"line {number}")
        labels = np.array(label_list, dtype=np.int64)
    if not entries:
        raise DataError(f"{list_file}: expected at least one image entry, found none")
    if strip_prefix:
        entries = [e[len(strip_prefix):] if e.startswith(strip_prefix) else e for e in entries]
    return entries, labels, places


def _read_mat_list(list_file: Path) -> tuple[list[str], np.ndarray]:
    content = read_mat(list_file)
    for key in ("image_files", "labels"):
        if key not in content:
            raise DataError(f"{list_file}: key '{key}': expected it (the res101.mat layout), found no such key")
    entries = content["image_files"]
    if not isinstance(entries, list):
        raise DataError(f"{list_file}: key 'image_files': expected a cell array of strings, "
                        f"found {type(entries).__name__}")
    labels = content["labels"]
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iuf":
        raise DataError(f"{list_file}: key 'labels': expected numeric 1-based labels, found {describe(labels)}")
    labels = labels.ravel()
    bad = np.flatnonzero(~(np.isfinite(labels) & (labels == np.round(labels)) & (labels >= 1)))
    if bad.size:
        raise DataError(f"{list_file}: key 'labels': expected positive integers (1-based class labels), found "
                        f"{labels[bad[0]]} at entry {bad[0] + 1} ({bad.size} such label(s))")
    if len(entries) != len(labels):
        raise DataError(f"{list_file}: keys 'image_files' and 'labels': expected equal lengths, "
                        f"found {len(entries)} and {len(labels)}")
    return entries, labels.astype(np.int64)


def class_folder_list(image_root: str | Path, class_names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Entries and 1-based labels from a folder per class; class order = `class_names` when given
    (e.g. the split file's allclasses_names), else the sorted folder names."""
    root = Path(image_root)
    # hidden entries (.git, macOS ._x.png resource forks, .DS_Store) are neither classes nor images
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     ) if root.is_dir() else []
    if not folders:
        raise DataError(f"{root}: expected one sub-folder of images per class, found none")
    order = list(class_names) if class_names is not None else folders
    if len(set(order)) != len(order):
        repeated = sorted({n for n in order if order.count(n) > 1})
        raise DataError(f"class names: expected distinct names, found {repeated[:5]} more than once")
    missing = sorted(set(order) - set(folders))
    if missing:
        raise DataError(f"{root}: expected a folder for every class, found none for {missing[:5]}")
    unnamed = sorted(set(folders) - set(order))
    if unnamed:  # their images would silently go unextracted
        raise DataError(f"{root}: expected only folders of the given classes (allclasses_names), found "
                        f"{len(unnamed)} other folder(s): {unnamed[:5]}")
    entries, labels, empty = [], [], []
    for label, name in enumerate(order, 1):
        files = sorted(p for p in (root / name).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
        entries += [f"{name}/{p.name}" for p in files]
        labels += [label] * len(files)
        empty += [] if files else [name]
    if empty:
        raise DataError(f"{root / empty[0]}: expected at least one image ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                        f"per class folder, found none in {len(empty)} folder(s): {empty[:5]}")
    return entries, np.array(labels, dtype=np.int64)


def write_feature_file(out: str | Path, features: np.ndarray, labels: np.ndarray, entries: Sequence[str]) -> None:
    """res101.mat layout, written atomically (temporary file + rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # v5 holds at most 2 GiB per variable; larger feature matrices need MATLAB's v7.3 (HDF5).
    version = "v5" if features.nbytes < 2 ** 31 - 2 ** 20 else "v7.3"
    write_mat(out, {
        "features": np.ascontiguousarray(features.T, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.float64).reshape(-1, 1),
        "image_files": list(entries),
    }, version=version)


def extract_stage(image_root: str | Path, out: str | Path, *, list_file: str | Path | None = None,
                  class_folders: bool = False, split_file: str | Path | None = None,
                  strip_prefix: str = EXTRACTION.strip_prefix, weights: str | Path | None = EXTRACTION.weights,
                  allow_random_init: bool = EXTRACTION.allow_random_init, backbone: str = EXTRACTION.backbone,
                  image_size: int = EXTRACTION.image_size, batch_size: int = EXTRACTION.batch_size,
                  device: str = EXTRACTION.device, seed: int = EXTRACTION.seed, workers: int | None = None) -> Path:
    """The listed images (`list_file`, or one folder per class) → `out` in the res101.mat layout; `workers`
    threads decode images (default_workers() if None)."""
    if (list_file is None) == (not class_folders):
        raise UserError("extract: expected exactly one of --list FILE or --class-folders")
    if list_file is not None and split_file is not None:
        raise UserError("extract: --split-file: expected it only with --class-folders (a --list gives the labels "
                        "itself), found it with --list")
    check_options(batch_size, image_size, device)
    out = check_out_path(out)
    if list_file is not None:
        entries, labels, places = read_list(list_file, strip_prefix)
    else:
        entries, labels = class_folder_list(image_root, _class_names(split_file))
        places = None
    paths = listed_paths(image_root, entries, list_file, places)
    print(f"extract: {len(paths)} images from {image_root} with {backbone} "
          f"({image_size} px, batch {batch_size}, {device})", file=sys.stderr)
    features = extract_features(paths, weights=weights, batch_size=batch_size, device=device,
                                image_size=image_size, backbone=backbone, seed=seed,
                                allow_random_init=allow_random_init, workers=workers)
    write_feature_file(out, features, labels, entries)
    print(f"extract: wrote {out} (features {features.shape[1]} x {features.shape[0]})", file=sys.stderr)
    return out


def listed_paths(image_root, entries: list[str], list_file, places: list[str] | None) -> list[Path]:
    """Each entry's file under the root: inside it, listed once, present; errors name the list's line."""
    def at(i: int) -> str:
        return f"{list_file}: {places[i]}: " if list_file is not None else ""

    paths, first = [], {}
    for i, entry in enumerate(entries):
        try:
            paths.append(safe_image_path(image_root, entry))
        except DataError as exc:
            raise DataError(f"{at(i)}{exc}") from None
        if first.setdefault(paths[-1], i) != i:
            earlier = places[first[paths[-1]]] if places is not None else entries[first[paths[-1]]]
            raise DataError(f"{at(i)}image {entry!r}: expected each image listed once, found it also at {earlier}")
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{at(missing[0])}image {entries[missing[0]]!r}: expected a file under "
                                f"{image_root}, found none ({len(missing)} listed image(s) missing)")
    return paths


def _class_names(split_file: str | None) -> list[str] | None:
    if split_file is None:
        return None
    names = read_mat(Path(split_file)).get("allclasses_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        # falling back to sorted folder order could silently mismatch the split file's labels
        found = ("no such key" if names is None else "an empty or blank entry" if isinstance(names, list)
                 else describe(names))
        raise DataError(f"{split_file}: key 'allclasses_names': expected a cell array of class names (the class "
                        f"folders, in label order), found {found}")
    return names
