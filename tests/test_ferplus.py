"""FER+ (fer2013new.csv joined by position to fer2013.csv): the reference's label rules on hand-computed rows,
the source on a format-faithful pair of files (rows without an image name, names drifting from the row index,
9-vote rows, ties, contempt and unknown majorities), a name-based join caught by the Usage check, soft targets
in training, and (slow) every notebook of the ferplus profile as a dry run."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from emolib import models
from emolib.cli import main
from emolib.core.labels import ALL_EMOTIONS, COLORS, EMOJI, EMOTIONS
from emolib.data import DataFormatError, DataOptionsError, DatasetUnavailable, load
from emolib.data.ferplus import FERPLUS_CSV, VOTE_COLUMNS, process_votes, row_target
from emolib.inference.draw import emotion_color
from emolib.inference.emoji import emoji_sprite
from emolib.models.checkpoint import load_checkpoint, save_checkpoint
from emolib.research import dryrun, runner, session
from emolib.training.augment import AugmentConfig
from emolib.training.evaluate import evaluate, predict
from emolib.training.loader import FaceLoader
from emolib.training.loop import MultiTargetLoss, TrainConfig, build_criterion, fit, train_one_epoch

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_fer import make_faces, write_fer_csv, write_msambare  # noqa: E402

# FER+ vote columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
FERPLUS_COLUMN = {"neutral": 0, "happy": 1, "surprise": 2, "sad": 3, "angry": 4, "disgust": 5, "fear": 6,
                  "contempt": 7}
HEADER = "Usage,Image name," + ",".join(VOTE_COLUMNS)
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}

# Rows of the fixture with hand-written votes (position in both files -> votes); the others get clean votes.
NOT_A_FACE = (5, 40)                           # empty Image name, NF = 10: dropped and counted
SPECIAL = {
    7: [0, 6, 0, 3, 0, 0, 0, 0, 0, 0],         # nine votes: happy 6 of 9
    8: [4, 4, 0, 2, 0, 0, 0, 0, 0, 0],         # a tie: no majority; crossentropy neutral/happy 1/2 each
    9: [2, 0, 0, 0, 0, 0, 0, 6, 0, 0],         # contempt majority
    10: [2, 0, 0, 0, 0, 0, 0, 0, 6, 2],        # unknown majority: dropped in every mode
    11: [5, 1, 1, 1, 1, 1, 0, 0, 0, 0],        # a majority only once single votes are removed
    12: [0, 4, 3, 2, 1, 0, 0, 0, 0, 0],        # soft: crossentropy happy 4/7, surprise 3/7
}


def dist(**shares) -> np.ndarray:
    """A distribution over the eight FER+ classes in canonical order, from class=share."""
    out = np.zeros(len(ALL_EMOTIONS))
    for name, share in shares.items():
        out[ALL_EMOTIONS.index(name)] = share
    return out


def clean_votes(label: int, row: int) -> list[int]:
    """Votes with a clear majority for FER2013's `label`; every 9th row is contempt instead (all splits get some)."""
    name = "contempt" if row % 9 == 4 else EMOTIONS[label]
    votes = [0] * 10
    votes[FERPLUS_COLUMN[name]] += 8
    votes[0] += 2
    return votes


def ferplus_rows(faces) -> list[tuple[str, str, list[int]]]:
    """(Usage, Image name, votes) per row of `faces`; names count faces only, so they drift from the row index."""
    rows, named = [], 0
    for i, (label, split) in enumerate(zip(faces.labels, faces.splits)):
        if i in NOT_A_FACE:
            rows.append((USAGE[str(split)], "", [0] * 9 + [10]))
            continue
        rows.append((USAGE[str(split)], f"fer{named:07d}.png", SPECIAL.get(i) or clean_votes(int(label), i)))
        named += 1
    return rows


def write_ferplus(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER] + [f"{u},{n}," + ",".join(map(str, v)) for u, n, v in rows]) + "\n")
    return path


def write_pair(folder: Path, style: str = "fer2013"):
    """fer2013new.csv and fer2013.csv (or icml_face_data.csv) side by side; returns (faces, FER+ rows)."""
    faces = make_faces((10, 2, 2), seed=1)
    write_fer_csv(folder / ("fer2013.csv" if style == "fer2013" else "icml_face_data.csv"), faces, style=style)
    rows = ferplus_rows(faces)
    write_ferplus(folder / FERPLUS_CSV, rows)
    return faces, rows


def row_of(arrays, faces, i) -> int:
    """Where row `i` of the files landed in the loaded arrays (found by its pixels), or -1 when dropped."""
    hits = np.flatnonzero((arrays.images == faces.images[i]).all(axis=(1, 2)))
    return int(hits[0]) if hits.size else -1


# ----------------------------------------------------------------------------------- (b) the label rules

def test_single_votes_are_removed_before_any_rule():
    votes = [5, 1, 1, 1, 1, 1, 0, 0, 0, 0]       # 5 of 10: no majority as counted, 5 of 5 once the 1s go
    for mode in ("majority", "probability", "crossentropy", "multi_target"):
        label, target = row_target(votes, mode)
        assert ALL_EMOTIONS[label] == "neutral"
        np.testing.assert_allclose(target, dist(neutral=1))


def test_majority_needs_more_than_half_and_an_emotion():
    assert ALL_EMOTIONS[row_target([0, 6, 0, 3, 0, 0, 0, 0, 0, 0], "majority")[0]] == "happy"   # 6 of 9
    assert row_target([4, 4, 0, 2, 0, 0, 0, 0, 0, 0], "majority") is None                    # a tie
    assert row_target([0, 5, 0, 0, 0, 0, 0, 0, 5, 0], "majority") is None                    # 5 of 10 is not more
    assert row_target([2, 0, 0, 0, 0, 0, 0, 0, 6, 2], "majority") is None                    # unknown
    assert row_target([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], "majority") is None                   # not a face
    label, target = row_target([2, 0, 0, 0, 0, 0, 0, 6, 0, 0], "majority")
    assert ALL_EMOTIONS[label] == "contempt" and label == 7
    np.testing.assert_allclose(target, dist(contempt=1))


@pytest.mark.parametrize("mode", ["probability", "crossentropy"])
def test_the_distribution_keeps_the_top_emotions_until_three_quarters(mode):
    # 1 goes; of 9: happy 4 (< 6.75), then surprise 3 (7 >= 6.75): stop
    label, target = row_target([0, 4, 3, 2, 1, 0, 0, 0, 0, 0], mode)
    assert ALL_EMOTIONS[label] == "happy"
    np.testing.assert_allclose(target, dist(happy=4 / 7, surprise=3 / 7))
    # a tie at the top joins together; the label is the first of them in FER+'s column order (neutral)
    label, target = row_target([4, 4, 0, 2, 0, 0, 0, 0, 0, 0], mode)
    assert ALL_EMOTIONS[label] == "neutral"
    np.testing.assert_allclose(target, dist(neutral=0.5, happy=0.5))
    # neutral and happy (6 of 10), then surprise joins; unknown, tied with it, does not (emotions came first)
    np.testing.assert_allclose(row_target([3, 3, 2, 0, 0, 0, 0, 0, 2, 0], mode)[1],
                               dist(neutral=3 / 8, happy=3 / 8, surprise=2 / 8))
    np.testing.assert_allclose(process_votes([3, 3, 2, 0, 0, 0, 0, 0, 2, 0], mode),
                               [3 / 8, 3 / 8, 2 / 8, 0, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("mode", ["probability", "crossentropy"])
def test_the_distribution_drops_rows_with_too_many_emotions_too_few_votes_or_unknown_on_top(mode):
    assert row_target([3, 3, 2, 2, 0, 0, 0, 0, 0, 0], mode) is None     # four emotions before 75%
    assert row_target([2, 0, 0, 0, 0, 0, 0, 0, 2, 0], mode) is None     # neutral alone holds only half
    assert row_target([2, 0, 0, 0, 0, 0, 0, 0, 6, 2], mode) is None     # unknown on top
    assert row_target([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], mode) is None     # no votes left at all


def test_multi_target_takes_every_emotion_with_three_tenths():
    label, target = row_target([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], "multi_target")   # 2 of 10 is under 30%
    assert ALL_EMOTIONS[label] == "neutral"
    np.testing.assert_allclose(target, dist(neutral=0.5, happy=0.5))
    label, target = row_target([0, 4, 3, 2, 1, 0, 0, 0, 0, 0], "multi_target")   # 3 of 9 is over 30%
    np.testing.assert_allclose(target, dist(happy=0.5, surprise=0.5))
    assert row_target([3, 3, 2, 2, 0, 0, 0, 0, 0, 0], "multi_target")[1].tolist() == (dist(neutral=.5, happy=.5)).tolist()
    assert row_target([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], "multi_target") is None          # 0 kept of 10


def test_without_contempt_its_rows_go_and_the_rest_is_renormalized():
    assert row_target([2, 0, 0, 0, 0, 0, 0, 6, 0, 0], "majority", contempt=False) is None
    label, target = row_target([0, 5, 0, 0, 0, 0, 0, 3, 0, 0], "crossentropy", contempt=False)
    assert ALL_EMOTIONS[label] == "happy" and len(target) == 7
    np.testing.assert_allclose(target, dist(happy=1)[:7])
    np.testing.assert_allclose(row_target([0, 5, 0, 0, 0, 0, 0, 3, 0, 0], "crossentropy")[1],
                               dist(happy=5 / 8, contempt=3 / 8))


# ----------------------------------------------------------------------------------- the source

@pytest.mark.parametrize("style", ["fer2013", "icml"])
def test_the_source_joins_by_position_and_drops_what_is_not_a_face(tmp_path, style):
    faces, rows = write_pair(tmp_path / "ferplus", style)
    arrays = load("ferplus", tmp_path / "ferplus", cache=False)
    assert arrays.classes == ALL_EMOTIONS and arrays.label_mode == "majority"
    assert [line for line, _ in arrays.skipped] == [f"{FERPLUS_CSV} line {i + 2}" for i in NOT_A_FACE]
    dropped = {8, 10, 12}                                # no majority (a tie, 4 of 9) and the unknown majority
    assert len(arrays) == len(faces) - len(NOT_A_FACE) - len(dropped)
    for i in range(3, len(faces)):                       # rows 0-2: the fixture's blank and duplicated faces
        at = row_of(arrays, faces, i)
        if i in NOT_A_FACE or i in dropped:
            assert at == -1, i
            continue
        want = {7: "happy", 9: "contempt", 11: "neutral"}.get(i, "contempt" if i % 9 == 4 else EMOTIONS[faces.labels[i]])
        assert ALL_EMOTIONS[arrays.labels[at]] == want, i
        assert arrays.splits[at] == faces.splits[i]
    assert "not a face" in arrays.notes[0] and "majority" in arrays.notes[0]


def test_val_and_test_always_follow_the_majority_rule(tmp_path):
    faces, _ = write_pair(tmp_path)
    arrays = load("ferplus", tmp_path, label_mode="crossentropy", cache=False)
    assert arrays.label_mode == "crossentropy"
    np.testing.assert_allclose(arrays.targets.sum(1), 1, atol=1e-6)
    for split in ("val", "test"):
        part = arrays.split(split)
        np.testing.assert_array_equal(part.targets, np.eye(8, dtype=np.float32)[part.labels])
    soft = arrays.targets[arrays.splits == "train"]
    assert (soft.max(1) < 1).any()                       # e.g. row 12, and the clean rows' 8/10 + 2/10
    if faces.splits[8] == "train":                       # the tie: kept for training, never for evaluation
        assert row_of(arrays, faces, 8) >= 0
    majority = load("ferplus", tmp_path, cache=False)
    for split in ("val", "test"):
        np.testing.assert_array_equal(majority.split(split).labels, arrays.split(split).labels)


def test_seven_classes_without_contempt(tmp_path):
    faces, _ = write_pair(tmp_path)
    arrays = load("ferplus", tmp_path, contempt=False, cache=False)
    assert arrays.classes == EMOTIONS and arrays.targets.shape == (len(arrays), 7)
    assert row_of(arrays, faces, 9) == -1 and row_of(arrays, faces, 13) == -1     # contempt majorities
    eight = load("ferplus", tmp_path, cache=False).subset("all")                  # the same rows
    np.testing.assert_array_equal(eight.labels, arrays.labels)


def test_the_cache_keeps_targets_and_options_pick_their_own_file(tmp_path):
    write_pair(tmp_path)
    first = load("ferplus", tmp_path, label_mode="crossentropy")
    again = load("ferplus", tmp_path, label_mode="crossentropy")
    np.testing.assert_array_equal(first.targets, again.targets)
    assert again.label_mode == "crossentropy" and again.skipped == first.skipped
    assert load("ferplus", tmp_path).label_mode == "majority"


def test_bad_options_are_named(tmp_path):
    write_pair(tmp_path)
    with pytest.raises(DataOptionsError, match="label_mode"):
        load("ferplus", tmp_path, label_mode="vote")
    with pytest.raises(DataOptionsError, match="val_frac"):
        load("ferplus", tmp_path, val_frac=0.1)


# ----------------------------------------------------------------------------------- (d) the join

def test_a_name_based_join_fails_the_usage_check_naming_the_first_row(tmp_path):
    faces, rows = write_pair(tmp_path)
    by_name = sorted(rows, key=lambda r: r[1])            # re-ordered by Image name (the empty names first)
    write_ferplus(tmp_path / FERPLUS_CSV, by_name)
    first = next(i for i, (a, b) in enumerate(zip(rows, by_name)) if a[0] != b[0])
    with pytest.raises(DataFormatError, match=rf"line {first + 2}: Usage '{by_name[first][0]}' but .*fer2013.csv "
                                              rf"line {first + 2} has '{rows[first][0]}'.*by position"):
        load("ferplus", tmp_path, cache=False)


def test_files_of_different_lengths_do_not_join(tmp_path):
    faces, rows = write_pair(tmp_path)
    write_ferplus(tmp_path / FERPLUS_CSV, rows[:-1])
    with pytest.raises(DataFormatError, match=f"{len(rows) - 1} rows but .* has {len(rows)}"):
        load("ferplus", tmp_path, cache=False)


def test_an_image_folder_release_cannot_be_joined(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIB_DATA", str(tmp_path / "data"))
    faces, rows = write_pair(tmp_path / "elsewhere")
    write_ferplus(tmp_path / "data" / "raw" / "ferplus" / FERPLUS_CSV, rows)
    write_msambare(tmp_path / "data" / "raw" / "fer2013", faces)
    with pytest.raises(DatasetUnavailable, match="image-folder release") as e:
        load("ferplus", cache=False)
    assert "fer2013.csv" in str(e.value) and str(tmp_path / "data" / "raw" / "ferplus") in str(e.value)
    write_fer_csv(tmp_path / "data" / "raw" / "fer2013" / "fer2013.csv", faces)   # the CSV in data/raw/fer2013
    assert len(load("ferplus", cache=False)) == len(load("ferplus", tmp_path / "elsewhere", cache=False))


def test_without_fer2013new_the_error_says_where_both_files_go(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIB_DATA", str(tmp_path / "data"))
    with pytest.raises(DatasetUnavailable, match="github.com/microsoft/FERPlus") as e:
        load("ferplus")
    assert str(tmp_path / "data" / "raw" / "ferplus") in str(e.value)


# ----------------------------------------------------------------------------------- (c) soft targets in training

def _train_split(tmp_path, mode):
    write_pair(tmp_path)
    return load("ferplus", tmp_path, label_mode=mode, cache=False).split("train")


def _no_dropout(net):
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return net


def test_crossentropy_trains_against_the_processed_distribution(tmp_path):
    train = _train_split(tmp_path, "crossentropy")
    net = _no_dropout(models.create("cnn_fer", num_classes=8))
    loader = FaceLoader(train, net.spec, 8, train=True, augment=AugmentConfig.none(), seed=3)
    assert loader.target_mode == "crossentropy"
    order = loader.epoch_indices()
    batches = list(loader)
    for b, (x, y) in enumerate(batches):                 # each batch's targets are its rows' distributions
        np.testing.assert_array_equal(y.numpy(), train.targets[order[b * 8:(b + 1) * 8].numpy()])
    cfg = TrainConfig(epochs=1, progress=False, device="cpu")
    criterion = build_criterion(cfg, loader, torch.device("cpu"))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # the weights stay: the loss can be recomputed
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    record = train_one_epoch(net, loader, optimizer, criterion, scaler, cfg, torch.device("cpu"))
    net.train()
    with torch.no_grad():
        per_row = torch.cat([-(y * torch.log_softmax(net(x), 1)).sum(1) for x, y in batches])
    assert record["train_loss"] == pytest.approx(per_row.mean().item(), rel=1e-5)
    # and a few real steps: fit trains on the distributions and selects on val's majority labels
    history = fit(net, loader, FaceLoader(load("ferplus", tmp_path, cache=False).split("val"), net.spec, 16),
                  TrainConfig(epochs=2, max_batches=3, lr=0.01, progress=False, device="cpu"))
    assert history["completed_epochs"] == 2 and np.isfinite(history["train_loss"]).all()


def test_probability_draws_a_label_from_the_distribution_at_each_use(tmp_path):
    train = _train_split(tmp_path, "probability")
    net = models.create("cnn_fer", num_classes=8)
    loader = FaceLoader(train, net.spec, len(train), train=True, augment=AugmentConfig.none(), seed=0)
    soft = np.flatnonzero((train.targets > 0).sum(1) > 1)
    assert loader.target_mode == "probability" and soft.size
    draws = []
    for epoch in range(200):
        loader.set_epoch(epoch)
        order = loader.epoch_indices().numpy()
        y = next(iter(loader))[1].numpy()
        assert (train.targets[order, y] > 0).all()       # only emotions the distribution keeps
        draws.append(y[np.argsort(order)])
    draws = np.array(draws)
    for row in soft:                                     # each kept emotion about as often as its share
        freq = np.bincount(draws[:, row], minlength=8) / len(draws)
        np.testing.assert_allclose(freq, train.targets[row], atol=0.12)
    loader.set_epoch(5)
    np.testing.assert_array_equal(next(iter(loader))[1].numpy(), next(iter(loader))[1].numpy())   # (seed, epoch)


def test_multi_target_loss_is_the_references():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    targets = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    p = torch.softmax(logits, 1)
    want = -(torch.log(p[0, 0]) + torch.log(p[1, 0])) / 2        # the best-predicted target of each row
    assert MultiTargetLoss()(logits, targets).item() == pytest.approx(want.item())
    assert isinstance(build_criterion(TrainConfig(), type("L", (), {"target_mode": "multi_target"})(), "cpu"),
                      MultiTargetLoss)


def test_evaluation_scores_against_the_majority_labels(tmp_path):
    train = _train_split(tmp_path, "crossentropy")
    net = models.create("cnn_fer", num_classes=8)
    probs, labels = predict(net, FaceLoader(train, net.spec, 16, train=True, augment=AugmentConfig.none()))
    assert labels.dtype == np.int64 and set(labels) <= set(range(8))         # a soft loader's top classes
    probs, labels = predict(net, train)                                        # FaceArrays: the labels themselves
    np.testing.assert_array_equal(labels, train.labels)
    assert evaluate(net, train)["classes"] == list(ALL_EMOTIONS)


# ----------------------------------------------------------------------------------- an 8-class checkpoint in use

def test_an_eight_class_checkpoint_runs_in_the_recognizer_and_the_cli(tmp_path, capsys):
    net = models.create("cnn_fer", num_classes=8)
    head = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():                                # whatever the face, contempt (output 7) wins
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0] * 7 + [5.0]))
    ckpt = save_checkpoint(tmp_path / "ferplus_cnn.pt", net, classes=ALL_EMOTIONS, config={}, metrics={})
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["predict", str(photo), "--model", str(ckpt), "--json", "--annotate", str(tmp_path / "out")]) == 0
    face = json.loads(capsys.readouterr().out)[0]["faces"][0]
    assert face["label"] == "contempt" and face["emoji"] == EMOJI["contempt"] and list(face["probs"]) == list(ALL_EMOTIONS)
    assert len(list((tmp_path / "out").iterdir())) == 1
    assert emotion_color("contempt") == COLORS["contempt"] and emoji_sprite("contempt", 32).shape == (32, 32, 4)

# ----------------------------------------------------------------------------------- (a) the profile, dry run

@pytest.mark.slow
def test_a_dry_run_of_the_ferplus_profile_on_a_format_faithful_pair(tmp_path, monkeypatch):
    """Every notebook of the ferplus profile (crossentropy targets, eight classes, 06 on its own best 8-class
    checkpoint) on the fixture pair, found where the real run looks (data/raw/ferplus under $EMOLIB_DATA);
    the smallest caps, since the profile's own models (ResNet-50, ViT-B/16 at 224 px) run on a CPU."""
    write_pair(tmp_path / "data" / "raw" / "ferplus")
    for var, sub in [("EMOLIB_DATA", "data"), ("EMOLIB_CACHE", "cache"), ("EMOLIB_REPORTS", "reports"),
                     ("EMOLIB_MODELS", "models")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv(session.RUNNER_ENV, raising=False)
    runner.dry_run("ferplus", caps=dryrun.Caps(epochs=1, batches=1, batch_size=4, samples=2))
    root = tmp_path / "reports" / "dry-run" / "ferplus"
    metrics = {nb: json.loads((root / "metrics" / f"{nb}.json").read_text()) for nb in runner.NOTEBOOKS}
    assert metrics["01_data_exploration"]["headline"]["classes"] == 8
    data = metrics["02_cnn_baseline"]["data"]
    assert "ferplus" in data["source"] and "crossentropy for train" in data["notes"][0]
    assert metrics["02_cnn_baseline"]["metrics"]["test"]["classes"] == list(ALL_EMOTIONS)
    best = list((tmp_path / "models" / "dry-run" / "ferplus" / "02_cnn_baseline").glob("*/best.pt"))
    assert best and load_checkpoint(best[0])["classes"] == list(ALL_EMOTIONS)
