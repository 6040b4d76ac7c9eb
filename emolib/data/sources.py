"""`load`: the one entry point for every data source, decoded once and cached.

    load("synthetic", n=6000, seed=0)              # offline default, deterministic
    load("fer2013")                                # data/raw/fer2013, the kagglehub cache, or a download
    load("fer2013", "path/to/fer2013.csv")         # or icml_face_data.csv, or a folder release root
    load("folder", "path/to/root")                 # any root/<split>/<class>/*.png|jpg tree
    load("ferplus", "path/to/folder", label_mode="crossentropy")   # fer2013new.csv + fer2013.csv, joined by row
"""
from __future__ import annotations

import ast
import hashlib
import inspect
from functools import partial
from pathlib import Path

from emolib.data import cache as array_cache
from emolib.data.arrays import FaceArrays
from emolib.data.errors import DataFormatError, DataOptionsError
from emolib.data.fer2013 import CSV_NAMES, read_csv
from emolib.data.ferplus import LABEL_MODES, locate_ferplus, read_ferplus
from emolib.data.folder import read_folder, split_dirs
from emolib.data.kaggle import DEFAULT_HANDLE, resolve_fer2013

SOURCES = ("synthetic", "fer2013", "folder", "ferplus")


def load(source: str = "synthetic", path: str | Path | None = None, *, handle: str = DEFAULT_HANDLE,
         download: bool = True, cache: bool = True, **options) -> FaceArrays:
    """Decode `source` into FaceArrays (uint8 N×48×48, canonical labels, splits), reusing the cache.

    `options` go to the source: ``synthetic.generate`` parameters (n, seed, …) for "synthetic";
    ``val_frac``/``seed`` (used only when a folder tree has no val split) for "fer2013" and "folder";
    ``label_mode`` (`emolib.data.ferplus.LABEL_MODES`) and ``contempt`` (8 classes, or 7) for "ferplus".
    `download` lets "fer2013" without a `path` call kagglehub when no local or cached copy exists.
    """
    if source == "synthetic":
        if path is not None:
            raise DataOptionsError("source 'synthetic' takes no path")
        arrays = _load_synthetic(options, use_cache=cache)
    elif source == "fer2013":
        arrays = _load_local(locate_fer2013(resolve_fer2013(handle, path, download=download)),
                             "fer2013", options, use_cache=cache)
    elif source == "folder":
        if path is None:
            raise DataOptionsError("source 'folder' needs path=<root of a root/<split>/<class>/ tree>")
        arrays = _load_local(("folder", Path(path)), "folder", options, use_cache=cache)
    elif source == "ferplus":
        arrays = _load_ferplus(*locate_ferplus(path), options, use_cache=cache)
    else:
        raise DataOptionsError(f"unknown data source {source!r}; choose from {SOURCES}")
    if len(arrays) == 0:
        raise DataFormatError(f"source {arrays.source or source!r} yielded no images")
    return arrays


def locate_fer2013(path: Path) -> tuple[str, Path]:
    """Which FER2013 form lives at `path`: ("csv", file) or ("folder", release root)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataFormatError(f"{path}: a FER2013 file must be a CSV ({' or '.join(CSV_NAMES)})")
        return "csv", path
    for depth in range(3):                      # kagglehub and hand-made folders nest a level or two
        for name in CSV_NAMES:
            hits = sorted(path.glob("/".join(["*"] * depth + [name])))
            if hits:
                return "csv", hits[0]
        for d in sorted([path] if depth == 0 else path.glob("/".join(["*"] * depth))):
            if d.is_dir() and split_dirs(d):
                return "folder", d
    raise DataFormatError(f"{path}: no FER2013 here; expected {' or '.join(CSV_NAMES)}, or train/ and test/ "
                          f"folders with one subfolder per class")


def _load_local(located: tuple[str, Path], source: str, options: dict, *, use_cache: bool) -> FaceArrays:
    form, p = located
    p = p.resolve()
    if form == "csv":
        if options:
            raise DataOptionsError(f"{p}: a FER2013 CSV takes no data options, got {sorted(options)}")
        build = partial(read_csv, p)
    else:
        unknown = set(options) - {"val_frac", "seed", "workers"}
        if unknown:
            raise DataOptionsError(f"{p}: unexpected options for a folder source: {sorted(unknown)} "
                                   "(it takes val_frac, seed, workers)")
        options = {"val_frac": 0.1, "seed": 0, **options}     # explicit defaults: one cache file either way
        build = partial(read_folder, p, **options)
    decode_opts = {k: v for k, v in options.items() if k != "workers"}
    kind = f"{source}-{form}"
    arrays = array_cache.load_or_build(kind, [str(p), decode_opts], array_cache.files_fingerprint(p), build,
                                 use_cache=use_cache)
    arrays.source = f"{kind}:{p}"
    return arrays


def _load_ferplus(votes: Path, fer: Path, options: dict, *, use_cache: bool) -> FaceArrays:
    if unknown := set(options) - {"label_mode", "contempt"}:
        raise DataOptionsError(f"unexpected options for the ferplus source: {sorted(unknown)} (it takes label_mode, contempt)")
    options = {"label_mode": "majority", "contempt": True, **options}   # explicit defaults: one cache file either way
    if options["label_mode"] not in LABEL_MODES or not isinstance(options["contempt"], bool):
        raise DataOptionsError(f"ferplus: label_mode must be one of {', '.join(LABEL_MODES)} and contempt true or "
                               f"false, got {options}")
    votes, fer = votes.resolve(), fer.resolve()
    fingerprint = array_cache.digest([array_cache.files_fingerprint(votes), array_cache.files_fingerprint(fer)])
    arrays = array_cache.load_or_build("ferplus-csv", [str(votes), str(fer), options], fingerprint,
                                       partial(read_ferplus, votes, fer, **options), use_cache=use_cache)
    arrays.source = f"ferplus-csv:{votes}+{fer.name}"
    return arrays


def _code_digest(module) -> str:
    """A module's code without its imports and layout: where the names it imports live, and how its lines
    are formatted, do not change what it generates."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    tree.body = [node for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom))]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def _load_synthetic(options: dict, *, use_cache: bool) -> FaceArrays:
    from emolib.data import (  # on use: loading a CSV never builds the generator's tables
        splits,
        synthetic,
        synthetic_draw,
    )
    params = {name: par.default for name, par in inspect.signature(synthetic.generate).parameters.items()
              if par.default is not inspect.Parameter.empty}
    unknown = set(options) - set(params)
    if unknown:
        raise DataOptionsError(f"unexpected options for synthetic.generate: {sorted(unknown)}; accepted: {sorted(params)}")
    params.update(options)
    # The generator's own code (and the split it draws with) is part of its version: an edited
    # generator never serves stale arrays.
    version = [synthetic.GENERATOR_VERSION, *(_code_digest(m) for m in (synthetic, synthetic_draw, splits))]
    fingerprint = array_cache.digest({"params": params, "generator": version})
    arrays = array_cache.load_or_build("synthetic", params, fingerprint, lambda: synthetic.generate(**params),
                                 use_cache=use_cache)
    return arrays
