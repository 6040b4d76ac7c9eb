"""The near-duplicate audit (emolib.data.near_duplicates): planted copies of each kind are found, unrelated
faces and blank images are not paired, pairs are counted per split pair, and `drop_from_eval` removes exactly
the val/test rows with a train partner and says so."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolib.bench.near_duplicates import KINDS, planted_faces, score
from emolib.data.arrays import FaceArrays
from emolib.data.fixtures import make_faces
from emolib.data.near_duplicates import (
    MAX_SHIFT,
    RADIUS,
    SPLIT_PAIRS,
    audit,
    drop_from_eval,
    hash_variants,
    split_pair,
)


@pytest.fixture(scope="module")
def distinct():
    """Textured faces, none a copy of another (make_faces' blank row and its duplicate left out)."""
    return make_faces(per_class=(6, 0, 0), seed=3, texture=True).images[3:]


def arrays_of(images, splits, labels=None) -> FaceArrays:
    labels = np.zeros(len(images), np.int64) if labels is None else np.asarray(labels, np.int64)
    return FaceArrays(images=np.ascontiguousarray(np.stack(images)), labels=labels,
                      splits=np.array(splits, dtype="<U5"), source="test")


def pairs_of(found) -> set:
    return {(i, j) for i, j, _, _ in found["pairs"]}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_planted_copy_of_each_kind_is_found(distinct, kind):
    rng = np.random.default_rng(0)
    images = list(distinct[:6])
    copies = [KINDS[kind](images[k], rng) for k in range(3)]
    found = audit(arrays_of(images + copies, ["train"] * 6 + ["test"] * 3))
    assert pairs_of(found) == {(0, 6), (1, 7), (2, 8)}


def test_unrelated_faces_are_not_paired(distinct):
    found = audit(arrays_of(list(distinct), ["train"] * len(distinct)))
    assert found["n_pairs"] == 0
    assert found["n_random_pairs"] > 0 and sum(found["random_pair_histogram"][:RADIUS + 1]) == 0


def test_a_look_alike_at_the_hash_scale_fails_the_pixel_check(distinct):
    """Heavy grain over a face keeps its coarse layout (its hash) but not its pixels: not a copy."""
    grain = np.random.default_rng(0).standard_normal((48, 48))
    look_alike = np.clip(distinct[0] + 40 * grain, 0, 255).astype(np.uint8)
    found = audit(arrays_of([distinct[0], look_alike, distinct[1]], ["train", "test", "val"]))
    assert found["n_hash_matches"] == 1 and found["n_pairs"] == 0


def test_a_mirrored_copy_is_found_and_marked(distinct):
    found = audit(arrays_of([distinct[0], distinct[1], distinct[0][:, ::-1]], ["train", "train", "val"]))
    assert found["pairs"] == [[0, 2, 0, 1]]
    assert found["n_mirrored_pairs"] == 1


def test_the_variants_are_the_hashes_of_the_moved_and_mirrored_images(distinct):
    images = distinct[:4]
    variants = hash_variants(images)
    c = MAX_SHIFT
    assert np.array_equal(variants[1, c, c], hash_variants(np.ascontiguousarray(images[:, :, ::-1]))[0, c, c])
    moved = np.stack([cv2.warpAffine(im, np.float32([[1, 0, 2], [0, 1, -1]]), (48, 48),
                                     borderMode=cv2.BORDER_REPLICATE) for im in images])
    assert np.array_equal(variants[0, c - 1, c + 2], hash_variants(moved)[0, c, c])


def test_blank_images_are_left_to_the_blank_check(distinct):
    blank, grey = np.zeros((48, 48), np.uint8), np.full((48, 48), 90, np.uint8)
    found = audit(arrays_of([blank, grey, blank.copy(), distinct[0]], ["train", "test", "val", "train"]))
    assert found["n_pairs"] == 0 and found["n_blank_skipped"] == 3


def test_pairs_are_counted_per_split_pair_and_conflicting_labels_marked(distinct):
    d = distinct
    images = [d[0], d[0], d[1], d[1], d[2], d[2], d[3], d[3], d[4], d[4], d[5]]
    splits = ["train", "val", "train", "test", "val", "test", "train", "train", "test", "test", "val"]
    labels = [0, 0, 1, 2, 3, 3, 4, 4, 5, 6, 0]
    found = audit(arrays_of(images, splits, labels))
    assert found["by_split_pair"] == {"train-train": 1, "train-val": 1, "train-test": 1, "val-val": 0,
                                      "val-test": 1, "test-test": 1}
    assert found["conflicting_by_split_pair"] == {**dict.fromkeys(SPLIT_PAIRS, 0), "train-test": 1, "test-test": 1}
    assert found["images_with_partner"] == {"train": 4, "val": 2, "test": 4}
    assert split_pair("test", "train") == "train-test"


def test_drop_from_eval_removes_exactly_the_eval_rows_with_a_train_partner(distinct):
    d = distinct
    images = [d[0], d[0], d[1], d[1], d[2], d[2], d[3], d[4]]
    splits = ["train", "val", "test", "train", "val", "test", "val", "test"]
    data = arrays_of(images, splits, labels=np.arange(8) % 7)
    found = audit(data)
    kept, record = drop_from_eval(data, found)
    assert record["rows"] == [1, 2] and record["removed"] == {"val": 1, "test": 1}
    assert record["mode"] == "drop_from_eval" and record["radius"] == RADIUS
    assert len(kept) == 6 and kept.labels.tolist() == [0, 3, 4, 5, 6, 0]      # the val-test pair stays
    assert "removed 1 val and 1 test" in kept.notes[-1] and not data.notes


def test_the_bench_scores_a_small_planted_set():
    faces, planted = planted_faces(counts=((30,) * 7, (5,) * 7, (5,) * 7), per_kind=4)
    figures = score(audit(faces), planted, len(faces))
    assert figures["near_dup_recall_planted"] >= 0.9 and figures["near_dup_precision_reported"] == 1.0


def test_the_option_defaults_to_keep_and_the_documented_radius():
    from emolib.research import session
    from emolib.research.notebooks import COMMON_DEFAULTS
    assert COMMON_DEFAULTS == {"near_duplicates": "keep", "near_duplicate_radius": RADIUS}
    cfg = session.configure("01_data_exploration", "smoke")      # smoke.yaml leaves both to the defaults
    assert (cfg.near_duplicates, cfg.near_duplicate_radius) == ("keep", RADIUS)


def test_the_session_drops_and_records(distinct):
    from emolib.research.session import apply_near_duplicates
    data = arrays_of([distinct[0], distinct[0], distinct[1]], ["train", "test", "val"])
    assert apply_near_duplicates(data, "keep", RADIUS) == (data, None)
    kept, record = apply_near_duplicates(data, "drop_from_eval", RADIUS)
    assert len(kept) == 2 and record["removed"] == {"val": 0, "test": 1} and record["rows"] == [1]


def test_the_report_says_where_pairs_come_from(distinct):
    from dataclasses import replace

    from emolib.data.near_duplicates import origin
    data = arrays_of([distinct[0], distinct[0], distinct[1]], ["train", "test", "val"], labels=[1, 1, 2])
    found = audit(data)
    assert origin(data, found).startswith("Each pair is a candidate copy")
    synthetic = replace(data, source="synthetic(seed=0,n=3)")
    assert "never copied, so these 1 pairs" in origin(synthetic, found) and "100% of them share a label" in \
        origin(synthetic, found)
    assert "none of them a copy" in origin(synthetic, audit(arrays_of(list(distinct[:3]), ["train"] * 3)))


def test_drop_from_eval_reports_both_test_figures(tmp_path):
    """`emolib train` (notebook 02's path) with near_duplicates=drop_from_eval: the de-duplicated test figures, the
    standard protocol's beside them, and what was removed in the data info."""
    import json

    from fixtures_fer import make_faces

    from emolib.cli import main
    from emolib.data.fer2013 import write_csv
    csv = write_csv(tmp_path / "fer2013.csv", make_faces())        # rows 1 and 2: one face in train and in test
    assert main(["train", "02", "--profile", "fer2013", "--set", f"data_path={csv}", "--set", "train.epochs=1",
                 "--set", "near_duplicates=drop_from_eval", "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "metrics" / "02_cnn_baseline.json").read_text())
    removed = record["data"]["near_duplicates"]["removed"]
    assert removed["test"] >= 1
    test, standard = record["metrics"]["test"], record["metrics"]["test_standard_protocol"]
    assert sum(map(sum, standard["confusion"])) - sum(map(sum, test["confusion"])) == removed["test"]
    assert record["headline"]["test_accuracy_standard_protocol"] == round(standard["accuracy"], 4)
