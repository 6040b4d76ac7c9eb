"""Run profiles: ``params/<profile>.yaml``, one section per notebook plus ``common``, validated.

A profile file looks like::

    common:                      # merged into every notebook's section (a section may override it)
      source: synthetic
      seed: 0
    02_cnn_baseline:
      model: cnn_fer
      train: {epochs: 6, lr: 0.001}

Every notebook has a schema (`emolib.research.notebooks`: a dataclass of the common fields plus its own). Unknown keys and
wrong types are errors that name the file, the section and the key; nested ``train`` and ``augment`` sections are
checked by `emolib.core.settings.TrainConfig` and `AugmentConfig` themselves, and each row of ``cam_variants`` by
`emolib.core.settings.CamVariant` (torch-free: make checks profiles often). A notebook's parameters cell names only
the profile and its explicit overrides; `resolve` turns them into the complete parameters, the same way for the
runner (which checks them before a kernel starts) and for JupyterLab, so an interactive run is the profile's
experiment unless an override says otherwise. `side_by_side`: how many notebooks of a profile `make reproduce` runs
at once.
"""
from __future__ import annotations

import os
import re
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from emolib.core import paths
from emolib.core.errors import EmolibError
from emolib.core.settings import AugmentConfig, CamVariant, TrainConfig, describe, type_ok
from emolib.research.notebooks import COMMON_DEFAULTS, NOTEBOOK_TABLE, NOTEBOOKS, SCHEMAS, Common

__all__ = ["ConfigError", "NOTEBOOKS", "SCHEMAS", "load_profile", "load_section", "notebook_name",
           "resolve", "schema", "side_by_side", "validate"]



class ConfigError(EmolibError, ValueError):
    """A profile or a notebook's parameters that do not fit the schema; the message says where."""


# Nested sections checked by their own dataclass, all in the torch-free emolib.core.settings.
NESTED = {"train": TrainConfig, "head_train": TrainConfig, "finetune_train": TrainConfig, "augment": AugmentConfig}
# Lists whose every item is such a section.
NESTED_LISTS = {"cam_variants": CamVariant}


def notebook_name(name: str) -> str:
    """"03", "03_transfer_learning" or "03_transfer_learning.ipynb" -> the notebook's full name."""
    stem = Path(name).stem
    hits = [nb for nb in NOTEBOOKS if nb == stem or nb.split("_", 1)[0] == stem]
    if len(hits) != 1:
        raise ConfigError(f"unknown notebook {name!r}; choose from {', '.join(NOTEBOOKS)}")
    return hits[0]


def schema(notebook: str) -> type:
    return SCHEMAS[notebook_name(notebook)]


def field_names(notebook: str) -> list[str]:
    return [f.name for f in fields(schema(notebook))]


# --------------------------------------------------------------------------------------------- checks

def _check_nested(schema, value, where: str) -> None:
    try:
        schema.from_dict(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def check(notebook: str, values: Mapping[str, Any], *, where: str = "", partial: bool = False) -> dict:
    """Check `values` against the notebook's schema and return them as a plain dict.

    Unknown keys and wrong types raise ConfigError naming `where` (a file and section) and the key;
    so do missing keys unless `partial` (a profile section may leave a value at the notebook's default).
    """
    nb = notebook_name(notebook)
    cls = SCHEMAS[nb]
    hints = typing.get_type_hints(cls)
    where = where or f"parameters of {nb}"
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; {nb} accepts: {', '.join(hints)}")
    missing = [k for k in hints if k not in values]
    if missing and not partial:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    for key, value in values.items():
        if not type_ok(value, hints[key]):
            tip = (" (YAML reads 1e-3 as a string: write 1.0e-3)"
                   if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value) else "")
            raise ConfigError(f"{where}: {key} must be {describe(hints[key])}, got {value!r} "
                              f"({type(value).__name__}){tip}")
        if key in NESTED:
            _check_nested(NESTED[key], value, f"{where}: {key}")
        for i, item in enumerate(value if key in NESTED_LISTS else ()):
            _check_nested(NESTED_LISTS[key], item, f"{where}: {key}[{i}]")
    return dict(values)


# --------------------------------------------------------------------------------------------- API

def validate(notebook: str, namespace: Mapping[str, Any]):
    """A notebook's parameters -> its schema's dataclass, every field checked.

    `namespace` is either a dict of exactly the schema's fields (extra keys are errors), or a
    notebook's ``globals()`` (it has ``__name__``): then the schema's fields are taken from it,
    where papermill has injected the profile's values.
    """
    nb = notebook_name(notebook)
    if "__name__" in namespace:
        names = field_names(nb)
        missing = [k for k in names if k not in namespace]
        if missing:
            raise ConfigError(f"{nb}: the parameters cell does not define {missing}")
        namespace = {k: namespace[k] for k in names}
    return SCHEMAS[nb](**check(nb, namespace))


def profile_path(profile: str) -> Path:
    """params/<profile>.yaml (a path to a .yaml file is taken as it is)."""
    p = Path(profile)
    if p.suffix in (".yaml", ".yml"):
        return p
    return paths.params_dir() / f"{profile}.yaml"


def load_profile(profile: str) -> dict:
    """The whole profile file as a dict of sections; a missing file or a non-mapping is an error."""
    path = profile_path(profile)
    if not path.exists():
        known = sorted(p.stem for p in paths.params_dir().glob("*.yaml"))
        raise ConfigError(f"no profile {path}; profiles in {paths.params_dir()}: {', '.join(known) or 'none'}")
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(data) - set(NOTEBOOKS) - {"common"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; sections: common, {', '.join(NOTEBOOKS)}")
    for name, section in data.items():
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{path}: section {name!r} must be a mapping, got {type(section).__name__}")
    return data


def load_section(profile: str, notebook: str) -> dict:
    """`common` merged with the notebook's section (the section wins), plus ``profile``; checked.

    A section may leave keys out here (a fragment still gets its keys checked); `resolve` requires
    them all, so a shipped profile is complete: notebooks hold no defaults of their own.
    """
    nb = notebook_name(notebook)
    path = profile_path(profile)
    data = load_profile(profile)
    common_keys = {f.name for f in fields(Common)}
    common = dict(data.get("common") or {})
    stray = sorted(set(common) - common_keys)
    if stray:
        raise ConfigError(f"{path} [common]: unknown key(s) {stray}; common accepts: {', '.join(sorted(common_keys))}")
    merged = {**COMMON_DEFAULTS, **common, **(data.get(nb) or {})}
    name = path.stem
    if name in paths.RESERVED:                  # folders of the reports root
        raise ConfigError(f"{path}: a profile may not be named {name!r}")
    if merged.setdefault("profile", name) != name:
        raise ConfigError(f"{path} [{nb}]: profile is {merged['profile']!r} but the file is {name}.yaml")
    return check(nb, merged, where=f"{path} [{nb}]", partial=True)


def resolve(notebook: str, profile: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """A notebook's complete parameters: the profile's section (`load_section`) with `overrides` on top.

    This is what a notebook runs with, headless or in JupyterLab: one source of truth. An override
    replaces the profile's value, except that a mapping (``train``, ``augment``, ``data_options``, ...)
    is merged key by key into the profile's mapping, so ``{"train": {"epochs": 2}}`` changes the epochs
    only. Every key must end up set and checked (a profile is complete; unknown override keys are errors).
    """
    nb = notebook_name(notebook)
    overrides = dict(overrides or {})
    if "profile" in overrides:
        raise ConfigError(f"{nb}: overrides may not change the profile; set `profile` itself")
    values = load_section(profile, nb)
    for key, value in overrides.items():
        base = values.get(key)
        values[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    where = f"{profile_path(profile)} [{nb}]" + (f" with overrides {sorted(overrides)}" if overrides else "")
    return check(nb, values, where=where)


def side_by_side(profile: str, cores: int | None = None) -> int:
    """How many notebooks `make reproduce` runs at once by default (`runner jobs`): one per core, at most as many as
    can run at once (those that read no other notebook's checkpoints); one where the profile trains on a GPU, which
    they would share.

    One torch thread per core spends no CPU keeping threads in step: the notebooks side by side, each on its share
    of the cores, cost less CPU than one after another on every core (docs/reproduce.md, "Where the minutes go")."""
    devices = {resolve(n.name, profile)["device"] for n in NOTEBOOK_TABLE}
    if any(d.startswith("cuda") for d in devices):
        return 1
    if "auto" in devices:
        # torch: imported only for a profile that may use a GPU
        from emolib.core.runtime import resolve_device
        if resolve_device("auto").type != "cpu":
            return 1
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, min(cores, sum(not n.reads_checkpoints for n in NOTEBOOK_TABLE)))
