"""EmotionRecognizer on real photos, FaceResult, the drawn emoji and the annotation drawing."""
import json

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data  # a mandatory dependency: real photos offline

from emolib.core.labels import EMOJI, EMOTIONS


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def four_faces(astronaut):
    """Four copies of the astronaut's head on one 2×2 frame (each face ~18% of the frame width)."""
    head = astronaut[20:280, 110:350]
    return np.vstack([np.hstack([head, head[:, ::-1]]), np.hstack([head[:, ::-1], head])])


@pytest.fixture(scope="module")
def recognizer():
    from emolib import EmotionRecognizer
    return EmotionRecognizer()


def count_forward_calls(model):
    calls = []
    handle = model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    return calls, handle


@pytest.mark.parametrize("detector", ["blazeface", "blazeface_full", "ssd", "haar"])
def test_astronaut_is_happy_with_each_detector(astronaut, detector):
    from emolib import EmotionRecognizer
    results = EmotionRecognizer(detector=detector).recognize(astronaut)
    assert len(results) == 1
    r = results[0]
    x0, y0, x1, y1 = r.box
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200     # her face, not the patch or the flag
    assert r.label == "happy" and r.confidence > 0.8
    assert r.emoji == EMOJI["happy"] and not r.from_fallback
    assert list(r.probs) == list(EMOTIONS) and abs(sum(r.probs.values()) - 1) < 1e-4
    assert [c for c, _ in r.top3][0] == "happy" and r.top3[0][1] >= r.top3[1][1] >= r.top3[2][1]


def test_detector_defaults_by_use():
    from emolib import EmotionRecognizer, faces
    from emolib.inference.video import FramePipeline
    assert EmotionRecognizer().detector == faces.STILL_DETECTOR
    assert EmotionRecognizer.live().detector == faces.LIVE_DETECTOR
    assert EmotionRecognizer.live(detector="ssd").detector == "ssd"
    assert FramePipeline().recognizer.detector == faces.LIVE_DETECTOR


def test_all_faces_of_a_frame_go_through_one_batch(four_faces):
    from emolib import EmotionRecognizer
    recognizer = EmotionRecognizer(backend="torch")                # counted by a hook on the torch module
    calls, handle = count_forward_calls(recognizer.model)
    try:
        results = recognizer.recognize(four_faces)
    finally:
        handle.remove()
    assert len(results) == 4
    assert calls == [4]                                      # one forward pass holding all four faces
    assert [r.label for r in results] == ["happy"] * 4
    centres = sorted(((r.box[0] + r.box[2]) / 2 > 240, (r.box[1] + r.box[3]) / 2 > 260) for r in results)
    assert centres == [(False, False), (False, True), (True, False), (True, True)]   # one per quadrant


def test_flip_tta_joins_the_same_batch_and_averages(four_faces):
    from emolib import EmotionRecognizer
    plain, tta = EmotionRecognizer(), EmotionRecognizer(tta_flip=True)
    calls, handle = count_forward_calls(tta.model)
    try:
        results = tta.recognize(four_faces)
    finally:
        handle.remove()
    assert calls == [8]                                      # four crops and their mirrors, one pass
    # The 2×2 frame holds each head and its mirror image: with TTA both get the same probabilities.
    by_quadrant = sorted(results, key=lambda r: (r.box[1] > 260, r.box[0] > 240))
    np.testing.assert_allclose(list(by_quadrant[0].probs.values()), list(by_quadrant[1].probs.values()), atol=0.02)
    crops = np.stack([cv2.cvtColor(four_faces[:64, :64], cv2.COLOR_BGR2GRAY)] * 2)
    mirrored = crops[:, :, ::-1]
    avg = (plain.predict_crops(crops) + plain.predict_crops(mirrored)) / 2
    np.testing.assert_allclose(tta.predict_crops(crops), avg, atol=1e-5)


def test_blank_image_has_no_face_and_fallback_marks_its_result(recognizer):
    from emolib import EmotionRecognizer
    blank = np.full((240, 320, 3), 127, np.uint8)
    assert recognizer.recognize(blank) == []
    results = EmotionRecognizer(fallback="whole").recognize(blank)
    assert len(results) == 1 and results[0].from_fallback
    assert results[0].box == (0.0, 0.0, 320.0, 240.0) and results[0].detector_score == 0.0


def test_crop_size_feeds_smaller_crops_through_the_same_preprocessing(astronaut):
    from emolib import EmotionRecognizer
    rec = EmotionRecognizer(crop_size=48, backend="torch")          # seen by a hook on the torch module
    seen = []
    handle = rec.model.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
    try:
        results = rec.recognize(astronaut)
    finally:
        handle.remove()
    assert seen == [(1, 1, 64, 64)] and [r.label for r in results] == ["happy"]


def test_recognize_path_reads_files_and_names_bad_ones(recognizer, astronaut, tmp_path):
    from emolib.core.images import ImageReadError
    cv2.imwrite(str(tmp_path / "a.jpg"), astronaut)
    assert [r.label for r in recognizer.recognize_path(tmp_path / "a.jpg")] == ["happy"]
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        recognizer.recognize_path(tmp_path / "bad.jpg")


def test_gray_input_is_accepted(recognizer, astronaut):
    results = recognizer.recognize(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY))
    assert [r.label for r in results] == ["happy"]


def test_face_result_to_dict_is_json_and_with_probs_relabels(recognizer, astronaut):
    r = recognizer.recognize(astronaut)[0]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["label"] == "happy" and len(d["keypoints"]) == 6 and d["track_id"] is None
    other = r.with_probs({**{c: 0.0 for c in r.probs}, "sad": 0.9, "neutral": 0.1})
    assert (other.label, other.confidence, other.emoji) == ("sad", 0.9, EMOJI["sad"])
    assert other.top3[:2] == [("sad", 0.9), ("neutral", 0.1)] and other.box == r.box


def test_checkpoint_model_brings_its_own_classes(tmp_path, astronaut):
    from emolib import EmotionRecognizer, models
    from emolib.models.checkpoint import save_checkpoint
    five = ("angry", "fear", "happy", "sad", "neutral")
    net = models.create("cnn_fer", num_classes=5)
    path = tmp_path / "five.pt"
    save_checkpoint(path, net, classes=list(five), config={}, metrics={})
    rec = EmotionRecognizer(path)
    assert rec.classes == five and rec.spec.input_size == 48
    results = rec.recognize(astronaut)
    assert len(results) == 1 and list(results[0].probs) == list(five)


def test_model_argument_errors_say_what_to_do():
    from emolib import EmotionRecognizer
    with pytest.raises(ValueError, match="no emotion-trained weights"):
        EmotionRecognizer(model="cnn_fer")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        EmotionRecognizer(model="nope")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        EmotionRecognizer(model="missing.pt")
    with pytest.raises(ValueError, match="unknown face detector"):
        EmotionRecognizer(detector="yolo")


# ------------------------------------------------------------------------------- emoji, drawing
def test_emoji_sprites_are_distinct_round_and_cached():
    from emolib.inference.emoji import emoji_sprite
    sprites = {e: emoji_sprite(e, 48) for e in EMOTIONS}
    for s in sprites.values():
        assert s.shape == (48, 48, 4) and s.dtype == np.uint8
        assert s[0, 0, 3] == 0 and s[24, 24, 3] == 255           # transparent corners, opaque face
    colour = {e: s[..., :3].astype(int) for e, s in sprites.items()}
    for i, a in enumerate(EMOTIONS):
        for b in EMOTIONS[i + 1:]:
            assert np.abs(colour[a] - colour[b]).mean() > 3, (a, b)
    assert emoji_sprite("happiness", 48) is sprites["happy"]     # aliases share the cache
    with pytest.raises(ValueError):
        emoji_sprite("happy", 4)


def test_paste_sprite_blends_and_clips():
    from emolib.inference.emoji import emoji_sprite, paste_sprite
    img = np.zeros((40, 40, 3), np.uint8)
    sprite = emoji_sprite("neutral", 32)
    paste_sprite(img, sprite, 30, -10)                                # hangs off the right and top edges
    assert img[:22, 30:].any() and not img[25:, :].any() and not img[:, :30].any()
    paste_sprite(img, sprite, 100, 100)                               # fully outside: no-op


def test_annotate_draws_a_copy(recognizer, four_faces):
    from emolib.inference.draw import annotate, emotion_color
    results = recognizer.recognize(four_faces)
    results[0].track_id = 7
    before = four_faces.copy()
    out = annotate(four_faces, results, fps=12.5)
    assert np.array_equal(four_faces, before) and out.shape == four_faces.shape
    x0, y0, x1, y1 = (int(v) for v in results[1].box)
    edge = out[y0 + 5:y1 - 5, x0]                                 # left side of a box is the happy colour
    assert (np.abs(edge.astype(int) - emotion_color("happy")).sum(axis=1) < 60).mean() > 0.8
    assert not np.array_equal(out[-25:, :100], four_faces[-25:, :100])     # the FPS tag
    assert np.array_equal(annotate(four_faces, []), four_faces)


@pytest.mark.parametrize("name", ["fer2013-mini-xception", "cnn_fer", "vgg_fer"])
def test_inference_preparation_keeps_outputs_and_leaves_a_given_module_alone(name):
    import torch
    from torch import nn

    from emolib import EmotionRecognizer, models
    net = models.create(name, pretrained=name.startswith("fer2013")).eval()
    if not name.startswith("fer2013"):                         # non-trivial running statistics
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    rec = EmotionRecognizer(model=net)
    assert rec.model is not net and sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == n_bn
    assert sum(isinstance(m, nn.BatchNorm2d) for m in rec.model.modules()) < n_bn   # some were folded
    crops = np.random.default_rng(0).integers(0, 256, (3, rec.spec.input_size, rec.spec.input_size), np.uint8)
    from emolib.models.preprocess import to_model_input
    with torch.inference_mode():
        expected = torch.softmax(net(to_model_input(torch.from_numpy(crops), rec.spec)), 1).numpy()
    np.testing.assert_allclose(rec.predict_crops(crops), expected, atol=1e-5)
