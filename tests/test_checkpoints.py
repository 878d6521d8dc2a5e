import hashlib
import pickle

import pytest
import torch
from safetensors.torch import save_file

from gannet import checkpoints
from gannet.config import TrainConfig
from gannet.errors import GannetError


def save(tmp_path, epoch, keep=2):
    weights = {"generator.w": torch.full((2, 2), float(epoch)), "discriminator.b": torch.zeros(3)}
    state = {"epoch": epoch, "step": epoch * 10, "x": torch.ones(1)}
    return checkpoints.save(tmp_path, weights, state, TrainConfig(), keep)


def test_round_trip_and_newest_first(tmp_path):
    for epoch in (1, 2, 3):
        save(tmp_path, epoch)
    tensors, metadata, path = checkpoints.load_weights(tmp_path)
    assert path.name == "epoch-0003.safetensors" and metadata["step"] == "30"
    assert torch.equal(tensors["generator.w"], torch.full((2, 2), 3.0))
    assert checkpoints.checkpoint_config(metadata, path) == TrainConfig()
    assert checkpoints.load_state(path)["step"] == 30
    g, d = checkpoints.split_weights(tensors)
    assert set(g) == {"w"} and set(d) == {"b"}


def test_only_the_newest_are_kept_and_no_temporary_files_remain(tmp_path):
    for epoch in range(1, 6):
        save(tmp_path, epoch, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch-0004.safetensors", "epoch-0004.state.pt", "epoch-0005.safetensors", "epoch-0005.state.pt"]


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(GannetError, match="is not a gannet checkpoint"):
        checkpoints.load_weights(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x07" * 300)
    with pytest.raises(GannetError, match="not a readable safetensors file"):
        checkpoints.load_weights(path)


def test_a_run_directory_without_checkpoints_is_refused(tmp_path):
    with pytest.raises(GannetError, match="holds no checkpoint"):
        checkpoints.load_weights(tmp_path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create a file when unpickled


def test_a_crafted_state_file_cannot_run_code(tmp_path):
    path = save(tmp_path, 1)
    marker = tmp_path / "pwned"
    crafted = pickle.dumps({"step": _Exploit(str(marker))}, protocol=2)
    checkpoints.state_path(path).write_bytes(crafted)
    # first layer: the state's SHA-256, recorded in the weights file, no longer matches
    with pytest.raises(GannetError, match="state.pt is corrupt: its content does not match the SHA-256"):
        checkpoints.load_state(path)
    # second layer: an attacker who also rewrites the recorded digest meets weights_only loading
    tensors, metadata, _ = checkpoints.load_weights(path)
    checkpoints._write_weights(path, tensors, {**metadata, "state_sha256": hashlib.sha256(crafted).hexdigest()})
    with pytest.raises(GannetError, match="not a safe gannet training state"):
        checkpoints.load_state(path)
    assert not marker.exists()


def test_a_flipped_bit_in_the_weights_is_caught(tmp_path):
    path = save(tmp_path, 1)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's bytes: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(GannetError, match="is corrupt: its content does not match the SHA-256"):
        checkpoints.load_weights(path)


def test_checkpoints_without_a_digest_load_only_when_asked_for(tmp_path):
    """Format 1 had no SHA-256, and an edit can remove one: refused, unless --allow-unverified."""
    path = save(tmp_path, 1)
    tensors, metadata, _ = checkpoints.load_weights(path)
    old = {k: v for k, v in metadata.items() if k not in ("sha256", "state_sha256")} | {"format_version": "1"}
    checkpoints.write_atomic(path, checkpoints.safetensors_bytes(tensors, metadata=old))
    with pytest.raises(GannetError, match="carries no SHA-256 digest .* with --allow-unverified"):
        checkpoints.load_weights(path)
    checkpoints.allow_unverified(True)
    try:
        assert checkpoints.load_weights(path)[1]["format_version"] == "1"
        assert checkpoints.load_state(path)["step"] == 10
    finally:
        checkpoints.allow_unverified(False)


def test_a_renamed_digest_key_does_not_switch_the_check_off(tmp_path):
    path = save(tmp_path, 1)
    tensors, metadata, _ = checkpoints.load_weights(path)
    tensors = {k: v.clone() for k, v in tensors.items()}
    next(iter(tensors.values())).view(-1)[0] += 1  # a flipped weight
    renamed = {("sha256_" if k == "sha256" else k): v for k, v in metadata.items()}
    checkpoints.write_atomic(path, checkpoints.safetensors_bytes(tensors, metadata=renamed))
    with pytest.raises(GannetError, match="carries no SHA-256 digest"):
        checkpoints.load_weights(path)


def test_a_safetensors_file_of_another_tool_is_named_as_such(tmp_path):
    path = tmp_path / "model.safetensors"
    checkpoints.write_atomic(path, checkpoints.safetensors_bytes({"w": torch.zeros(2)}, metadata={"format": "pt"}))
    with pytest.raises(GannetError, match=r"a safetensors file of another tool \(format 'pt'\)"):
        checkpoints.load_weights(path)


def test_evaluations_write_into_the_run_or_beside_a_loose_weights_file(tmp_path):
    from gannet.checkpoints import run_dir_of

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "epoch-0003.safetensors").touch()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "weights.safetensors").touch()
    assert run_dir_of(tmp_path / "run") == tmp_path / "run"
    assert run_dir_of(tmp_path / "run" / "checkpoints" / "epoch-0003.safetensors") == tmp_path / "run"
    assert run_dir_of(tmp_path / "elsewhere" / "weights.safetensors") == tmp_path / "elsewhere"


def test_a_run_directory_stands_for_its_mean_then_its_moving_average_then_itself(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert checkpoints.sampled(tmp_path) == tmp_path  # resolved later to its newest checkpoint
    (folder / "ema.safetensors").touch()  # --ema-decay
    assert checkpoints.sampled(tmp_path) == folder / "ema.safetensors"
    (folder / "average.safetensors").touch()  # --average-from, once averaging has begun
    assert checkpoints.sampled(tmp_path) == folder / "average.safetensors"
    assert checkpoints.sampled(folder / "epoch-0001.safetensors") == folder / "epoch-0001.safetensors"
    assert checkpoints.sampled("mnist") == "mnist"  # a shipped model's name
