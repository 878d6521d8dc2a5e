"""Semi-supervised use of the discriminator (paper §7): a linear classifier on D's hidden
features, trained with few labels, against the same classifier on raw pixels and, where
`gannet infer` trained one, on the inference net's code E(x) (`gannet eval features`).

Features: the outputs of D's maxout layers, concatenated (240 + 240 for the MNIST preset), in
evaluation mode (no dropout). Both feature sets are standardised with statistics of the whole
unlabelled training split (allowed in semi-supervised learning), then a multinomial logistic
regression with a small L2 penalty is fitted by L-BFGS on the labelled examples only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gannet.networks import Discriminator


@torch.no_grad()
def discriminator_features(D: Discriminator, x: torch.Tensor, batch: int = 5000) -> torch.Tensor:
    """(N, Σ hidden units): every maxout layer's output, without dropout."""
    D.eval()
    out = []
    for chunk in x.split(batch):
        h, layers = chunk, []
        for layer in D.hidden:
            h = layer(h)
            layers.append(h)
        out.append(torch.cat(layers, dim=1))
    return torch.cat(out)


@torch.no_grad()
def encoder_features(E: torch.nn.Module, x: torch.Tensor, batch: int = 5000) -> torch.Tensor:
    """(N, latent_dim): the inference net's code E(x) of each image."""
    E.eval()
    return torch.cat([E(chunk) for chunk in x.split(batch)])


def labelled_subset(labels: torch.Tensor, per_class: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of `per_class` examples of each class (all examples if None), fixed by the seed."""
    if per_class is None:
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(seed)
    picks = [torch.nonzero(labels == c)[:, 0] for c in range(int(labels.max()) + 1)]
    return torch.cat([p[torch.randperm(len(p), generator=g)[:per_class]] for p in picks])


def fit_linear(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-3, steps: int = 200) -> torch.nn.Linear:
    """Multinomial logistic regression: mean cross-entropy + l2·‖W‖², by L-BFGS."""
    model = torch.nn.Linear(x.shape[1], int(y.max()) + 1).double()
    torch.nn.init.zeros_(model.weight)  # a convex problem: from zeros, the same fit every time
    torch.nn.init.zeros_(model.bias)
    x = x.double()
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y) + l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def linear_probe(train_x, train_y, test_x, test_y, per_class: int | None, seed: int = 0) -> float:
    """Test accuracy of a linear classifier fitted on `per_class` labelled examples per class."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)  # from all (unlabelled) training data
    idx = labelled_subset(train_y, per_class, seed)
    model = fit_linear((train_x[idx] - mean) / std, train_y[idx])
    with torch.no_grad():
        predicted = model(((test_x - mean) / std).double()).argmax(dim=1)
    return (predicted == test_y).double().mean().item()


def probe_table(
    D: Discriminator, train, train_y, test, test_y, sizes=(10, 100, None), encoder: torch.nn.Module | None = None
) -> dict[str, dict[str, float]]:
    """{"10" / "100" / "all": {"discriminator": acc, "pixels": acc[, "encoder": acc]}}."""
    features = {"discriminator": (discriminator_features(D, train), discriminator_features(D, test))}
    features["pixels"] = (train, test)
    if encoder is not None:
        features["encoder"] = (encoder_features(encoder, train), encoder_features(encoder, test))
    table = {}
    for n in sizes:
        table["all" if n is None else str(n)] = {
            name: linear_probe(x_train, train_y, x_test, test_y, n) for name, (x_train, x_test) in features.items()
        }
    return table
