"""emolib.bench.train: its emolib loop is fit's training (it cannot drift from the recipe), the command line writes
both loops' figures and their ratio, and the utilisation sampler samples only while a loop runs."""
import json
import time

import torch

from emolib.bench import _gpu_util, _machine
from emolib.bench import train as bench_train
from emolib.core import runtime
from emolib.research import experiment


def test_the_bench_trains_as_fit_trains_the_recipe():
    """One epoch of the bench's emolib loop on 02's quick recipe leaves the weights fit's first epoch leaves."""
    cfg = bench_train.notebook_config("02_cnn_baseline", "quick", "cpu")
    data = bench_train.random_faces(cfg.classes, 16, 8)
    [stage] = experiment._stages(cfg, data)
    fitted, benched = stage.make(), stage.make()
    experiment.train_model(fitted, data, stage.section, seed=cfg.seed, device="cpu", augment=cfg.augment,
                           balanced=cfg.balanced, options={"batch_size": 8, "progress": False, "restore_best": False},
                           stop_after=1)
    with runtime.deterministic(torch.device("cpu")):
        s = bench_train.set_up(benched, data, stage.section, cfg, batch_size=8)
        assert len(s.train_loader) == 2 and s.cfg.optimizer == "adamw" and s.cfg.weighted_loss
        bench_train.emolib_steps(s, len(s.train_loader), epoch=0)
    for name, value in fitted.state_dict().items():
        assert torch.equal(value, benched.state_dict()[name]), name


def test_the_command_line_times_both_loops_and_the_evaluation(tmp_path, capsys):
    out = tmp_path / "train.json"
    assert bench_train.main(["--device", "cpu", "--notebooks", "02_cnn_baseline", "--steps", "2", "--repeats", "1",
                             "--warmup", "1", "--eval-batches", "1", "--batch-size", "4", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    [row] = got["runs"]
    assert row["run"] == "02_cnn_fer" and row["batch_size"] == 4 and row["input"] == "1x48x48"
    assert row["channels_last"] is True          # the quick profile's recipe, on a CPU too
    assert row["emolib_img_per_s"] > 0 and row["bare_img_per_s"] > 0 and row["eval_img_per_s"] > 0
    assert row["emolib_vs_bare"] == row["emolib_img_per_s"] / row["bare_img_per_s"]
    assert row["trainable_params"] == row["total_params"] > 0
    assert row["gpu_util_emolib"] is None and got["gpu_util_missing"] == "no GPU: the run is on cpu"
    assert got["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and got["cudnn_benchmark_in_fit"] is False
    assert got["device_name"] == _machine.cpu_model()
    printed = capsys.readouterr().out
    assert "| 02_cnn_fer | cnn_fer 1x48x48 b4 None channels-last |" in printed and "GPU utilisation: no GPU" in printed


def test_make_bench_figures_are_named_by_run(monkeypatch):
    row = {"run": "03_mobilenet_v2-head", "emolib_img_per_s": 30.0, "bare_img_per_s": 40.0, "emolib_vs_bare": 0.75,
           "eval_img_per_s": 90.0}
    seen = {}

    def fake(profile, device, plan, log):
        seen.update(profile=profile, device=device, plan=plan)
        return {"runs": [row]}
    monkeypatch.setattr(bench_train, "measure_profile", fake)
    assert bench_train.run(quick=True) == {
        "train_img_per_s_03_mobilenet_v2-head_emolib": 30.0, "train_img_per_s_03_mobilenet_v2-head_bare": 40.0,
        "train_emolib_vs_bare_ratio_03_mobilenet_v2-head": 0.75, "eval_img_per_s_03_mobilenet_v2-head": 90.0}
    assert seen["profile"] == "quick" and seen["device"] == "cpu" and seen["plan"].steps < bench_train.Plan().steps


def test_the_sampler_samples_only_under_a_tag(monkeypatch):
    idle = _gpu_util.UtilisationSampler(torch.device("cpu"))
    assert idle.method is None and "no GPU" in idle.reason
    readings = iter(range(1, 100_000))
    monkeypatch.setattr(_gpu_util, "_reader", lambda device: (lambda: float(next(readings)), "fake", 0.005, None))
    with _gpu_util.UtilisationSampler(torch.device("cuda", 0)) as sampler:
        time.sleep(0.05)
        sampler.tag = "emolib"
        time.sleep(0.3)
        sampler.tag = None
        time.sleep(0.05)
    assert list(sampler.samples) == ["emolib"] and len(sampler.samples["emolib"]) >= 2
    assert sampler.mean("emolib") > 0 and sampler.mean("bare") is None
