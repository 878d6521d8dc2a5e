"""TensorBoard shows the game: each epoch's sample picture beside the scalars, and the config."""

import io

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import gannet


def events(run_dir):
    accumulator = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_each_epochs_picture_and_the_config_are_logged(tmp_path):
    run_dir = tmp_path / "toy"
    assert gannet("train", "toy1d", "--epochs", 2, "--run-dir", run_dir, "--no-progress")[0] == 0
    assert gannet("train", "--resume", run_dir, "--epochs", 3, "--no-progress")[0] == 0
    logged = events(run_dir)
    images = logged.Images("samples")
    assert [image.step for image in images] == [100, 200, 300]  # one per epoch, none twice after the resume
    for epoch, image in enumerate(images, 1):
        shown = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
        written = np.asarray(Image.open(run_dir / "samples" / f"epoch-{epoch:04d}.png").convert("RGB"))
        assert shown.shape == (image.height, image.width, 3) and np.array_equal(shown, written)
    texts = logged.Tensors("config/text_summary")
    assert len(texts) == 1  # written by the fresh run only
    text = texts[0].tensor_proto.string_val[0].decode()
    assert '"preset": "toy1d"' in text and '"epochs": 2' in text
    assert [s.step for s in logged.Scalars("loss/d")] == [50, 100, 150, 200, 250, 300]
