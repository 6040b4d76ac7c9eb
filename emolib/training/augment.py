"""Batched augmentation on the training device, with per-sample random parameters.

Flip, rotation, random resized crop and perspective are one sampling grid per image
(`affine_grid` + a homography, then `grid_sample`); brightness/contrast and random erasing are
elementwise. Semantics follow torchvision's RandomHorizontalFlip, RandomRotation,
RandomResizedCrop, RandomPerspective, ColorJitter and RandomErasing; every random number comes
from the CPU ``torch.Generator`` the caller passes, so a batch is a pure function of that stream.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from emolib.core.runtime import to_device
from emolib.core.settings import AugmentConfig

__all__ = ["AugmentConfig", "augment_batch", "erase"]


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _perspective_homographies(n: int, distortion: float, g: torch.Generator) -> torch.Tensor:
    """(n,3,3) homographies in normalized [-1,1] coordinates mapping output points to input points.

    Like torchvision's RandomPerspective: each corner moves inward by up to distortion/2 of the side.
    """
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    inward = -corners.sign()                                    # direction towards the centre
    jitter = torch.rand(n, 4, 2, generator=g) * distortion     # half-side = 1, so *distortion = d/2 of side
    src = corners + inward * jitter                            # where each output corner samples from
    dst = corners.expand(n, 4, 2)
    # Solve the 8 unknowns of H (h33 = 1) from 4 point pairs dst -> src.
    x, y = dst[..., 0], dst[..., 1]
    u, v = src[..., 0], src[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -x * u, -y * u], -1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -x * v, -y * v], -1)
    a = torch.cat([rows_u, rows_v], 1)                          # (n,8,8)
    b = torch.cat([u, v], 1)                                    # (n,8)
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones(n, 1)], 1).view(n, 3, 3)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Augment float (B,1,H,W) images in [0,1] with per-sample parameters drawn from `g` (CPU).

    Geometry (flip, rotation, random resized crop, perspective) is one sampling grid per image;
    photometric jitter follows. Random erasing is separate (`erase`) because, as in torchvision,
    it acts on the normalized tensor.
    """
    n, dev = x.shape[0], x.device
    # Draw every parameter up front, in a fixed order, so the stream does not depend on the config path.
    flip = torch.rand(n, generator=g) < cfg.hflip
    angle = _uniform(g, n, -cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180)
    lo, hi = cfg.crop_scale
    area = _uniform(g, n, lo, hi)
    log_ratio = _uniform(g, n, math.log(3 / 4), math.log(4 / 3))
    pos = torch.rand(n, 2, generator=g)
    bright = _uniform(g, n, 1 - cfg.brightness, 1 + cfg.brightness)
    contrast = _uniform(g, n, 1 - cfg.contrast, 1 + cfg.contrast)
    do_persp = torch.rand(n, generator=g) < 0.5
    homog = _perspective_homographies(n, cfg.perspective, g) if cfg.perspective > 0 else None

    # Crop width/height as fractions of the image. torchvision re-draws a crop that does not fit;
    # clamping the aspect ratio to [area, 1/area] keeps both sides <= 1 in one draw.
    ratio = torch.minimum(torch.maximum(log_ratio.exp(), area), 1 / area)
    cw = (area * ratio).sqrt().clamp(max=1.0)
    ch = (area / ratio).sqrt().clamp(max=1.0)
    cx = (pos[:, 0] * 2 - 1) * (1 - cw)          # crop centre, normalized coordinates
    cy = (pos[:, 1] * 2 - 1) * (1 - ch)
    sx = torch.where(flip, -cw, cw)
    cos, sin = angle.cos(), angle.sin()
    # input = centre + R(angle) @ diag(sx, ch) @ output  (rotation about the crop centre)
    theta = torch.stack([torch.stack([cos * sx, -sin * ch, cx], -1),
                         torch.stack([sin * sx, cos * ch, cy], -1)], 1)      # (n,2,3)
    if homog is not None:
        eye = torch.eye(3).expand(n, 3, 3)
        homog = torch.where(do_persp.view(n, 1, 1), homog, eye)
        affine3 = torch.cat([theta, torch.tensor([0.0, 0.0, 1.0]).expand(n, 1, 3)], 1)
        geometry = affine3 @ homog                                           # perspective first, then affine
    else:
        geometry = theta
    # The parameters reach the device in one copy (each copy of its own would be a wait for the device).
    params = to_device(torch.cat([geometry.flatten(1), bright.view(n, 1), contrast.view(n, 1)], 1), dev)
    geometry, bright, contrast = params[:, :-2].contiguous().view(geometry.shape), params[:, -2], params[:, -1]
    if homog is not None:
        grid = F.affine_grid(torch.eye(2, 3, device=dev).expand(n, 2, 3), list(x.shape), align_corners=False)
        pts = torch.cat([grid, torch.ones_like(grid[..., :1])], -1)          # (n,H,W,3)
        mapped = pts @ geometry.transpose(1, 2).unsqueeze(1)                 # (n,H,W,3)
        grid = mapped[..., :2] / mapped[..., 2:].clamp(min=1e-6)
    else:
        grid = F.affine_grid(geometry, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # ColorJitter semantics: brightness scales, contrast blends with the image's mean gray.
    x = (x * bright.view(n, 1, 1, 1)).clamp_(0, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast.view(n, 1, 1, 1) + mean).clamp_(0, 1)
    return x


def erase(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0) with one box per sample."""
    n, _, h, w = x.shape
    hit = torch.rand(n, generator=g) < p
    area = _uniform(g, n, 0.02, 0.33)
    ratio = _uniform(g, n, math.log(0.3), math.log(3.3)).exp()
    pos = torch.rand(n, 2, generator=g)
    eh = ((area / ratio).sqrt() * h).round().clamp(1, h)
    ew = ((area * ratio).sqrt() * w).round().clamp(1, w)
    y0 = (pos[:, 0] * (h - eh + 1)).floor()
    x0 = (pos[:, 1] * (w - ew + 1)).floor()
    dev = x.device
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    boxes = to_device(torch.stack([y0, x0, eh, ew, hit.float()]), dev)      # one copy to the device
    y0, x0, eh, ew, hit = (t.view(n, 1, 1) for t in boxes)
    box = (ys >= y0) & (ys < y0 + eh) & (xs >= x0) & (xs < x0 + ew) & (hit > 0)
    return x.masked_fill(box.unsqueeze(1), 0.0)
