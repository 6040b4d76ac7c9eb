"""Models: every registered one forwards and round-trips through a checkpoint; architectures match their
descriptions; the freeze policy; offline ImageNet weights; the imported FER2013 mini-Xception on real faces."""
from __future__ import annotations

import inspect
import math
import re
import urllib.error

import cv2
import h5py
import numpy as np
import pytest
import torch
from torch import nn

from emolib.cli.models import known_assets
from emolib.core import assets
from emolib.core.labels import EMOTIONS
from emolib.models import create, entry, get_spec, list_models, untrained_like
from emolib.models import mini_xception as mx
from emolib.models.checkpoint import load_model, save_checkpoint
from emolib.models.preprocess import to_model_input
from emolib.models.transfer import freeze_backbone, param_groups, unfreeze_last

EXPECTED = {"cnn_fer", "vgg_fer", "mini_xception", "fer2013-mini-xception", "resnet18", "resnet50",
            "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "vgg16", "vit_small_48", "vit_conv_48", "vit_b_16"}
# Small inputs keep the ImageNet-sized nets fast on a CPU; the architecture is the same.
SMALL_KW = {"resnet18": {"input_size": 64}, "resnet50": {"input_size": 64}, "mobilenet_v2": {"input_size": 64},
            "mobilenet_v3_large": {"input_size": 64}, "efficientnet_b0": {"input_size": 64},
            "vgg16": {"input_size": 32}, "vit_b_16": {"input_size": 32}}


def _small_kw(name: str) -> dict:
    """Keywords that keep `name` small on a CPU: SMALL_KW, else the smallest input a builder with an
    ``input_size`` keyword accepts among 32/48/64 (a model registered later is tested without an edit here)."""
    if name in SMALL_KW:
        return SMALL_KW[name]
    if "input_size" not in inspect.signature(entry(name).builder).parameters:
        return {}
    for size in (32, 48, 64):
        try:
            create(name, num_classes=2, input_size=size)
            return {"input_size": size}
        except ValueError:
            continue
    return {}


def test_registry_holds_every_model():
    assert EXPECTED <= set(list_models())
    assert entry("fer2013-mini-xception").offline_pretrained and entry("mobilenet_v2").offline_pretrained
    assert entry("vit_b_16").needs_download and entry("resnet50").needs_download
    assert not entry("cnn_fer").offline_pretrained and not entry("cnn_fer").needs_download


def _target_activation(model, x):
    seen = {}
    handle = model.get_submodule(model.spec.target_layer).register_forward_hook(
        lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        y = model(x)
    handle.remove()
    return y, seen["out"]


@pytest.mark.parametrize("name", list_models())     # every registered model, as timm's tests do
def test_forward_target_layer_and_checkpoint_roundtrip(name, tmp_path):
    torch.manual_seed(0)
    model = create(name, num_classes=5, **_small_kw(name)).eval()
    spec = model.spec
    assert spec.channels == (1 if spec.mean == (0.5,) else 3)
    assert spec.target_layer == get_spec(name).target_layer      # the registry's spec names the same layer
    s = spec.input_size
    x = torch.randn(2, spec.channels, s, s)
    y, act = _target_activation(model, x)
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    if spec.is_vit:     # tokens: the class token (if any) + the patch grid, which Grad-CAM reshapes
        grid = s // spec.extra["patch_size"]
        assert act.ndim == 3 and act.shape[1] == spec.extra.get("prefix_tokens", 1) + grid * grid
    else:               # a spatial map Grad-CAM can weight
        assert act.ndim == 4 and act.shape[0] == 2 and min(act.shape[-2:]) >= 1

    path = save_checkpoint(tmp_path / f"{name}.pt", model, classes=EMOTIONS[:5], config={"name": name},
                           metrics={"acc": 0.0})
    loaded, ckpt = load_model(path)
    assert ckpt["model_name"] == name and not loaded.training
    assert loaded.spec == spec
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), y, rtol=0, atol=0)
    path.unlink()   # vgg16's is half a gigabyte; pytest keeps tmp dirs of recent runs


@pytest.mark.parametrize("name", list_models())
def test_default_specs_match_registry(name):
    # Builders that set their own spec (input_size keyword) agree with the registry at the defaults.
    assert create(name).spec == get_spec(name)


def test_cnn_fer_matches_its_description():
    model = create("cnn_fer")
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (3, 3)), (32, 64, (3, 3)), (64, 128, (3, 3)), (128, 256, (3, 3))]
    for block in model.features:
        kinds = [type(m) for m in block]
        assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    sizes = []
    hooks = [b.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for b in model.features]
    model.eval()(torch.zeros(1, 1, 48, 48))
    [h.remove() for h in hooks]
    assert sizes == [24, 12, 6, 3]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (2304, 512), (512, 256), (256, 128), (128, 64), (64, 7)]
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.4, 0.2, 0.1, 0.5]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.classifier) == 4
    conv_params = sum(9 * a * b + 2 * b for a, b in [(1, 32), (32, 64), (64, 128), (128, 256)])
    fc_params = sum(a * b + 2 * b for a, b in [(2304, 512), (512, 256), (256, 128), (128, 64)]) + 64 * 7 + 7
    assert sum(p.numel() for p in model.parameters()) == conv_params + fc_params


def test_vgg_fer_layout():
    model = create("vgg_fer")
    convs = [m.out_channels for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [64, 64, 128, 128, 256, 256, 512, 512]
    linears = [(m.in_features, m.out_features) for m in model.classifier if isinstance(m, nn.Linear)]
    assert linears == [(512 * 3 * 3, 4096), (4096, 4096), (4096, 7)]


def test_mini_xception_size_matches_keras():
    model = create("mini_xception")
    trainable = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert 55_000 < trainable < 60_000
    assert trainable + stats == 58_423     # Keras' model.summary() total for the `fer` model (it counts BN stats)


def test_tf_same_pooling_pads_bottom_right():
    pool = mx.TFSameMaxPool2d(3, 2)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = pool(x)
    # windows start at 0 and 2 (not at -1 as PyTorch's symmetric padding would): rows {0,1,2}, {2,3}
    assert y.shape[-2:] == (2, 2) and y[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    assert pool(torch.zeros(1, 1, 15, 15)).shape[-1] == 8
    # the ceil_mode fast path equals explicit -inf padding at every size (and non-square falls back)
    import torch.nn.functional as F
    for h, w in [(n, n) for n in range(3, 40)] + [(15, 16), (60, 33)]:
        x = torch.randn(2, 3, h, w)
        (top, bottom), (left, right) = pool._pad(h), pool._pad(w)
        ref = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), 3, 2)
        assert torch.equal(pool(x), ref), (h, w)


def test_keras_import_consumes_every_weight():
    model = mx.MiniXception(7)
    counts = mx.load_keras_weights(model, entry("fer2013-mini-xception").weights.path(allow_network=False))
    with h5py.File(entry("fer2013-mini-xception").weights.path(allow_network=False)) as f:
        n_file = sum(len(f["model_weights"][k].attrs["weight_names"]) for k in f["model_weights"])
    n_model = sum(1 for k in model.state_dict() if not k.endswith("num_batches_tracked"))
    assert counts == {"tensors": n_model, "keras_weights": n_file}


def test_keras_import_rejects_another_layout(tmp_path):
    bad = tmp_path / "other.hdf5"
    with h5py.File(bad, "w") as f:
        f.attrs["model_config"] = '{"config": {"layers": [{"class_name": "Conv2D", "config": {"name": "c"}}]}}'
        f.create_group("model_weights")
    with pytest.raises(ValueError, match="not the mini-Xception layout"):
        mx.load_keras_weights(mx.MiniXception(7), bad)


# --------------------------------------------------------------------------- freeze policy

def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name, head, last_stage", [
    ("resnet18", ("fc.",), ("layer4.",)),
    ("mobilenet_v2", ("classifier.",), ("features.18.",)),
    ("vgg16", ("classifier.",), tuple(f"features.{i}." for i in range(24, 31))),
    ("vit_small_48", ("heads.",), ("encoder.layers.encoder_layer_5.", "encoder.ln.")),
    ("vit_conv_48", ("heads.",), ("encoder.layers.encoder_layer_3.", "encoder.ln.")),
    ("cnn_fer", ("classifier.",), ("features.3.",)),
])
def test_freeze_backbone_and_unfreeze_last(name, head, last_stage):
    model = create(name, **SMALL_KW.get(name, {}))
    names = {n for n, _ in model.named_parameters()}
    freeze_backbone(model)
    assert _trainable(model) == {n for n in names if n.startswith(head)}
    unfreeze_last(model, 1)
    assert _trainable(model) == {n for n in names if n.startswith(head + last_stage)}
    groups = param_groups(model, lr=1e-3, backbone_lr_mult=0.1)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    by_id = {id(p): n for n, p in model.named_parameters()}
    assert {by_id[id(p)] for p in groups[0]["params"]} == {n for n in names if n.startswith(head)}
    assert {by_id[id(p)] for p in groups[1]["params"]} == {n for n in names if n.startswith(last_stage)}
    with pytest.raises(ValueError, match="stages"):
        unfreeze_last(model, 1000)


def test_unfreeze_last_two_resnet_stages():
    model = freeze_backbone(create("resnet18", input_size=64))
    unfreeze_last(model, 2)
    assert {n.split(".")[0] for n in _trainable(model)} == {"fc", "layer3", "layer4"}


# --------------------------------------------------------------------------- pretrained weights

@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise urllib.error.URLError("network disabled in this test")
    monkeypatch.setattr(assets, "download_url", refuse)
    monkeypatch.setattr(assets, "_from_package", refuse)


def test_mobilenet_v2_imagenet_weights_load_offline(no_network):
    torch.manual_seed(0)
    random_init = create("mobilenet_v2", input_size=96).eval()
    pretrained = create("mobilenet_v2", pretrained=True, input_size=96).eval()
    state = torch.load(entry("mobilenet_v2").weights.path(allow_network=False), weights_only=True)
    torch.testing.assert_close(pretrained.features[0][0].weight, state["features.0.0.weight"])
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert not torch.allclose(pretrained.features(x), random_init.features(x), atol=1e-3)


def test_missing_imagenet_weights_offline_give_a_clear_error(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIB_ASSETS", str(tmp_path))
    with pytest.raises(assets.AssetError) as err:
        create("resnet18", pretrained=True)
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "https://download.pytorch.org/models/" in msg
    assert str(tmp_path) in msg and "pretrained=False" in msg


def test_untrained_like_is_the_same_architecture_untrained(no_network):
    pretrained = create("mobilenet_v2", num_classes=5, pretrained=True, input_size=64)
    torch.manual_seed(1)
    twin = untrained_like(pretrained)
    assert (twin.model_name, twin.num_classes, twin.model_kwargs, twin.spec) == \
        ("mobilenet_v2", 5, {"input_size": 64}, pretrained.spec)
    assert twin.state_dict().keys() == pretrained.state_dict().keys()
    assert not torch.equal(twin.features[0][0].weight, pretrained.features[0][0].weight), "no ImageNet weights"
    torch.manual_seed(1)
    torch.testing.assert_close(untrained_like(pretrained).state_dict(), twin.state_dict())   # seeded: repeatable
    with pytest.raises(ValueError, match="model_name"):
        untrained_like(torch.nn.Linear(2, 2))
    fer = create("fer2013-mini-xception", pretrained=True)       # the FER2013 weights
    for (name, p), q in zip(fer.named_parameters(), untrained_like(fer).parameters()):
        assert not torch.equal(p, q), f"{name} kept its FER2013 weights"


def test_fer2013_mini_xception_honours_pretrained(fer_model):
    torch.manual_seed(0)
    scratch = create("fer2013-mini-xception")                    # pretrained=False, as for every entry
    assert scratch.state_dict().keys() == fer_model.state_dict().keys()
    assert not torch.equal(scratch.head[0].weight, fer_model.head[0].weight)
    torch.manual_seed(0)
    torch.testing.assert_close(scratch.state_dict(), create("mini_xception").state_dict())   # the same network


@pytest.mark.parametrize("name", list_models())
def test_weights_record_says_where_the_weights_come_from(name):
    e = entry(name)
    w = e.weights
    if w is None:                                # trained from scratch: pretrained=True is refused
        assert not e.offline_pretrained and not e.needs_download
        with pytest.raises(ValueError):
            create(name, pretrained=True)
        return
    assert w.url.startswith("https://") and w.dataset and w.licence and len(w.sha256) >= 8
    assert e.needs_download == (w.package is None) and e.offline_pretrained == (w.package is not None)
    if w.package:                                # what `make setup` fetches: present and verified
        assert assets.cached(w) is not None and known_assets()[w.filename] is w  # `emolib assets` lists it
    m = re.search(r"-([0-9a-f]{8,})\.pth$", w.filename)
    if m:                                        # torchvision's names carry the hash prefix torch.hub checks
        assert w.sha256.startswith(m.group(1)) and w.url.endswith("/" + w.filename)
    if w.framing is not None:                    # pretrained weights crop photos as their faces were cropped
        assert create(name, pretrained=True).spec.framing == w.framing
    if w.predicts_emotions:                      # what the recognizer can use without a checkpoint
        assert set(w.classes) <= set(EMOTIONS) and len(w.classes) == e.builder().head[0].out_channels


def test_from_scratch_models_refuse_pretrained():
    with pytest.raises(ValueError, match="from scratch"):
        create("cnn_fer", pretrained=True)


# --------------------------------------------------------------------------- FER2013 mini-Xception on real faces

@pytest.fixture(scope="module")
def fer_model():
    return create("fer2013-mini-xception", pretrained=True).eval()


def _probabilities(model, gray_faces: list[np.ndarray]) -> torch.Tensor:
    # Faces come in at different sizes: preprocess one at a time (THE preprocessing), then batch.
    x = torch.cat([to_model_input(torch.from_numpy(f)[None], model.spec) for f in gray_faces])
    with torch.no_grad():
        return model(x).softmax(1)


def test_fer2013_mini_xception_finds_the_astronaut_happy(fer_model):
    from skimage import data
    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
    assert len(faces) == 1
    x, y, w, h = faces[0]
    m = 10                                           # the `fer` package's crop offsets
    crop = gray[max(0, y - m):y + h + m, max(0, x - m):x + w + m]
    probs = _probabilities(fer_model, [crop])[0]
    assert EMOTIONS[int(probs.argmax())] == "happy", dict(zip(EMOTIONS, probs.tolist()))
    assert probs.max() > 0.5


def test_fer2013_mini_xception_on_lfw_faces(fer_model):
    from skimage import data
    faces = [(f * 255).round().astype(np.uint8) for f in data.lfw_subset()[:12]]   # 25×25 face crops
    probs = _probabilities(fer_model, faces)
    assert probs.shape == (12, 7) and torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(12))
    # a broken import tends to give one constant answer; real weights respond to the face
    assert probs.std(0).max() > 0.02
    assert not math.isclose(float(probs.max()), float(probs.min()))


def test_fer2013_mini_xception_subset_head():
    model = create("fer2013-mini-xception", num_classes=5, pretrained=True)
    full = create("fer2013-mini-xception", pretrained=True)
    assert model.head[0].out_channels == 5
    torch.testing.assert_close(model.blocks[3].shortcut[0].weight, full.blocks[3].shortcut[0].weight)


# --------------------------------------------------------------------------- inference preparation

@pytest.mark.parametrize("name, kw", [("fer2013-mini-xception", {"pretrained": True}), ("cnn_fer", {}),
                                      ("mobilenet_v2", {"input_size": 64})])
def test_prepare_for_inference_folds_batchnorm_and_keeps_outputs(name, kw):
    from emolib.models.inference import prepare_for_inference, to_channels_last
    torch.manual_seed(0)
    model = create(name, **kw).eval()
    # Non-trivial BN statistics, so that a wrong fold shows.
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    fast = prepare_for_inference(model)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in fast.modules())
    assert fast.spec == model.spec and fast.model_name == name
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())   # the original is untouched
    s = model.spec.input_size
    x = torch.randn(3, model.spec.channels, s, s)
    with torch.inference_mode():
        torch.testing.assert_close(fast(to_channels_last(x)), model(x), rtol=1e-4, atol=1e-4)


def _keras_reference_forward(hdf5_path, x_nhwc: np.ndarray) -> np.ndarray:
    """An independent NumPy interpreter of the Keras graph, reading the file's weights in Keras layout
    (HWIO kernels, NHWC activations, TensorFlow 'same' padding): no transposes shared with the importer."""
    import json

    def same_pad(n, k, s):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return out, total // 2, total - total // 2

    def windows(x, k, s, padding, fill):
        n, h, w, _ = x.shape
        if padding == "same":
            oh, top, bottom = same_pad(h, k, s)
            ow, left, right = same_pad(w, k, s)
            x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
        else:
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
        for i in range(k):
            for j in range(k):
                yield i, j, x[:, i:i + s * oh:s, j:j + s * ow:s, :]

    with h5py.File(hdf5_path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        g = f["model_weights"]
        W = {ly["config"]["name"]: {n.decode().split("/")[-1].split(":")[0]: g[ly["config"]["name"]][n][()]
                                    for n in g[ly["config"]["name"]].attrs["weight_names"]} for ly in layers}
    out = {}
    for layer in layers:
        kind, c, name = layer["class_name"], layer["config"], layer["config"]["name"]
        ins = [out[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x_nhwc]
        x, w = ins[0], W[name]
        if kind == "InputLayer":
            y = x
        elif kind == "Conv2D":
            k, s = c["kernel_size"][0], c["strides"][0]
            y = sum(np.einsum("nhwc,co->nhwo", xs, w["kernel"][i, j])
                    for i, j, xs in windows(x, k, s, c["padding"], 0.0))
            y = y + w["bias"] if "bias" in w else y
        elif kind == "SeparableConv2D":
            d = sum(xs * w["depthwise_kernel"][i, j, :, 0] for i, j, xs in windows(x, 3, 1, "same", 0.0))
            y = np.einsum("nhwc,co->nhwo", d, w["pointwise_kernel"][0, 0])
        elif kind == "BatchNormalization":
            y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + c["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "Activation":
            y = np.maximum(x, 0) if c["activation"] == "relu" else x   # softmax: compare logits
        elif kind == "MaxPooling2D":
            y = np.max([xs for _, _, xs in windows(x, c["pool_size"][0], c["strides"][0], c["padding"], -np.inf)],
                       axis=0)
        elif kind == "Add":
            y = ins[0] + ins[1]
        elif kind == "GlobalAveragePooling2D":
            y = x.mean(axis=(1, 2))
        else:
            raise AssertionError(f"unexpected Keras layer {kind}")
        out[name] = y
    return out[layers[-1]["config"]["name"]]


def test_imported_mini_xception_matches_a_numpy_run_of_the_keras_graph(fer_model):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(3, 64, 64, 1))
    ref = _keras_reference_forward(entry("fer2013-mini-xception").weights.path(allow_network=False), x)
    with torch.no_grad():
        got = fer_model(torch.from_numpy(x).float().permute(0, 3, 1, 2)).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4)


def test_vit_conv_48_token_grid_and_pooling():
    # Stem depth sets the token grid; class-token pooling adds one prefix token that Grad-CAM drops.
    torch.manual_seed(0)
    x = torch.randn(3, 1, 48, 48)
    for stem, pool, grid in [([32, 64, 128], "mean", 6), ([32, 64], "mean", 12), ([32, 64, 128], "cls", 6)]:
        model = create("vit_conv_48", num_classes=5, stem=stem, pool=pool).eval()
        assert model.spec.extra["patch_size"] == 48 // grid
        assert model.spec.extra["prefix_tokens"] == (pool == "cls")
        _, act = _target_activation(model, x)
        assert act.shape == (3, (pool == "cls") + grid * grid, 128)
    # Why Grad-CAM may hook the final norm here: with mean pooling every output token reaches the
    # logits; with a class token only the class token does, and the patch tokens get no gradient.
    for pool in ("mean", "cls"):
        model = create("vit_conv_48", pool=pool).eval()
        seen = {}

        def keep(module, inputs, out):
            out.retain_grad()
            seen["out"] = out
        model.encoder.ln.register_forward_hook(keep)
        model(x)[:, 0].sum().backward()
        patch_grad = seen["out"].grad[:, (pool == "cls"):].abs().sum(dim=(0, 2))
        assert (patch_grad > 0).all() if pool == "mean" else (patch_grad == 0).all()
    with pytest.raises(ValueError, match="multiple"):
        create("vit_conv_48", stem=[16, 16, 16, 16, 16])       # 48 is not a multiple of 32
    with pytest.raises(ValueError, match="pool"):
        create("vit_conv_48", pool="max")
    with pytest.raises(ValueError, match="from scratch"):
        create("vit_conv_48", pretrained=True)
