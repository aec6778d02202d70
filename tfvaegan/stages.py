"""The stages the workflow runs, as functions of paths: verify-features, train, synthesize, classify,
and `run`, which chains the last three in one process (data loaded and validated once, the model
handed on in memory; the files written are those of the three stages). Files in, a call, files out:
what a protocol trains and evaluates is protocols.py's.
"""
from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tfvaegan import artifacts, protocols
from tfvaegan.config import Config
from tfvaegan.data.layout import data_files
from tfvaegan.data.load import Benchmark, load_benchmark
from tfvaegan.data.preprocess import ZSLData
from tfvaegan.device import device_for
from tfvaegan.errors import UserError
from tfvaegan.fileio import atomic_torch_save, atomic_write_text, sha256_of
from tfvaegan.method.models import FeatureGenerator
from tfvaegan.method.synthesize import synthesize
from tfvaegan.method.train import watching_history
from tfvaegan.record import log, percent, provenance
from tfvaegan.report.plots import write_features_2d


@dataclass
class Trained:
    """A model as `synthesize` and `classify` use it: from model.pt, or straight from `train` in `run`."""

    model: FeatureGenerator  # of the config's method (method/lineage.py)
    cfg: Config
    saved: dict  # model.pt's contents
    path: Path  # model.pt
    device: torch.device
    # The test split `train` prepared for this model, handed on in memory by `run` (None when read from model.pt).
    test_data: ZSLData | None = None

    @classmethod
    def load(cls, path: Path) -> "Trained":
        saved, cfg = artifacts.read_model(Path(path))
        model = artifacts.restore_model(saved, cfg, Path(path))
        device = device_for(cfg.device, cfg.amp)
        return cls(model.to(device), cfg, saved, Path(path), device)

    def test_split(self, data_root: Path | None) -> ZSLData:
        """The test split the model is evaluated on: the one `train` prepared, or the data it was trained on
        (or the same benchmark under another root), prepared on its device."""
        return self.test_data if self.test_data is not None else self.benchmark(data_root).test_split(self.device)

    def benchmark(self, data_root: Path | None) -> Benchmark:
        """The data the model was trained on (or the same benchmark under another root); sizes that
        differ from the model's are refused."""
        return load_benchmark(Path(data_root or self.saved["data_root"]), self.cfg)


# --------------------------------------------------------------------------- verify-features
def verify_features(data_root: Path, configs: list[Config], config_file: Path | None = None) -> dict:
    """Load each dataset (one Config per split) as training would, checking the sizes the config
    states, and record every file's sha256 and the split sizes (data.json)."""
    checksums: dict[str, str] = {}
    records = []
    for cfg in configs:
        raw = load_benchmark(data_root, cfg).raw
        n_classes, att_size = raw.attributes.shape
        files = data_files(data_root, cfg)
        for path in map(str, files):
            checksums.setdefault(path, sha256_of(path))
        records.append({
            "dataset": cfg.dataset,
            "files": {str(path): checksums[str(path)] for path in files},
            "images": int(raw.features.shape[0]), "feature_dim": int(raw.features.shape[1]),
            "classes": int(n_classes), "attribute_dim": int(att_size),
            "split_sizes": {name: int(len(rows)) for name, rows in raw.locs.items()},
        })
        log(f"verify-features: {cfg.dataset}: {records[-1]['images']} images, {n_classes} classes, "
            f"features {raw.features.shape[1]}-d: ok")
    return {"data_root": str(data_root), "config": str(config_file) if config_file else None,
            "datasets": records}


# --------------------------------------------------------------------------- train
def with_seed(cfg: Config) -> Config:
    """The official scripts draw a seed when none is given; we do too, and record it."""
    if cfg.manualSeed is not None:
        return cfg
    return dataclasses.replace(cfg, manualSeed=random.SystemRandom().randint(1, 10000))


def train_stage(cfg: Config, data_root: Path, model_path: Path, log_path: Path,
                benchmark: Benchmark | None = None, device: torch.device | None = None,
                selection_features: Path | None = None) -> Trained:
    """Train under the config's protocol; writes model.pt and train_log.csv. `run` hands over the benchmark it
    loaded and the device it resolved. `selection_features` (val protocol): the feature file the selection run
    reads instead (a fine-tuned run's selection backbone's; protocols.selection_benchmark)."""
    cfg = with_seed(cfg)
    device = device or device_for(cfg.device, cfg.amp)
    benchmark = benchmark or load_benchmark(data_root, cfg)
    benchmark = dataclasses.replace(benchmark, cfg=dataclasses.replace(benchmark.cfg, manualSeed=cfg.manualSeed))
    selection_data = None if selection_features is None else protocols.selection_benchmark(benchmark,
                                                                                           selection_features)
    model_path = Path(model_path)
    log(f"{cfg.dataset}: protocol {cfg.protocol}, seed {cfg.manualSeed}, device {device}")
    with watching_history(GrowingLog(model_path, Path(log_path))):
        result, history, selection, zdata = protocols.train_under_protocol(benchmark, device, model_path,
                                                                           selection_data)
    saved = artifacts.model_record(benchmark.cfg, result.trainer.model, history, selection,
                                   seconds_per_epoch=result.seconds_per_epoch, epochs_trained=len(result.history),
                                   data_root=data_root, data=zdata.info, device=device)
    artifacts.write_model_and_log(saved, model_path, log_path)
    for leftover in (model_path.with_suffix(".ckpt"), model_path.with_suffix(".select.ckpt")):
        leftover.unlink(missing_ok=True)
    return Trained(result.trainer.model.eval(), benchmark.cfg, saved, model_path, device, test_data=zdata)


class GrowingLog:
    """train_log.csv rewritten (atomically) after every epoch of the trainings `train_stage` makes, so that
    `tail -f` follows a run and a crash leaves the epochs trained: each training's rows so far, in the order
    the trainings began (the val protocol: the selection run's, then the final run's). The log written at the
    end (artifacts.write_model_and_log) replaces it with the protocol's history (which labels the val
    protocol's final rows `trainval` and holds a selection read from its cache). The model.pt of an earlier
    training goes before the first row, so that no log lies beside a model of another training."""

    def __init__(self, model_path: Path, log_path: Path):
        self.model_path, self.log_path = model_path, log_path
        self.trainings: dict[Path | None, list[dict]] = {}  # each training's rows, by its checkpoint

    def __call__(self, history: list[dict], checkpoint: Path | None) -> None:
        if not self.trainings:
            self.model_path.unlink(missing_ok=True)
        self.trainings[checkpoint] = history
        rows = [row for rows in self.trainings.values() for row in rows]
        atomic_write_text(self.log_path, artifacts.train_log_text(rows))


# --------------------------------------------------------------------------- synthesize
def synthesize_stage(model: Path | Trained, out_path: Path, data_root: Path | None = None, classes: str = "unseen",
                     per_class: int | None = None) -> dict:
    """Features of the unseen (or seen, or all) classes from model.pt (or a model `train` just made);
    writes synthetic.pt."""
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise UserError(f"synthesize --num: expected a positive number of features per class, found {per_class!r}")
    trained = model if isinstance(model, Trained) else Trained.load(model)
    cfg, device = trained.cfg, trained.device
    zdata = trained.test_split(data_root)
    chosen = {"unseen": zdata.unseenclasses, "seen": zdata.seenclasses,
              "all": torch.arange(zdata.n_classes, device=device)}[classes]
    generator = torch.Generator(device=device).manual_seed(cfg.manualSeed + 2)
    count = cfg.syn_num if per_class is None else per_class
    log(f"synthesising {count} features for each of {len(chosen)} {classes} classes")
    features, labels = synthesize(trained.model, zdata.attribute, chosen, count, cfg.nz, generator)
    feedback_weight = cfg.a2 if trained.model.uses_feedback else None  # None: generated without feedback
    out = artifacts.synthetic_record(features, labels, chosen, count, feedback_weight, trained.saved, trained.path,
                                     cfg.dataset)
    atomic_torch_save(out, Path(out_path))
    return out


# --------------------------------------------------------------------------- classify
def classify_stage(model: Path | Trained, synthetic_path: Path, out_path: Path, data_root: Path | None = None,
                   benchmark_name: str | None = None, variant: str = "tfvaegan",
                   class_names: list[str] | None = None) -> dict:
    """The final ZSL/GZSL classifiers on the synthetic features of synthetic.pt, under the model's protocol
    (protocols.final_evaluation); writes per_class.csv and features_2d.png beside metrics.json, then metrics.json.
    `class_names`: the benchmark's (allclasses_names), from `run`, which hands over the model's test split; a
    model read from model.pt gets them with its data."""
    trained = model if isinstance(model, Trained) else Trained.load(model)
    synthetic = artifacts.load_artifact(Path(synthetic_path), artifacts.SYNTHETIC_FORMAT)
    cfg, device = trained.cfg, trained.device
    artifacts.check_synthetic(synthetic, Path(synthetic_path), trained.path, artifacts.model_identity(trained.saved), cfg)
    if trained.test_data is None:  # the data the model was trained on, read once for its test split and names
        benchmark = trained.benchmark(data_root)
        zdata, class_names = benchmark.test_split(device), benchmark.raw.class_names
    else:
        zdata = trained.test_data
    if not torch.equal(synthetic["classes"].long().to(device), zdata.unseenclasses.long()):
        raise UserError(f"{synthetic_path}: key 'classes': expected the unseen classes of {cfg.dataset} "
                        f"{zdata.unseenclasses.tolist()[:10]}, found {synthetic['classes'].tolist()[:10]}")
    generator = torch.Generator(device=device).manual_seed(cfg.manualSeed + 3)
    selection = trained.saved["selection"]
    began = time.perf_counter()
    pair = (synthetic["features"].float().to(device), synthetic["labels"].long().to(device))
    final, headline, epochs, notes, per_class = protocols.final_evaluation(trained.model, zdata, cfg, selection,
                                                                           pair, generator)
    saved = trained.saved
    metrics = {
        "benchmark": benchmark_name or cfg.dataset, "protocol": cfg.protocol, "variant": variant,
        "method": cfg.method, "features": cfg.features, "setting": cfg.setting,
        "transductive_prior": cfg.transductive_prior if cfg.transductive else None,
        "transductive_unlabelled": cfg.transductive_unlabelled if cfg.transductive else None,
        "seed": cfg.manualSeed, **headline, **epochs,
        "epochs_trained": saved["epochs_trained"], "seconds_per_epoch": saved["seconds_per_epoch"],
        "classify_seconds": time.perf_counter() - began,
        "train_device": saved.get("device"), "train_torch_threads": saved.get("torch_threads"),
        # this process's (record.provenance) and, under `train`, model.pt's (null for a model.pt without one)
        "provenance": {**provenance(device), "train": saved.get("provenance")},
        "selection": selection, "final_model": final, "data": saved["data"], "config": saved["config"],
        "notes": notes,
    }
    out_path = Path(out_path)
    atomic_write_text(out_path.with_name("per_class.csv"), artifacts.per_class_text(per_class, class_names))
    split = f" {cfg.dataset.rpartition('/')[2]}" if "/" in cfg.dataset else ""  # split_<k> of the action benchmarks
    write_features_2d(out_path.with_name("features_2d.png"), zdata.test_unseen_feature.cpu().numpy(),
                      zdata.test_unseen_label.cpu().numpy(), synthetic["features"].float().cpu().numpy(),
                      synthetic["labels"].cpu().numpy(), zdata.unseenclasses.tolist(), class_names,
                      title=f"{metrics['benchmark']}{split} [{cfg.protocol}, {variant}, seed {cfg.manualSeed}]")
    atomic_write_text(out_path, json.dumps(metrics, indent=2, default=float) + "\n")  # last: the run is done
    log(f"{metrics['benchmark']} [{cfg.protocol}] ZSL {percent(headline['zsl_acc'])}  GZSL u "
        f"{percent(headline['gzsl_unseen'])} s {percent(headline['gzsl_seen'])} H {percent(headline['gzsl_h'])}")
    return metrics


# --------------------------------------------------------------------------- run
def run(cfg: Config, data_root: Path, out_dir: Path, benchmark_name: str | None = None,
        variant: str = "tfvaegan", selection_features: Path | None = None) -> dict:
    """train → synthesize → classify into out_dir, the data loaded once and the model kept in memory."""
    out_dir = Path(out_dir)
    (out_dir / "metrics.json").unlink(missing_ok=True)  # a failed run must leave no metrics
    device = device_for(cfg.device, cfg.amp)  # once; a device that does not exist is refused before the data is read
    benchmark = load_benchmark(data_root, cfg)
    trained = train_stage(cfg, data_root, out_dir / "model.pt", out_dir / "train_log.csv", benchmark, device,
                          selection_features)
    synthesize_stage(trained, out_dir / "synthetic.pt")  # on the test split train prepared
    return classify_stage(trained, out_dir / "synthetic.pt", out_dir / "metrics.json", benchmark_name=benchmark_name,
                          variant=variant, class_names=benchmark.raw.class_names)
