"""gannet: Generative Adversarial Nets (Goodfellow et al., 2014) in PyTorch.

The Python API the `gannet` command is a layer over:

    from gannet import TrainConfig, preset_config, train, load_generator, sample
    run_dir = train(preset_config("toy1d"), "runs/toy")
    generator, config, _ = load_generator(run_dir)
    x = sample(generator, config, n=64)
    path, _ = average_checkpoints("runs/mnist", first=280, last=550, every=10)  # the mean generator
"""

from importlib.metadata import PackageNotFoundError, version

from gannet.averaging import average_checkpoints
from gannet.config import TrainConfig
from gannet.errors import GannetError
from gannet.presets import preset_config
from gannet.sampling import load_generator, sample
from gannet.train import train

__all__ = ["GannetError", "TrainConfig", "average_checkpoints", "load_generator", "preset_config", "sample", "train"]
try:
    __version__ = version("gannet")  # pyproject.toml's, the one place the version is written
except PackageNotFoundError:  # run from a source tree that was never installed (PYTHONPATH=src)
    __version__ = "0+unknown"
