"""`emolib train NB`: a training notebook's section of a profile, trained from a shell.

    emolib train 02 --profile quick --set train.epochs=3 --out runs/cnn
    torchrun --nproc_per_node=2 -m emolib train 02 --profile quick

The same validated config (`session.setup`: the profile's section with ``--set`` overrides on top),
the same `experiment.train_notebook` as the notebook, the same checkpoints and metrics JSON. Under
torchrun each process joins the process group (`runtime.init_distributed`: gloo on CPUs, NCCL on
GPUs) and `fit` trains with DDP; only rank 0 prints and writes. Ctrl-C or a SIGTERM ends the run with
last.pt holding the last completed epoch; ``--resume`` continues from it.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

# The distributions `emolib train` may import (with what they require): what a cluster's training image holds.
# Notebook-only packages (IPython, ipywidgets, papermill, nbconvert, matplotlib, seaborn, jupyter) stay out; a
# test runs the command where nothing else can be imported.
REQUIRES = ("torch", "torchvision", "numpy", "pyyaml", "pandas", "scikit-learn", "opencv-python", "pillow", "tqdm",
            "kagglehub")
# What `--logger tensorboard` imports besides: the writer (the optional extra `tensorboard`), and for the test figures
# at the end of a run (emolib.research.tensorboard_figures) the plotting and Grad-CAM packages.
LOGGER_REQUIRES = {"tensorboard": ("tensorboard", "matplotlib", "seaborn", "grad-cam")}

EPILOG = """examples:
  emolib train 02 --profile quick
  emolib train 03 --profile quick --set finetune_train.epochs=2 --set device=cpu
  emolib train 02 --out runs/cnn --resume      # continue from runs/cnn/cnn_fer/last.pt
  emolib train 02 --logger tensorboard         # curves in <checkpoints>/tensorboard/ (`make tensorboard`)
  torchrun --nproc_per_node=2 -m emolib train 02 --profile quick

--set KEY=VALUE takes any key of the notebook's section; a dotted key sets one field of a
mapping (train.lr=0.001). VALUE is read as YAML (3, 1.0e-3, true, null, [0.7, 1.0]).
Under torchrun, train.batch_size is per process: the global batch is that times the processes."""


def add_parser(sub) -> None:
    p = sub.add_parser("train", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="train a notebook's model(s) from a profile (02, 03, 04); torchrun for DDP",
                       description="Train what notebook 02, 03 or 04 trains, with its profile section and\n"
                                   "the same code path; checkpoints best.pt/last.pt and the notebook's metrics JSON.",
                       epilog=EPILOG)
    p.add_argument("notebook", metavar="NB", help="02, 03, 04 or the notebook's full name")
    p.add_argument("--profile", "-p", default="quick", help="params/<profile>.yaml (default: quick)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="override one value of the section (repeatable)")
    p.add_argument("--out", metavar="DIR", help="checkpoints in DIR/<model>/, metrics in DIR/metrics/ "
                   "(default: the scratch run folders, models/scratch/<profile>/<notebook>/)")
    p.add_argument("--resume", action="store_true", help="continue each model from its last.pt when it exists")
    p.add_argument("--logger", choices=("tensorboard", "none"), default=None,
                   help="tensorboard: every epoch's scalars, then the test confusion matrix and Grad-CAM images, in "
                        "<model folder>/tensorboard/ (needs: pip install -e .[tensorboard]); default: the profile's "
                        "train.logger")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="under torchrun: seconds a process waits for the others before failing (default: 300)")
    p.set_defaults(func=cmd_train)


def parse_sets(items: list[str]) -> dict:
    """["train.epochs=3", "tta=flip"] -> {"train": {"epochs": 3}, "tta": "flip"} (values read as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as e:
            raise ValueError(f"--set {item!r}: the value is not valid YAML: {e}") from None
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} was set to a value before, not a mapping")
        node[leaf] = value
    return out


@contextmanager
def _sigterm_interrupts():
    """A kill (SIGTERM, also what torchrun sends the others when one process fails) ends the run as Ctrl-C does."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(msg: str) -> None:
    from emolib.core import runtime
    if runtime.is_main():
        print(msg, flush=True)


def _epoch_line(h: dict) -> None:
    _say(f"  epoch {h['completed_epochs']}: train loss {h['train_loss'][-1]:.4f} acc {h['train_acc'][-1]:.4f} | "
             f"val loss {h['val_loss'][-1]:.4f} acc {h['val_acc'][-1]:.4f} macro-F1 {h['val_macro_f1'][-1]:.4f} | "
         f"lr {h['lr'][-1]:.2e} | {h['epoch_time_s'][-1]:.1f} s")


def cmd_train(args) -> int:
    import torch.distributed as dist

    from emolib.cli.common import UsageError
    from emolib.core import runtime
    from emolib.models.checkpoint import CheckpointError
    from emolib.research import profiles, session
    from emolib.research.experiment import notebook_metrics, train_notebook
    from emolib.research.notebooks import TRAINING_NOTEBOOKS
    from emolib.training import ddp, tensorboard
    from emolib.training.state import ResumeError

    try:
        nb = profiles.notebook_name(args.notebook)
        if nb not in TRAINING_NOTEBOOKS:
            raise UsageError(f"{nb} trains nothing; choose one of {', '.join(TRAINING_NOTEBOOKS)}")
        overrides = parse_sets(args.sets)
        session.configure(nb, args.profile, overrides)        # usage errors before any process group
    except (profiles.ConfigError, ValueError) as e:
        raise UsageError(str(e)) from None
    options = {"resume": args.resume}
    if args.logger is not None:
        options["logger"] = None if args.logger == "none" else args.logger
    if options.get("logger") == "tensorboard":
        tensorboard.require()                                  # before any data is loaded

    distributed = runtime.launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1
    out = Path(args.out) if args.out else None
    with _sigterm_interrupts():
        try:
            if distributed:
                cfg = session.configure(nb, args.profile, overrides)
                device = runtime.init_distributed(cfg.device, args.timeout or runtime.DEFAULT_TIMEOUT_S)
                overrides = {**overrides, "device": str(device)}   # this rank's GPU under NCCL
            with ddp.main_first():          # rank 0 builds the data cache, the others then read it
                cfg, data, run = session.setup(nb, args.profile, overrides, output_root=out)
            backend = f", {dist.get_backend()}" if distributed else ""
            _say(f"{nb}, profile {args.profile}: {runtime.world_size()} process(es){backend}")
            trained = train_notebook(cfg, data, run, options=options, on_epoch_end=_epoch_line, log=_say)
            if runtime.is_main():
                run.write_metrics(*notebook_metrics(cfg, trained))
                for t in trained:
                    _say(f"{t.name}{' (' + t.stage + ')' if t.stage else ''}: best epoch {t.history['best_epoch']} "
                         f"(val acc {t.history['best_metric']:.4f}), test accuracy {t.test['accuracy']:.4f}; "
                         f"{t.out_dir / 'best.pt'}")
                _say(f"metrics: {run.output_root / 'metrics' / (nb + '.json')}")
            return 0
        except ResumeError as e:
            raise UsageError(f"--resume: {e}") from None
        except CheckpointError as e:
            if not args.resume:
                raise
            raise UsageError(f"--resume: {e}; delete it to train from scratch") from None
        except KeyboardInterrupt:
            print(f"emolib train: interrupted (rank {runtime.rank()}); last.pt holds the last completed epoch: "
                  "rerun with --resume to continue", file=sys.stderr, flush=True)
            return 130
        except RuntimeError as e:
            if not (distributed and _lost_peer(e)):
                raise
            print(f"emolib train: rank {runtime.rank()} lost the other processes ({type(e).__name__}: "
                  f"{str(e).splitlines()[0][:300]}); last.pt holds the last completed epoch: rerun with "
                  "--resume to continue", file=sys.stderr, flush=True)
            return 1
        finally:
            runtime.destroy_distributed()


def _lost_peer(e: RuntimeError) -> bool:
    """A collective failed because another rank died or stopped answering (gloo and NCCL say so in words)."""
    import torch.distributed as dist
    text = str(e).lower()
    return isinstance(e, dist.DistError) or any(w in text for w in ("connection closed", "connection reset",
                                                                     "timed out", "timeout", "broken pipe", "nccl"))
