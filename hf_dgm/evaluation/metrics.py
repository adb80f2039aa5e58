"""Sample-quality metrics on classifier features. Pure functions; inputs documented per function.

FID, KID and the Inception Score are computed by torchmetrics (never hand-written): the features are computed
once by the domain classifier and handed to the torchmetrics classes through an identity "feature extractor".
Precision and recall follow Kynkäänniemi et al. (2019) with k = 3.
"""

import torch
from torch import nn


class _Identity(nn.Module):
    """Hands pre-computed features to torchmetrics' FID/KID/IS, which expect a feature-extractor module."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two (N, d) feature sets (torchmetrics FID, float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Identity(real_features.shape[1]), normalize=True)
    fid.set_dtype(torch.float64)
    fid.update(real_features.double(), real=True)
    fid.update(fake_features.double(), real=False)
    return float(fid.compute())


def kernel_distance(real_features, fake_features, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """KID (polynomial-kernel MMD^2, unbiased) mean and std over random subsets (torchmetrics KID). Subsets hold at
    most half of the smaller set, so their spread measures something (subsets of all the images are all equal)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    subset_size = min(subset_size, real_features.shape[0] // 2, fake_features.shape[0] // 2)
    torch.manual_seed(seed)  # torchmetrics draws the subsets with the global RNG
    kid = KernelInceptionDistance(
        feature=_Identity(real_features.shape[1]), subsets=subsets, subset_size=subset_size, normalize=True
    )
    kid.update(real_features.double(), real=True)
    kid.update(fake_features.double(), real=False)
    mean, std = kid.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Classifier Inception Score exp(E KL(p(y|x) || p(y))) from (N, classes) logits (torchmetrics IS)."""
    from torchmetrics.image.inception import InceptionScore

    torch.manual_seed(seed)  # torchmetrics shuffles before splitting, with the global RNG
    metric = InceptionScore(feature=_Identity(logits.shape[1]), splits=splits, normalize=False)
    metric.update(logits.double())
    mean, std = metric.compute()
    return float(mean), float(std)


def _kth_smallest(distances: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest value of each row (1-based): `kthvalue`'s values, from a partial sort about 10x faster."""
    return distances.topk(k, dim=1, largest=False).values[:, -1]


def _kth_neighbour_radii(features: torch.Tensor, k: int, chunk: int = 2000) -> torch.Tensor:
    radii = []
    for i in range(0, features.shape[0], chunk):
        d = torch.cdist(features[i : i + chunk], features)
        radii.append(_kth_smallest(d, k + 1))  # +1: the point itself is at distance 0
    return torch.cat(radii)


def _coverage(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 2000) -> float:
    inside = []
    for i in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[i : i + chunk], support)
        inside.append((d <= radii[None]).any(dim=1))
    return torch.cat(inside).float().mean().item()


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019): precision is the fraction of fakes inside the
    union of k-NN balls around the real features; recall the fraction of reals inside the balls around fakes."""
    real, fake = real_features.float(), fake_features.float()
    precision = _coverage(fake, real, _kth_neighbour_radii(real, k))
    recall = _coverage(real, fake, _kth_neighbour_radii(fake, k))
    return precision, recall


def class_histogram(logits: torch.Tensor) -> list[float]:
    """Fraction of samples the classifier assigns to each class (mode collapse shows as a missing class)."""
    counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()
    return (counts / counts.sum()).tolist()


def conditional_accuracy(logits: torch.Tensor, requested: torch.Tensor) -> tuple[float, list[float]]:
    """Overall and per-class accuracy of the classifier on samples generated for `requested` classes."""
    pred = logits.argmax(1).cpu()
    requested = requested.cpu()
    per_class = [(pred[requested == c] == c).double().mean().item() for c in range(logits.shape[1])]
    return (pred == requested).double().mean().item(), per_class


def nearest_neighbour_distances(queries: torch.Tensor, support: torch.Tensor, exclude_self: bool = False):
    """Euclidean distance from each query (N, d) to its nearest support point (M, d); with `exclude_self` the
    queries are the support and each point's own zero distance is skipped (leave-one-out)."""
    out = []
    for i in range(0, queries.shape[0], 2000):
        d = torch.cdist(queries[i : i + 2000].float(), support.float())
        out.append(_kth_smallest(d, 2 if exclude_self else 1))
    return torch.cat(out)


def memorized_share(train_features, fake_features, quantile: float = 0.01) -> tuple[float, float]:
    """Share of fakes whose nearest training image is closer than `quantile` of the training images'
    leave-one-out nearest-neighbour distances (the threshold, returned too). A sampler of new images from the data
    distribution scores about `quantile`; copies of training images score 1."""
    threshold = torch.quantile(nearest_neighbour_distances(train_features, train_features, exclude_self=True), quantile)
    share = (nearest_neighbour_distances(fake_features, train_features) < threshold).float().mean()
    return share.item(), threshold.item()
