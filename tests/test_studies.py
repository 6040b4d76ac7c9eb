"""emolib.research.studies: a recipe study trains each variant on the profile's recipe and records val curves only."""
import json

from emolib.research import studies


def test_study_records_every_variant_on_the_notebooks_recipe(tmp_path, monkeypatch):
    variants = (studies.Variant("conv 6x6", "vit_conv_48", {}, "default"),
                studies.Variant("conv 6x6 cls", "vit_conv_48", {"pool": "cls"}, "class token"))
    monkeypatch.setitem(studies.STUDIES, "04_vit_variants", ("04_vit_finetune", variants))
    monkeypatch.setattr(studies, "study_path", lambda study, profile: tmp_path / profile / f"{study}.json")
    assert studies.load("04_vit_variants", "smoke") is None          # nothing recorded yet: the notebook says so

    assert studies.main(["04_vit_variants", "--profile", "smoke", "--epochs", "2"]) == 0
    got = studies.load("04_vit_variants", "smoke")
    assert got == json.loads((tmp_path / "smoke" / "04_vit_variants.json").read_text())
    assert got["epochs"] == 2 and got["train"]["epochs"] == 2 and got["split"] == "val"
    assert got["train"]["lr"] == 0.001                                 # the rest is smoke.yaml's 04 recipe
    assert [v["name"] for v in got["variants"]] == ["conv 6x6", "conv 6x6 cls"]
    for v in got["variants"]:
        assert len(v["val_acc"]) == 2 and 0 <= v["best_val_acc"] <= 1 and v["best_val_acc"] == max(v["val_acc"])
        assert "test" not in json.dumps(v)                            # variants are compared on val only
    # Built as asked: the class token and its position embedding are the only extra parameters (2 x 128).
    assert got["variants"][1]["params"] - got["variants"][0]["params"] == 256
