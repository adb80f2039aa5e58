"""Clusters of unlabelled training images, for self-conditioned GANs (`hf-dgm train gan --self-condition K`).

Liu et al. ("Diverse Image Generation via Self-Conditioned GANs", CVPR 2020) cluster the images in the
discriminator's feature space and re-cluster during training; hf-dgm clusters once, before training, on the pixels:
k-means (Lloyd's iterations from a k-means++ seeding) on the images scaled to [0, 1]. A run above CLUSTERING_SIZE
clusters its images decoded at that size, as a run at that size decodes them, so that a model grown from a 32 px
stage (`--grow-from`) finds that stage's clusters. It runs on the CPU with a fixed seed, whatever the training
device, so every process of a distributed run, a resumed run and a later stage find the same clusters.

A conditional GAN (`--conditional`) is self-conditioned within its classes: the K clusters are shared among the
classes in proportion to their images (each class at least one) and each class's images are clustered on their own,
so every cluster belongs to one class.
"""

import torch

CLUSTERING_SIZE = 32  # a run at a larger size clusters its images decoded at this size
CLUSTERING_SEED = 0
MAX_ITERATIONS = 50


def clustering_features(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 rows (N, C * H * W) in [0, 1]."""
    return (images.cpu().float() / 255.0).flatten(1)


def kmeans(x: torch.Tensor, k: int, seed: int = CLUSTERING_SEED) -> torch.Tensor:
    """Each row's cluster (N,) int64: k-means++ seeding, then Lloyd's iterations until no row changes cluster or
    MAX_ITERATIONS; a cluster that loses all its rows keeps its centre."""
    if not 2 <= k <= len(x):
        raise ValueError(f"cannot find {k} clusters in {len(x)} images: expected 2 <= K <= the number of images.")
    generator = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(len(x), (1,), generator=generator)]
    nearest = torch.cdist(x, centres).squeeze(1).square()  # squared distance to the nearest centre so far (N,)
    for _ in range(k - 1):
        total = nearest.sum()  # 0 when every row is a centre already: any row then
        pick = (
            torch.multinomial(nearest / total, 1, generator=generator)
            if total > 0
            else torch.randint(len(x), (1,), generator=generator)
        )
        centre = x[pick]
        centres = torch.cat([centres, centre])
        nearest = torch.minimum(nearest, torch.cdist(x, centre).squeeze(1).square())
    assignment = torch.cdist(x, centres).argmin(1)
    for _ in range(MAX_ITERATIONS):
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assignment, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, assignment):
            break
        assignment = new
    return assignment


def cluster_images(images: torch.Tensor, k: int) -> tuple[torch.Tensor, list[float]]:
    """(each image's cluster (N,) int64 on the CPU, the clusters' frequencies) of uint8 images (N, C, H, W); empty
    clusters are dropped (renumbered in order), so every frequency is positive."""
    assignment = kmeans(clustering_features(images), k)
    used, assignment = torch.unique(assignment, return_inverse=True)
    counts = torch.bincount(assignment, minlength=len(used))
    return assignment, (counts.double() / len(assignment)).tolist()


def allot_clusters(class_sizes: list[int], k: int) -> list[int]:
    """K clusters shared among classes of these sizes: in proportion to the sizes (largest remainders), each class at
    least one and at most one per image."""
    if not len(class_sizes) <= k <= sum(class_sizes) or min(class_sizes) < 1:
        raise ValueError(
            f"cannot share {k} clusters among {len(class_sizes)} classes of {sum(class_sizes)} images: expected "
            "the number of classes <= K <= the number of images, and every class with an image."
        )
    shares = [max(1.0, k * n / sum(class_sizes)) for n in class_sizes]
    allotted = [min(int(s), n) for s, n in zip(shares, class_sizes)]
    missing = k - sum(allotted)  # < 0 where the classes raised to one cluster took more than their share
    step = 1 if missing > 0 else -1
    by_remainder = sorted(range(len(shares)), key=lambda c: step * (allotted[c] - shares[c]))
    while missing:
        for c in by_remainder:
            if missing and 1 <= allotted[c] + step <= class_sizes[c]:
                allotted[c] += step
                missing -= step
    return allotted


def cluster_within_classes(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int
) -> tuple[torch.Tensor, list[float], list[int]]:
    """(each image's cluster (N,), the clusters' frequencies, each cluster's class) for a conditional model: the
    classes' images clustered apart (`allot_clusters`), numbered class by class."""
    labels = labels.cpu()
    sizes = torch.bincount(labels, minlength=num_classes).tolist()
    if 0 in sizes:
        raise ValueError(
            f"class {sizes.index(0)} has no training images: a conditional GAN is self-conditioned within each class."
        )
    assignment = torch.empty(len(labels), dtype=torch.long)
    frequencies, owners = [], []
    for c, k_c in enumerate(allot_clusters(sizes, k)):
        members = (labels == c).nonzero().squeeze(1)
        if k_c == 1:
            within, shares = torch.zeros(len(members), dtype=torch.long), [1.0]
        else:
            within, shares = cluster_images(images[members], k_c)
        assignment[members] = within + len(frequencies)
        frequencies += [share * len(members) / len(labels) for share in shares]
        owners += [c] * len(shares)
    return assignment, frequencies, owners
