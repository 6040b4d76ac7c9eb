"""Notebook 05's ensemble: the mean of the softmax probabilities of the models it compares.

`Ensemble` is an ``nn.Module`` that `emolib.training.evaluate` runs like any other model, so the ensemble's
figures and its ms/face come from the same code as each single model's. Its ``spec`` asks the loader
for the faces as they are (gray, the data's side, scaled to [0, 1], no normalization); its forward hands each
member those faces through `emolib.models.preprocess.fit_to_spec` with the member's own spec, exactly what
the loader does for that member alone (one source of truth for preprocessing). It returns log-probabilities,
whose softmax (what evaluate takes) is the mean of the members' probabilities.

Notebook 05 evaluates the ensemble without TTA through the module (so its ms/face is measured), and with TTA
from the members' own TTA probabilities, which it computes for each model alone anyway (`tta_accuracy`): each
member's views cut at its own input size, nothing run twice. `evaluate(ensemble, tta=...)` works too: its views
are cut from the faces before each member's preprocessing, which the mirror commutes with; its ten crops differ
from the members' own by one more resampling.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emolib.core.spec import ModelSpec
from emolib.models.preprocess import fit_to_spec
from emolib.research.profiles import ConfigError
from emolib.training import evaluate

__all__ = ["ALL", "ENSEMBLE", "Ensemble", "build", "member_names", "notes", "results_rows",
           "tta_accuracy", "with_ensemble"]

ALL = "all"                       # the profile value for "every compared model"
ENSEMBLE = "ensemble"             # the ensemble's name beside the single models in 05's tables and metrics
# Floor of a mean probability before its log: a probability that underflows to 0 stays a finite logit.
_TINY = torch.finfo(torch.float32).tiny


def raw_faces_spec(side: int) -> ModelSpec:
    """What the loader makes of the faces for an ensemble: gray, `side` pixels, in [0, 1] (mean 0, std 1)."""
    return ModelSpec(side, 1, (0.0,), (1.0,), target_layer="")


class Ensemble(nn.Module):
    """Mean of the members' softmax probabilities; each member sees the faces preprocessed by its own spec.

    members: name -> model built by `emolib.models.create` (it carries ``.spec``), all with the same classes
    in the same order. side: the data's image side (FaceArrays are N×side×side), so the loader does not
    resample the faces before each member does.
    """

    def __init__(self, members: dict[str, nn.Module], side: int):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs two or more models, got {list(members)}")
        if missing := [name for name, m in members.items() if not isinstance(getattr(m, "spec", None), ModelSpec)]:
            raise ValueError(f"{missing}: an ensemble member needs its .spec (build it with emolib.models.create)")
        # A checkpoint's model and a restricted pretrained one say what their outputs are; the mean needs them alike.
        if len(outputs := {tuple(m.classes) for m in members.values() if getattr(m, "classes", None)}) > 1:
            raise ValueError(f"ensemble members output different classes: {sorted(outputs)}")
        self.names = list(members)
        self.members = nn.ModuleList(members.values())    # a ModuleList: names such as "fer2013-mini-xception" are no attribute
        self.spec = raw_faces_spec(side)
        self.model_name = ENSEMBLE

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(members, B, C) softmax probabilities of each member for faces `x` as `self.spec` makes them."""
        return torch.stack([F.softmax(m(fit_to_spec(x, m.spec)).float(), dim=1) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_probs(x).mean(0).clamp_min(_TINY).log()


def member_names(setting, compared: list[str]) -> list[str]:
    """The models that join the ensemble: `setting` is the profile's ``ensemble`` ("all", or names among the
    compared models); [] turns the ensemble off. Unknown or repeated names and a single member are errors."""
    names = list(compared) if setting == ALL else list(setting)
    if not names:
        return []
    where = "05_error_analysis: ensemble"
    if unknown := [n for n in names if n not in compared]:
        raise ConfigError(f"{where} names {unknown}, not among the compared models {compared}: name them as in the "
                          f"comparison table (a run's model, or a pretrained model), or write `all`")
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"{where} names {repeated} more than once: name each model once")
    if len(names) < 2:
        raise ConfigError(f"{where} holds {names} only: an ensemble needs two or more models (write [] for none)")
    return names


def build(nets: dict[str, nn.Module], setting, faces) -> Ensemble | None:
    """The ensemble of `nets` that the profile's ``ensemble`` setting asks for, to run on `faces` (FaceArrays:
    their side is the ensemble's input); None when the setting is []."""
    names = member_names(setting, list(nets))
    return Ensemble({n: nets[n] for n in names}, faces.images.shape[-1]) if names else None


def with_ensemble(nets: dict[str, nn.Module], ensemble: Ensemble | None) -> dict[str, nn.Module]:
    """The compared models followed by the ensemble (`ENSEMBLE`), if there is one."""
    return nets if ensemble is None else {**nets, ENSEMBLE: ensemble}


def tta_accuracy(nets: dict[str, nn.Module], ensemble: Ensemble | None, faces, modes,
                 plain: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Test accuracy of each model and of the ensemble: without TTA ("none", read from `plain`, evaluate's dicts
    by name) and with each TTA mode of `modes`. The ensemble's TTA probabilities are the mean of its members'
    TTA probabilities, computed here for each model alone and reused, not run again."""
    table = {name: {"none": plain[name]["accuracy"]} for name in with_ensemble(nets, ensemble)}
    for mode in modes:
        probs = {}
        for name, net in nets.items():
            probs[name], labels = evaluate.predict(net, faces, tta=mode)
            table[name][mode] = _accuracy(probs[name], labels, faces.classes)
        if ensemble is not None:
            mean = np.mean([probs[name] for name in ensemble.names], axis=0)
            table[ENSEMBLE][mode] = _accuracy(mean, labels, faces.classes)
    return table


def _accuracy(probs: np.ndarray, labels: np.ndarray, classes) -> float:
    return evaluate.metrics_from_probs(probs, labels, classes)["accuracy"]


def label(ensemble: Ensemble) -> str:
    """The ensemble's name in the results table: its members."""
    return f"{ENSEMBLE} ({' + '.join(ensemble.names)})"


def results_rows(ensemble: Ensemble | None, results: dict[str, dict], classes) -> list[dict]:
    """05's rows of the results table (`emolib.research.results.result_row`): the ensemble's, from its evaluate
    dict without TTA (``results[ENSEMBLE]``), with no best epoch and no checkpoint of its own; [] without one."""
    from emolib.research.results import count_parameters, result_row
    if ensemble is None:
        return []
    # the module's parameters are its members': their sum, what a reader compares with the single models' counts
    return [result_row(model=label(ensemble), init="ensemble", test=results[ENSEMBLE], classes=classes,
                       parameters=count_parameters(ensemble), best_epoch=None, checkpoint=None)]


def notes(ensemble: Ensemble | None) -> list[str]:
    """What a reader of 05's comparison must know of the ensemble (Markdown paragraphs)."""
    if ensemble is None:
        return []
    return [f"**Ensemble.** The row *{ENSEMBLE}* is the mean of the probabilities of {', '.join(ensemble.names)}, "
            "each model fed the test faces preprocessed its own way (input size, channels, normalization). Its "
            "parameters are the sum of theirs; its ms/face is measured running them all. With TTA, it averages "
            "the members' own TTA probabilities."]
