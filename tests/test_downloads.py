"""The official-download path for real (issue 12 §4): torch.hub against a local HTTP server on 127.0.0.1
that serves a small fixture under a torchvision-style file name (``<arch>-<sha256 prefix>.pth``).

Three cases: the download succeeds and is reused; a wrong hash is a clear error that leaves no file;
a connection cut mid-file leaves nothing that a later run would trust (and that later run succeeds).
"""
from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from emolib.core import assets, paths
from emolib.models import create, entry, registry
from emolib.models.weights import Weights


class _Server:
    """Serves `files` ({name: bytes}); mode "cut" sends the full Content-Length but half the body."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.mode = "ok"
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if server.mode == "cut" else body)
                self.wfile.flush()
                if server.mode == "cut":
                    self.close_connection = True
                    self.connection.shutdown(2)         # the peer sees the stream end mid-file

            def log_message(self, *args):               # keep pytest's output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def asset_root(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOLIB_ASSETS", str(tmp_path / "assets"))
    return tmp_path / "assets"


def _state_dict_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _fixture(server: _Server, arch: str = "tinynet", state: dict | None = None) -> tuple[Weights, bytes]:
    """A state dict served under torchvision's naming rule, and the record that points at it."""
    body = _state_dict_bytes(state if state is not None else {"fc.weight": torch.arange(12.0).view(3, 4)})
    digest = hashlib.sha256(body).hexdigest()
    name = f"{arch}-{digest[:8]}.pth"
    server.files[name] = body
    return Weights(filename=name, sha256=digest[:8], package=None, member=None, url=f"{server.url}/{name}",
                   what=f"{arch} test weights", dataset="none", licence="test"), body


def _leftovers(root) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_succeeds_is_verified_and_reused(server, asset_root):
    weights, body = _fixture(server)
    path = weights.path()
    assert path == asset_root / weights.filename and path.read_bytes() == body
    assert _leftovers(asset_root) == [weights.filename]            # no partial file beside it
    torch.testing.assert_close(torch.load(path, weights_only=True)["fc.weight"], torch.arange(12.0).view(3, 4))
    assert weights.path() == path and server.requests == [f"/{weights.filename}"]   # the cache answers


def test_wrong_hash_is_a_clear_error_and_leaves_no_file(server, asset_root):
    weights, _ = _fixture(server)
    wrong = replace(weights, sha256="00000000")
    with pytest.raises(assets.AssetError) as err:
        wrong.path()
    msg = str(err.value)
    assert "sha256 mismatch" in msg and weights.url in msg and "pretrained=False" in msg
    assert _leftovers(asset_root) == []


def test_connection_cut_mid_file_leaves_nothing_a_later_run_would_trust(server, asset_root):
    weights, body = _fixture(server)
    server.mode = "cut"
    with pytest.raises(assets.AssetError):
        weights.path()
    assert _leftovers(asset_root) == []
    # A process killed mid-download leaves torch.hub's uniquely named partial file: never trusted.
    (asset_root / f"{weights.filename}.0123abcd.partial").write_bytes(body[:100])
    assert assets.cached(weights) is None
    (asset_root / weights.filename).write_bytes(body[:100])        # nor a truncated file under the real name
    assert assets.cached(weights) is None
    server.mode = "ok"                                             # the next run downloads it whole
    assert weights.path().read_bytes() == body


def test_a_registered_model_downloads_its_imagenet_weights(server, asset_root, monkeypatch):
    """create(arch, pretrained=True) end to end: registry record -> torch.hub download -> load_state_dict."""
    arch = "mobilenet_v3_large"
    import torchvision
    torch.manual_seed(0)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    served, _ = _fixture(server, arch, state)
    e = entry(arch)
    monkeypatch.setitem(registry._REGISTRY, arch, replace(e, weights=served))
    model = create(arch, num_classes=3, pretrained=True, input_size=64)
    torch.testing.assert_close(model.features[0][0].weight, state["features.0.0.weight"])
    assert (asset_root / served.filename).exists() and paths.assets_dir() == asset_root
