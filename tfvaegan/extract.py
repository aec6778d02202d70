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

import argparse
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

# torchvision's ImageNet checkpoints (the *_Weights.IMAGENET1K_V1 file names in its cache).
WEIGHT_FILES = {
    "resnet50": "resnet50-0676ba61.pth",
    "resnet101": "resnet101-63fe2227.pth",
    "resnet152": "resnet152-394f9c45.pth",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def safe_image_path(image_root: str | Path, entry: str) -> Path:
    """The file `entry` names under `image_root`; refuses entries that would leave the root."""
    from tfvaegan.data import DataError

    root = Path(image_root).resolve()
    text = str(entry).strip().replace("\\", "/")
    if not text:
        raise DataError(f"image list entry: expected a path relative to {root}, found an empty entry")
    if PurePosixPath(text).is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise DataError(
            f"image list entry {entry!r}: expected a path relative to the image root {root}, found an "
            f"absolute path (use --strip-prefix to drop the prefix recorded on the original machine)")
    candidate = (root / text).resolve()
    if candidate != root and root not in candidate.parents:
        raise DataError(f"image list entry {entry!r}: expected a path inside {root}, found one that leaves it")
    return candidate


def weights_path(backbone: str = "resnet101", weights: str | Path | None = None) -> Path | None:
    """The ImageNet checkpoint to use: `weights` if given, else torchvision's cache, else None."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights {path}: file not found")
        return path
    import torch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[backbone]
    return cached if cached.is_file() else None


def _missing_weights_message(backbone: str) -> str:
    import torch

    name = WEIGHT_FILES[backbone]
    return (f"no ImageNet weights for {backbone} and no internet use here: put {name} "
            f"(https://download.pytorch.org/models/{name}) into {Path(torch.hub.get_dir()) / 'checkpoints'} "
            f"or pass --weights PATH; --allow-random-init extracts with a seeded random network instead "
            f"(only meaningful for the demo)")


def build_backbone(backbone: str = "resnet101", weights: str | Path | None = None, seed: int = 0,
                   allow_random_init: bool = False):
    """The ResNet with its classifier removed (outputs the pooled 2048-d features), in eval mode."""
    import torch
    import torchvision
    from tfvaegan.cli import UserError

    if backbone not in WEIGHT_FILES:
        raise UserError(f"backbone: expected one of {sorted(WEIGHT_FILES)}, found {backbone!r}")
    path = weights_path(backbone, weights)
    if path is None and not allow_random_init:
        raise UserError(_missing_weights_message(backbone))
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        model = getattr(torchvision.models, backbone)(weights=None)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"backbone weights {path}: not a {backbone} state dict ({str(exc).splitlines()[0]})") from None
    model.fc = torch.nn.Identity()
    return model.eval()


def load_image(path: Path, image_size: int) -> np.ndarray:
    """Resize the shorter side to image_size, centre-crop a square, normalise: (3, S, S) float32."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = image_size / min(w, h)
        img = img.resize((max(image_size, round(w * scale)), max(image_size, round(h * scale))),
                         Image.BILINEAR)
        w, h = img.size
        left, top = (w - image_size) // 2, (h - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
        pixels = np.asarray(img, dtype=np.float32) / 255.0
    pixels = (pixels - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def extract_features(image_paths: Sequence[str | Path], weights: str | Path | None = None,
                     batch_size: int = 64, device: str = "cpu", image_size: int = 224,
                     backbone: str = "resnet101", seed: int = 0, allow_random_init: bool = False,
                     progress: bool = True) -> np.ndarray:
    """Pooled backbone features of the images, in their order: (N, 2048) float32."""
    import torch

    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, found {batch_size}")
    model = build_backbone(backbone, weights, seed, allow_random_init).to(device)
    n = len(image_paths)
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
    from tfvaegan.data import DataError

    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"image list {list_file}: file not found")
    if list_file.suffix == ".mat":
        entries, labels = _read_mat_list(list_file)
    else:
        entries, label_list = [], []
        for number, line in enumerate(list_file.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            path, _, label = line.rstrip().rpartition(" ")
            if not path or not label.isdigit() or int(label) < 1:
                raise DataError(f"{list_file}: line {number}: expected '<relative path> <1-based label>', "
                                f"found {line.strip()!r}")
            entries.append(path.strip())
            label_list.append(int(label))
        labels = np.array(label_list, dtype=np.int64)
    if not entries:
        raise DataError(f"{list_file}: expected at least one image entry, found none")
    if strip_prefix:
        entries = [e[len(strip_prefix):] if e.startswith(strip_prefix) else e for e in entries]
    return entries, labels


def _read_mat_list(list_file: Path) -> tuple[list[str], np.ndarray]:
    from tfvaegan.data import DataError, read_mat

    content = read_mat(list_file)
    for key in ("image_files", "labels"):
        if key not in content:
            raise DataError(f"{list_file}: key '{key}': expected it (the res101.mat layout), found no such key")
    entries = content["image_files"]
    if not isinstance(entries, list):
        raise DataError(f"{list_file}: key 'image_files': expected a cell array of strings, "
                        f"found {type(entries).__name__}")
    labels = np.asarray(content["labels"]).ravel().astype(np.int64)
    if len(entries) != len(labels):
        raise DataError(f"{list_file}: keys 'image_files' and 'labels': expected equal lengths, "
                        f"found {len(entries)} and {len(labels)}")
    return entries, labels


def class_folder_list(image_root: str | Path, class_names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Entries and 1-based labels from a folder per class; class order = `class_names` when given
    (e.g. the split file's allclasses_names), else the sorted folder names."""
    from tfvaegan.data import DataError

    root = Path(image_root)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise DataError(f"{root}: expected one sub-folder of images per class, found none")
    order = list(class_names) if class_names is not None else folders
    missing = sorted(set(order) - set(folders))
    if missing:
        raise DataError(f"{root}: expected a folder for every class, found none for {missing[:5]}")
    entries, labels = [], []
    for label, name in enumerate(order, 1):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        entries += [f"{name}/{p.name}" for p in files]
        labels += [label] * len(files)
    return entries, np.array(labels, dtype=np.int64)


def write_feature_file(out: str | Path, features: np.ndarray, labels: np.ndarray, entries: Sequence[str]) -> None:
    """res101.mat layout, written atomically (temporary file + rename)."""
    from tfvaegan.data import write_mat

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # v5 holds at most 2 GiB per variable; larger feature matrices need MATLAB's v7.3 (HDF5).
    version = "v5" if features.nbytes < 2 ** 31 - 2 ** 20 else "v7.3"
    write_mat(out, {
        "features": np.ascontiguousarray(features.T, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.float64).reshape(-1, 1),
        "image_files": list(entries),
    }, version=version)


def _run(args: argparse.Namespace) -> int:
    from tfvaegan.cli import UserError

    if (args.list is None) == (not args.class_folders):
        raise UserError("extract: expected exactly one of --list FILE or --class-folders")
    if args.list is not None:
        entries, labels = read_image_list(args.list, args.strip_prefix)
    else:
        entries, labels = class_folder_list(args.image_root, _class_names(args.split_file))
    paths = [safe_image_path(args.image_root, e) for e in entries]
    missing = [e for e, p in zip(entries, paths) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{args.image_root}: {len(missing)} listed image(s) not found, "
                                f"first: {missing[0]!r}")
    print(f"extract: {len(paths)} images from {args.image_root} with {args.backbone} "
          f"({args.image_size} px, batch {args.batch_size}, {args.device})", file=sys.stderr)
    features = extract_features(paths, weights=args.weights, batch_size=args.batch_size, device=args.device,
                                image_size=args.image_size, backbone=args.backbone, seed=args.seed,
                                allow_random_init=args.allow_random_init)
    write_feature_file(args.out, features, labels, entries)
    print(f"extract: wrote {args.out} (features {features.shape[1]} x {features.shape[0]})", file=sys.stderr)
    return 0


def _class_names(split_file: str | None) -> list[str] | None:
    from tfvaegan.data import read_mat

    if split_file is None:
        return None
    names = read_mat(Path(split_file)).get("allclasses_names")
    return names if isinstance(names, list) else None


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "extract", help="images -> pooled ResNet features in the res101.mat layout",
        description="Extract pooled 2048-d ResNet features of the listed images (torchvision, ImageNet "
                    "weights from --weights or torchvision's cache) into a res101.mat-layout file.")
    p.add_argument("--image-root", required=True, help="folder the image entries are relative to; "
                   "nothing outside it is read")
    p.add_argument("--list", help="image list: a text file of '<relative path> <1-based label>' lines "
                   "(row order of the output), or a .mat file with image_files and labels")
    p.add_argument("--class-folders", action="store_true",
                   help="instead of --list: one sub-folder of --image-root per class")
    p.add_argument("--split-file", help="with --class-folders: att_splits.mat whose allclasses_names "
                   "fixes the class order (default: sorted folder names)")
    p.add_argument("--strip-prefix", default="", help="drop this prefix from every listed entry "
                   "(xlsa17's image_files hold absolute paths of the authors' machine)")
    p.add_argument("--out", required=True, help="feature file to write (e.g. DATA/CUB/res101.mat)")
    p.add_argument("--weights", help="ImageNet state dict of the backbone (default: torchvision's cache)")
    p.add_argument("--allow-random-init", action="store_true",
                   help="without weights, use a randomly initialised backbone seeded by --seed "
                        "(the demo does this; not meaningful for real benchmarks)")
    p.add_argument("--backbone", default="resnet101", choices=sorted(WEIGHT_FILES), help="default resnet101")
    p.add_argument("--image-size", type=int, default=224, help="side of the centre crop in pixels (default 224)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")
    p.set_defaults(func=_run)
