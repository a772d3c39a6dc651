"""CooGAN (arXiv 2011.01563) on hrops: STGAN's generator with LSTU cells, and
a cooperative global/local path for memory-bounded high-resolution editing.

The generator network is CooGAN's official one (neuralchen/CooGAN: STGAN's
Genc/Gdec with the SRU_modify(_relu) cell; components/network_models.py,
components/STU/SRU_modify.py and SRU_modify_relu.py, selected by
train_config/train_128.yaml / train_256.yaml): see
python_models.stgan.STGANGenerator with cell="lstu".

The global/local path is NOT in the official code (its repository has none
of it: neuralchen/CooGAN has no global generator or patch code, its README.md
says "Under construction", and the globalImSize / imcropPathSize keys of
train_config/*.yaml are unused). What follows is hrops' own design from the paper's
description and the issue:
- global generator: edits a low-resolution snapshot of the whole image
  (default 384^2, bilinear antialiased downsampling), 3 input channels;
- local generator: edits one high-resolution patch (default 128^2) given the
  patch concatenated with the matching crop of the edited snapshot upsampled
  (bilinear, align_corners=False) to the image size, 6 input channels;
- patches tile the image without overlap and are stitched; `edit` runs them
  `batch_patches` at a time and computes each patch's snapshot crop on its
  own, so that its working memory depends on the patch batch and the
  snapshot, not on the image size (with out=image it edits in place);
- consistency_loss: the stitched high-resolution output, downsampled to the
  snapshot's size, against the global generator's edit (L1).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .stgan import STGANGenerator


def upsample_crop(snapshot, size, top, left, height, width):
    """Rows [top, top+height) and columns [left, left+width) of the bilinear
    (align_corners=False) upsampling of `snapshot` (N, C, h, w) to `size`
    (H, W), without computing the rest."""
    def taps(start, length, out_size, in_size):
        scale = in_size / out_size
        src = ((torch.arange(start, start + length, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_min(0)
        i0 = src.floor().long().clamp_max(in_size - 1)
        i1 = (i0 + 1).clamp_max(in_size - 1)
        lam = (src - i0).to(snapshot.dtype)
        return i0.to(snapshot.device), i1.to(snapshot.device), lam.to(snapshot.device)
    r0, r1, rl = taps(top, height, size[0], snapshot.shape[2])
    c0, c1, cl = taps(left, width, size[1], snapshot.shape[3])
    rows = (snapshot.index_select(2, r0) * (1 - rl)[:, None] +
            snapshot.index_select(2, r1) * rl[:, None])
    return rows.index_select(3, c0) * (1 - cl) + rows.index_select(3, c1) * cl


class CooGAN(nn.Module):
    """Global generator (snapshot_size^2, 3 channels in) and local generator
    (patch^2 patches, 6 channels in), both STGAN generators with LSTU cells.
    Defaults follow CooGAN's train_256 config (dim 32, SRU_modify_relu, 13
    attributes; globalImSize 384, imcropPathSize 128, globalGConvDim 32)."""

    def __init__(self, dim=32, global_dim=32, n_attrs=13, n_layers=5, snapshot_size=384,
                 patch=128, activation="relu", impl=None):
        super().__init__()
        self.n_attrs, self.snapshot_size, self.patch = n_attrs, snapshot_size, patch
        self.global_generator = STGANGenerator(global_dim, n_attrs, n_layers, 3, "lstu",
                                               activation, impl)
        self.local_generator = STGANGenerator(dim, n_attrs, n_layers, 6, "lstu", activation, impl)

    def check_inputs(self, image, attr_diff, patch):
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must have shape (N, 3, H, W), got {tuple(image.shape)}")
        if image.shape[2] % patch or image.shape[3] % patch:
            raise ValueError(f"image H and W must be multiples of the patch size {patch}, "
                             f"got {tuple(image.shape[2:])}")
        side = 2 ** self.local_generator.n_layers
        if patch % side:
            raise ValueError(f"patch must be a multiple of {side}, got {patch}")
        if attr_diff.dim() != 2 or tuple(attr_diff.shape) != (image.shape[0], self.n_attrs):
            raise ValueError(f"attr_diff must have shape (N, n_attrs) = "
                             f"{(image.shape[0], self.n_attrs)}, got {tuple(attr_diff.shape)}")

    def snapshot(self, image):
        s = self.snapshot_size
        return F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False,
                             antialias=True)

    def global_edit(self, image, attr_diff):
        return self.global_generator(self.snapshot(image), attr_diff)

    def local_edit(self, patches, guide, attr_diff):
        """Edits patches (B, 3, p, p) given their snapshot crops (B, 3, p, p)."""
        return self.local_generator(torch.cat([patches, guide], 1), attr_diff)

    @torch.no_grad()
    def edit(self, image, attr_diff, patch=None, batch_patches=4, out=None):
        """Edits `image` (N, 3, H, W) in [-1, 1], H and W multiples of `patch`,
        by `attr_diff` (N, n_attrs). Returns the stitched (N, 3, H, W) edit,
        written into `out` if given (out=image edits in place: each patch is
        read before it is overwritten and no patch reads another)."""
        patch = patch or self.patch
        self.check_inputs(image, attr_diff, patch)
        if batch_patches < 1:
            raise ValueError(f"batch_patches must be >= 1, got {batch_patches}")
        n, _, height, width = image.shape
        if out is None:
            out = torch.empty_like(image)
        elif out.shape != image.shape:
            raise ValueError(f"out must have the image's shape {tuple(image.shape)}, got {tuple(out.shape)}")
        edited = self.global_edit(image, attr_diff)
        grid = [(b, i * patch, j * patch) for b in range(n)
                for i in range(height // patch) for j in range(width // patch)]
        for start in range(0, len(grid), batch_patches):
            chunk = grid[start:start + batch_patches]
            crops = torch.cat([image[b:b + 1, :, y:y + patch, x:x + patch] for b, y, x in chunk])
            guide = torch.cat([upsample_crop(edited[b:b + 1], (height, width), y, x, patch, patch)
                               for b, y, x in chunk])
            result = self.local_edit(crops, guide, attr_diff[[b for b, _, _ in chunk]])
            for k, (b, y, x) in enumerate(chunk):
                out[b, :, y:y + patch, x:x + patch] = result[k]
        return out


def consistency_loss(hr_output, global_output):
    """Local-to-global consistency: L1 between the stitched high-resolution
    output downsampled (bilinear, antialiased) to the global generator's size
    and the global generator's edit."""
    down = F.interpolate(hr_output, size=global_output.shape[-2:], mode="bilinear",
                         align_corners=False, antialias=True)
    return (down - global_output).abs().mean()


def patches_of(image, patch):
    """(N, C, H, W) -> (N * H/p * W/p, C, p, p), row-major patch order per image."""
    n, c = image.shape[:2]
    return (image.unfold(2, patch, patch).unfold(3, patch, patch)
            .permute(0, 2, 3, 1, 4, 5).reshape(-1, c, patch, patch))


def stitch(patches, n, height, width):
    """Inverse of patches_of."""
    c, p = patches.shape[1], patches.shape[2]
    return (patches.reshape(n, height // p, width // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
            .reshape(n, c, height, width))
