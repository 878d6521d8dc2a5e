"""Sample quality beyond Parzen (`gannet eval quality`).

MNIST: a small classifier trained by the project (`scripts/train_classifier.py`; its weights,
~450 KB, ship in the package) gives
  (a) class coverage: the histogram of predicted classes over the samples and its KL divergence
      to the uniform distribution (0 when every digit is drawn equally often; log 10 = 2.30 when
      G draws one digit only), and
  (b) an "MNIST FID": the Fréchet distance between Gaussians fitted to the classifier's
      64-dimensional features of the samples and of the test images.
2-D toys: the modes covered (a mode counts when at least 1 % of the samples fall within 3σ of
it) and the share of high-quality samples (within 3σ of some mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CLASSIFIER_PATH = Path(__file__).parent / "assets" / "mnist_classifier.safetensors"


class MnistClassifier(nn.Module):
    """Two convolutions and a 64-unit feature layer: ~99 % test accuracy, small enough to ship."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.features_layer = nn.Linear(32 * 7 * 7, 64)
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 1, 28, 28)
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)  # (B, 16, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 32, 7, 7)
        return F.relu(self.features_layer(h.flatten(1)))  # (B, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, 10) logits


def load_classifier(path: Path = CLASSIFIER_PATH) -> MnistClassifier:
    from safetensors.torch import load_file

    model = MnistClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def train_classifier(train: torch.Tensor, labels: torch.Tensor, epochs: int = 3, seed: int = 0) -> MnistClassifier:
    """Adam, batch 128, on (N, 784) images in [0, 1]."""
    torch.manual_seed(seed)
    model = MnistClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(train))
        for i in range(0, len(train), 128):
            idx = order[i : i + 128]
            loss = F.cross_entropy(model(train[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(model: MnistClassifier, x: torch.Tensor, batch: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes (N,), features (N, 64))."""
    classes, features = [], []
    for chunk in x.split(batch):
        f = model.features(chunk)
        features.append(f)
        classes.append(model.head(f).argmax(dim=1))
    return torch.cat(classes), torch.cat(features)


def class_coverage(classes: torch.Tensor, num_classes: int = 10) -> tuple[list[int], float]:
    """Counts per class and KL(histogram ‖ uniform) in nats (empty classes contribute 0)."""
    counts = torch.bincount(classes, minlength=num_classes).double()
    p = counts / counts.sum()
    kl = (torch.xlogy(p, p) + p * math.log(num_classes)).sum().item()  # float64 throughout
    return counts.long().tolist(), kl


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½), with the square roots from symmetric
    eigen-decompositions (Σa^½ Σb Σa^½ has the same trace-root as Σa Σb but is symmetric)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)

    def sqrtm(m: torch.Tensor) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(m)
        return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T

    root_a = sqrtm(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return ((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross).item()


def nearest_distances(x: torch.Tensor, reference: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Each row of x's Euclidean distance to its nearest row of `reference`, shape (len(x),)."""
    reference = reference.float()
    norms = reference.pow(2).sum(1)  # (R,)
    nearest = []
    for rows in x.float().split(chunk):
        squared = rows.pow(2).sum(1, keepdim=True) + norms - 2 * rows @ reference.T  # (chunk, R)
        nearest.append(squared.amin(1).clamp(min=0).sqrt())
    return torch.cat(nearest) if nearest else torch.empty(0)


def mnist_quality(generator: nn.Module, config, test: torch.Tensor, num_samples: int, seed: int) -> dict:
    """`gannet eval quality` of an MNIST generator: class_counts, kl_to_uniform and mnist_fid of
    `num_samples` samples from `seed` against the `test` images, and nearest_test_distance, the
    mean distance from a sample to its nearest test image (a blurred or averaged sample sits
    nearer than a sharp one: read it beside the scores that reward blur); a conditional G's
    label_accuracy too (sample i asked for digit i mod 10: is it classified as that digit?)."""
    from gannet.sampling import sample

    classifier = load_classifier()
    samples = sample(generator, config, num_samples, seed)
    classes, features = predict(classifier, samples)
    _, test_features = predict(classifier, test)
    counts, kl = class_coverage(classes)
    record = {"class_counts": counts, "kl_to_uniform": kl, "mnist_fid": frechet_distance(features, test_features)}
    record["nearest_test_distance"] = nearest_distances(samples, test).mean().item()
    if config.conditional:
        asked = torch.arange(num_samples) % 10
        drawn, _ = predict(classifier, sample(generator, config, num_samples, seed, label=asked))
        record["label_accuracy"] = (drawn == asked).double().mean().item()
    return record


@dataclass
class ToyQuality:
    modes_covered: int
    modes: int
    high_quality: float  # share of samples within 3σ of some mode


def toy_quality(samples: torch.Tensor, modes: torch.Tensor, std: float, min_share: float = 0.01) -> ToyQuality:
    distance = torch.cdist(samples.double(), modes.double())  # (N, K)
    nearest, which = distance.min(dim=1)
    close = nearest <= 3 * std
    counts = torch.bincount(which[close], minlength=len(modes))
    covered = int((counts >= min_share * len(samples)).sum())
    return ToyQuality(covered, len(modes), close.double().mean().item())
