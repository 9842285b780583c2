"""Image to patch tokens: a strided convolution `proj`, flattened to [N, tokens, C], optionally LayerNorm'ed `norm`.

ViT (Dosovitskiy et al., 2020, arXiv:2010.11929) cuts non-overlapping patches (kernel = stride = patch size);
Swin adds a LayerNorm; overlapping embeddings (PVTv2) pass a larger `kernel_size` and `padding`. The names `proj` and
`norm` are those of PaddleClas's transformers, so their checkpoints load as they are.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn


class PatchEmbed(nn.Layer):
    """[N, in_chans, H, W] -> [N, (H / patch) * (W / patch), embed_dim] tokens.

    `img_size` (fixed-input models) gives `grid_size` and `num_patches` up front; `embed_with_grid(x)` also
    returns the token grid (h, w) for models that reshape tokens back to a map.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 norm: bool = False, kernel_size: int | None = None, padding: int = 0, norm_epsilon: float = 1e-5):
        super().__init__()
        self.patch_size = patch_size
        self.grid_size = ((img_size + 2 * padding - (kernel_size or patch_size)) // patch_size + 1,) * 2
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2D(in_chans, embed_dim, kernel_size or patch_size, stride=patch_size, padding=padding)
        self.norm = nn.LayerNorm(embed_dim, epsilon=norm_epsilon) if norm else nn.Identity()

    def embed_with_grid(self, x: paddle.Tensor) -> tuple[paddle.Tensor, tuple[int, int]]:
        x = self.proj(x)
        grid = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose([0, 2, 1])), grid

    def forward(self, x):
        return self.embed_with_grid(x)[0]
