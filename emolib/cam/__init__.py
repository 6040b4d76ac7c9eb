"""Grad-CAM for every emolib model: `maps` computes and draws class activation maps, `metrics`
measures how far to trust them (mask share, its ceiling, deletion AUC, notebook 05's evidence table).
Both are importable from here: ``from emolib import cam; cam.compute_cam(...); cam.evidence_row(...)``.
"""
from emolib.cam.maps import (
                      METHODS,
                      compute_cam,
                      guided_saliency,
                      map_grid,
                      overlay,
                      target_layer,
                      vit_reshape_transform,
)
from emolib.cam.metrics import (
                      CamVariant,
                      deletion_auc,
                      deletion_curve,
                      evidence_row,
                      evidence_score,
                      evidence_table,
                      mask_area_share,
                      mask_energy_share,
                      mask_share_ceiling,
)

__all__ = ["METHODS", "CamVariant", "compute_cam", "deletion_auc", "deletion_curve", "evidence_row", "evidence_score",
           "evidence_table", "guided_saliency", "map_grid", "mask_area_share", "mask_energy_share", "mask_share_ceiling",
           "overlay", "target_layer", "vit_reshape_transform"]
