"""The methods of the lineage (`method`, docs/methods.md): which model and which trainer each config gets.

f-CLSWGAN → f-VAEGAN (-D2, transductive) → TF-VAEGAN → FREE: one room each (method/fclswgan.py, the
FVAEGAN boxes of method/models.py, TFVAEGAN there, method/free.py); what they share — the critic and its
penalty, synthesis, the classifiers and the evaluation — is the floor's.
"""
from __future__ import annotations

from torch import nn

from tfvaegan.config import Config
from tfvaegan.method.fclswgan import FCLSWGAN, FCLSWGANTrainer
from tfvaegan.method.free import FREE, FREETrainer
from tfvaegan.method.models import FVAEGAN, TFVAEGAN
from tfvaegan.method.train import Trainer
from tfvaegan.method.transductive import TransductiveTrainer

MODELS: dict[str, type[nn.Module]] = {"tfvaegan": TFVAEGAN, "fclswgan": FCLSWGAN, "fvaegan": FVAEGAN, "free": FREE}
TRAINERS: dict[str, type[Trainer]] = {"tfvaegan": Trainer, "fclswgan": FCLSWGANTrainer, "fvaegan": Trainer,
                                      "free": FREETrainer}


def trainer_for(cfg: Config) -> type[Trainer]:
    """The trainer class a config trains with (transductive: TF-VAEGAN's or f-VAEGAN-D2's, the config refuses
    transductive training for a method without a transductive form)."""
    return TransductiveTrainer if cfg.transductive else TRAINERS[cfg.method]


def model_for(cfg: Config) -> nn.Module:
    """An untrained model of cfg's method, with the modules model.pt holds (`saved_modules`)."""
    return MODELS[cfg.method](cfg)
