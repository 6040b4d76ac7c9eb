"""The training block of notebooks 02-04 as one call, shared with `emolib train`.

    trained = experiment.train_notebook(cfg, data, run)   # cfg, data, run from session.setup

For the notebook's validated config it seeds, creates the model(s), freezes what the recipe
freezes, builds TrainConfig from the profile's ``train`` section(s), the two FaceLoaders on the
resolved device, calls `emolib.training.loop.fit`, and evaluates each trained model on the test split.
Notebook 03 trains each backbone in two stages (the head on a frozen backbone, then the deepest
stages too), from its ImageNet weights and, with the same recipe and budget, from a random
initialization (`<model>_scratch`), so the report can show what pretraining is worth; 02 and 04
train one model. The notebook then only shows and plots, and the command
line writes the same metrics (`notebook_metrics`). The building blocks (`create_model`,
`train_model`) are public for a notebook that composes its own plan (e.g. a from-scratch twin).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from emolib import models
from emolib.core import paths, runtime
from emolib.core.settings import TrainConfig
from emolib.data.arrays import FaceArrays
from emolib.models.transfer import freeze_backbone, unfreeze_last
from emolib.research import results
from emolib.research.notebooks import TRAINING_NOTEBOOKS, CNNBaseline, TransferLearning, ViTFinetune
from emolib.training import evaluate
from emolib.training.loader import AugmentConfig, FaceLoader
from emolib.training.loop import fit

__all__ = ["Trained", "comparison_notes", "compared_models", "create_model", "notebook_metrics", "pretraining_verdicts",
           "train_model", "train_notebook", "transfer_inits"]


@dataclass
class Trained:
    """One trained model (or one stage of one), as `train_notebook` returns it."""
    name: str                       # its checkpoint folder: the model's name, or "<model>-head" (03's stage 1)
    model_name: str                 # the registry name
    model: nn.Module = field(repr=False)   # best weights restored; 03's two stages share one module
    history: dict = field(repr=False)
    out_dir: Path | None
    trainable_params: int
    stage: str | None = None        # 03: "1 head" | "2 fine-tune"
    test: dict | None = field(default=None, repr=False)   # test-split metrics taken right after this stage
    # near_duplicates: drop_from_eval: the same on the standard protocol's whole test split (`test` is de-duplicated)
    test_standard: dict | None = field(default=None, repr=False)
    init: str | None = None         # 03: "pretrained" (ImageNet) | "scratch" (random weights)


def create_model(name: str, num_classes: int, *, seed: int, pretrained: bool = False,
                 substitute: Callable[[str], None] | None = None, **kwargs) -> nn.Module:
    """Seed, then create: the initial weights (a new head's too) are a pure function of `seed`.

    substitute(line): a dry run's (`Run.substitute`): ImageNet weights that are not on this machine become a
    random initialization instead of a download, and `line` says so."""
    runtime.seed_everything(seed)
    if pretrained and substitute is not None and (line := _missing_imagenet_weights(name)):
        substitute(line)
        pretrained = False
    return models.create(name, num_classes=num_classes, pretrained=pretrained, **kwargs)


def _missing_imagenet_weights(name: str) -> str | None:
    """What a dry run says when `name`'s ImageNet weights are not on disk; None when they are (or are not
    ImageNet weights: an emotion model is what it is)."""
    w = models.entry(name).weights
    if w is None or w.predicts_emotions or (paths.assets_dir() / w.filename).exists():
        return None
    return (f"{name}: {w.dataset} weights are not on this machine ({w.filename} not in {paths.assets_dir()}); "
            "a RANDOM INITIALIZATION stands in for them")


def train_model(net: nn.Module, data: FaceArrays, train: dict, *, seed: int = 0, device: str = "auto",
                out_dir=None, augment: dict | None = None, balanced: bool = False, options: dict | None = None,
                val_batch_size: int = 256, log: Callable[[str], None] | None = None, **fit_kw) -> dict:
    """Train `net` on data's train split, selecting on its val split; returns fit's history.

    `train`: a profile's TrainConfig section; `seed`, `device`, `out_dir` and then `options` (any
    TrainConfig fields, e.g. progress, resume) are set on top of it. The training loader takes
    ``batch_size`` rows per process, augmented by `augment` (AugmentConfig fields), class-balanced if asked.
    log(line): told what is about to train (the command line prints it).
    """
    tcfg = TrainConfig.from_dict({**train, "seed": seed, "device": device,
                                  "out_dir": None if out_dir is None else str(out_dir), **(options or {})})
    dev = runtime.resolve_device(tcfg.device)
    if log is not None:
        world = runtime.world_size()
        log(f"{getattr(net, 'model_name', type(net).__name__)}: {tcfg.epochs} epochs, {world} process(es) x batch "
            f"{tcfg.batch_size} = global batch {world * tcfg.batch_size}, on {dev}; checkpoints in {tcfg.out_dir}")
    train_loader = FaceLoader(data.split("train"), net.spec, tcfg.batch_size, train=True, seed=seed, device=dev,
                              augment=AugmentConfig.from_dict(augment or {}), balanced=balanced)
    val_loader = FaceLoader(data.split("val"), net.spec, val_batch_size, device=dev)
    return fit(net, train_loader, val_loader, tcfg, **fit_kw)


def _trainable(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def transfer_inits(cfg: TransferLearning) -> tuple[str, ...]:
    """03's initializations: ImageNet and its from-scratch twin, or scratch alone without pretrained."""
    return ("pretrained", "scratch") if cfg.pretrained else ("scratch",)


@dataclass
class Stage:
    """One training run of a notebook's plan."""
    name: str                                   # its checkpoint folder
    stage: str | None                           # 03: "1 head" | "2 fine-tune"
    init: str | None                            # 03: "pretrained" | "scratch"
    make: Callable[[], nn.Module] | None        # builds the model; None: train on the previous stage's model
    prepare: Callable[[nn.Module], None] | None # freezes what the stage freezes
    section: dict                               # the profile's TrainConfig section
    tta: str | None = None                      # test-time augmentation of the test metrics


def _stages(cfg, data: FaceArrays, substitute: Callable[[str], None] | None = None):
    """The notebook's plan, one `Stage` per training run, in order."""
    n = len(data.classes)
    if isinstance(cfg, CNNBaseline):
        yield Stage(cfg.model, None, None, lambda: create_model(cfg.model, n, seed=cfg.seed), None, cfg.train, cfg.tta)
    elif isinstance(cfg, ViTFinetune):
        def prepare(net):    # None: every block trains (a ViT from random weights has nothing to keep)
            if cfg.unfreeze_blocks is not None:
                unfreeze_last(freeze_backbone(net), cfg.unfreeze_blocks)
        yield Stage(cfg.model, None, None, lambda: create_model(cfg.model, n, seed=cfg.seed, pretrained=cfg.pretrained,
                                                                substitute=substitute), prepare, cfg.train)
    elif isinstance(cfg, TransferLearning):
        inits = transfer_inits(cfg)
        def fine_tune(net):  # unfreeze_stages None: every feature stage
            deep = len(net.stage_names) if cfg.unfreeze_stages is None else cfg.unfreeze_stages
            unfreeze_last(freeze_backbone(net), deep)
        for name in cfg.models:
            for init in inits:
                run = f"{name}_scratch" if init == "scratch" and len(inits) > 1 else name
                make = lambda name=name, init=init: create_model(  # noqa: E731
                    name, n, seed=cfg.seed, pretrained=init == "pretrained", input_size=cfg.input_size,
                    substitute=substitute)
                yield Stage(f"{run}-head", "1 head", init, make, lambda net: unfreeze_last(freeze_backbone(net), 0),
                            cfg.head_train)
                yield Stage(run, "2 fine-tune", init, None, fine_tune, cfg.finetune_train)
    else:
        raise TypeError(f"{type(cfg).__name__} is not the config of a training notebook ({', '.join(TRAINING_NOTEBOOKS)})")


def train_notebook(cfg, data: FaceArrays, run=None, *, options: dict | None = None, test: bool = True,
                   log: Callable[[str], None] | None = None, **fit_kw) -> list[Trained]:
    """Everything notebook 02, 03 or 04 trains, for its validated config (`session.setup`).

    run: the report (`session.setup`'s `Run`): where each model writes best.pt/last.pt
    (`Run.checkpoint_dir`), whether bars show, and a dry run's substitutions; None writes no checkpoints.
    `options`: TrainConfig fields set on every run (resume, progress, ...).
    test: evaluate each model on the test split right after it trained (`Trained.test`).
    fit_kw go to `emolib.training.loop.fit` (e.g. on_epoch_end, stop_after).
    """
    if run is not None and run.headless:           # a bar in a static report is noise
        options = {"progress": False, **(options or {})}
    out, net = [], None
    for st in _stages(cfg, data, substitute=None if run is None else run.substitute):
        net = st.make() if st.make is not None else net
        if st.prepare is not None:
            st.prepare(net)
        out_dir = run.checkpoint_dir(st.name) if run is not None else None
        history = train_model(net, data, st.section, seed=cfg.seed, device=cfg.device, out_dir=out_dir,
                              augment=cfg.augment, balanced=getattr(cfg, "balanced", False), options=options,
                              log=log, context=_run_context(run, st), **fit_kw)
        done = Trained(st.name, net.model_name, net, history, out_dir, _trainable(net), st.stage, init=st.init)
        if test:
            done.test = evaluate.evaluate(net, data.split("test"), tta=st.tta)
            if run is not None and run.standard_test is not None:
                done.test_standard = evaluate.evaluate(net, run.standard_test, tta=st.tta)
            _record_in_checkpoint(out_dir, st.section, done, data)
        out.append(done)
        if done.test is not None and history.get("tensorboard_dir") and runtime.is_main():
            from emolib.research import tensorboard_figures  # plots and Grad-CAM: only where a logger is asked for
            tensorboard_figures.log_test(history["tensorboard_dir"], net, data.split("test"), done.test,
                                         step=history["completed_epochs"])
    return out


def _run_context(run, st: Stage) -> dict | None:
    """What config.yaml says of a notebook's run beside its training section (`emolib.training.run_files`)."""
    if run is None:
        return None
    return {"notebook": run.notebook, "profile": run.profile, "kind": run.kind, "stage": st.stage, "init": st.init,
            "data": {k: run.data.get(k) for k in ("source", "fingerprint", "n", "classes")},
            "overrides": run.overrides, "section": run.config}


def _record_in_checkpoint(out_dir: Path | None, section: dict, done: Trained, data: FaceArrays) -> None:
    """best.pt says its test figures, size, best epoch and data (`emolib models` shows them), when the model just
    tested holds best.pt's weights (fit restored them) and this is the process that writes files."""
    from emolib.models.checkpoint import record_evaluation
    best = Path(out_dir) / "best.pt" if out_dir is not None else None
    if best is None or not best.is_file() or not section.get("restore_best", True) or not runtime.is_main():
        return
    record_evaluation(best, done.test, data={"source": data.source, "fingerprint": data.fingerprint, "n": len(data)},
                      parameters=results.count_parameters(done.model), best_epoch=done.history.get("best_epoch"))


def notebook_metrics(cfg, trained: list[Trained]) -> tuple[dict, dict]:
    """(metrics, headline) as the notebook writes them with `Run.write_metrics` (the CLI writes the same).

    metrics["results"]: the notebook's rows of the index's results table (`emolib.research.results.result_row`)."""
    if isinstance(cfg, TransferLearning):
        rows = [{"model": t.model_name, "init": t.init, "stage": t.stage, "trainable_params": t.trainable_params,
                 "best_val_acc": t.history["best_metric"], "test_accuracy": t.test["accuracy"],
                 "test_macro_f1": t.test["macro_f1"], "test_ece": t.test["ece"], "ms_per_face": t.test["ms_per_face"],
                 **_standard_protocol(t)} for t in trained]
        final = {(r["model"], r["init"]): r for r in rows if r["stage"] == "2 fine-tune"}
        inits = transfer_inits(cfg)
        headline = {**{f"{m}_{i}_test_accuracy": final[m, i]["test_accuracy"] for m in cfg.models for i in inits},
                    **{f"{m}_{i}_test_macro_f1": final[m, i]["test_macro_f1"] for m in cfg.models for i in inits},
                    **{f"{m}_{i}_test_accuracy_standard_protocol": final[m, i]["test_accuracy_standard_protocol"]
                       for m in cfg.models for i in inits if trained[0].test_standard is not None}}
        histories = {f"{t.name.removesuffix('-head')} stage {t.stage}": t.history for t in trained}
        return {"results": _result_rows(cfg, [t for t in trained if t.stage == "2 fine-tune"]), "stages": rows,
                "histories": histories}, headline
    [t] = trained
    metrics = {"results": _result_rows(cfg, trained), "test": t.test, "history": t.history}
    if t.test_standard is not None:
        metrics["test_standard_protocol"] = t.test_standard
    if isinstance(cfg, ViTFinetune):
        metrics["trainable_params"] = t.trainable_params
    return metrics, {"test_accuracy": t.test["accuracy"], "test_macro_f1": t.test["macro_f1"],
                     "test_ece": t.test["ece"], "best_val_accuracy": t.history["best_metric"], **_standard_protocol(t)}


def _result_rows(cfg, trained: list[Trained]) -> list[dict]:
    """The rows of the results table (`emolib.research.results`): one per trained model, 03's at its final stage."""
    return [results.result_row(model=t.model_name, init=results.init_name(t.model_name, _pretrained(cfg, t)),
                               test=t.test, classes=t.test["classes"], parameters=results.count_parameters(t.model),
                               best_epoch=t.history.get("best_epoch"), checkpoint=t.history.get("best_checkpoint"))
            for t in trained]


def _pretrained(cfg, t: Trained) -> bool:
    """Whether `t` started from pretrained weights: 03 says per run, 04 in its config, 02 trains from scratch."""
    if t.init is not None:
        return t.init == "pretrained"
    return bool(getattr(cfg, "pretrained", False))


def _standard_protocol(t: Trained) -> dict:
    """near_duplicates: drop_from_eval: test accuracy on the standard protocol's whole test split too (`test_*` are
    then the de-duplicated split's); nothing otherwise."""
    return {} if t.test_standard is None else {"test_accuracy_standard_protocol": t.test_standard["accuracy"]}


def pretraining_verdicts(cfg: TransferLearning, rows: list[dict]) -> str:
    """03's conclusion, one paragraph per backbone (Markdown): does its ImageNet initialization beat training from
    scratch on the validation split in the same budget? `rows`: `notebook_metrics`' "stages"."""
    final = {(r["model"], r["init"]): r for r in rows if r["stage"] == "2 fine-tune"}
    lines = []
    for m in cfg.models:
        pre, scr = final[m, "pretrained"], final[m, "scratch"]
        verdict = "wins" if pre["best_val_acc"] > scr["best_val_acc"] else "does not win"
        lines.append(f"**{m}**: ImageNet initialization {verdict} on the validation split in the same budget "
                     f"(val {pre['best_val_acc']:.3f} vs {scr['best_val_acc']:.3f} from scratch; "
                     f"test {pre['test_accuracy']:.3f} vs {scr['test_accuracy']:.3f}).")
    return "\n\n".join(lines)


def compared_models(cfg, run, classes, device: str) -> dict[str, nn.Module]:
    """05's models by name: the best checkpoint of each of `cfg.runs` ("<notebook>/<model>", named by its model;
    `run.trained_checkpoint` finds it), then each of `cfg.pretrained_models` as it comes: its own outputs restricted
    to `classes` and renormalized, no head trained or initialized anew."""
    from emolib.inference.classifier import load_classifier
    from emolib.models import checkpoint
    from emolib.models.subset import restrict_classes
    nets = {r.split("/")[1]: checkpoint.load_model(run.trained_checkpoint(r), device=device)[0] for r in cfg.runs}
    for m in cfg.pretrained_models:
        net, own_classes, _ = load_classifier(m, device)
        nets[m] = restrict_classes(net, classes, own_classes)
    return nets


def comparison_notes(cfg, nets: dict[str, nn.Module], classes) -> list[str]:
    """What a reader of 05's comparison must know (Markdown paragraphs): a pretrained model scored on fewer
    classes than it was trained on, and a model trained on real faces applied to synthetic ones."""
    notes = []
    for m in cfg.pretrained_models:
        if own := getattr(nets[m], "restricted_from", None):
            notes.append(f"**Note.** {m} outputs the {len(own)} classes it was trained on ({', '.join(own)}); scored "
                         f"on this {len(classes)}-class split, its probabilities are renormalized over "
                         f"{', '.join(classes)} (its other outputs dropped). No head is trained or initialized anew.")
    if cfg.source == "synthetic" and cfg.pretrained_models:
        notes.append(f"**Note.** {', '.join(cfg.pretrained_models)} was trained on real FER2013 faces and is applied "
                     "here to drawn synthetic faces it has never seen: its low scores say nothing about real photos "
                     "(notebook 06 runs it on a real one).")
    return notes

