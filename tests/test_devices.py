"""--device: "auto" takes a CUDA GPU, else Apple's GPU (MPS), else the CPU; a device that is
absent is one sentence. What the machine has is mocked: these run on any CPU."""

import pytest
import torch

from gannet.config import FIELDS
from gannet.errors import GannetError
from gannet.resources import resolve_device

from .conftest import gannet


@pytest.fixture
def machine(monkeypatch):
    """machine(cuda=..., mps=...): what torch says this machine has."""

    def have(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return have


@pytest.mark.parametrize(
    "cuda, mps, chosen", [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_takes_cuda_then_mps_then_the_cpu(machine, cuda, mps, chosen):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto") == torch.device(chosen)


def test_auto_passes_over_mps_for_work_in_float64(machine):
    machine(cuda=False, mps=True)
    assert resolve_device("auto", float64=True) == torch.device("cpu")  # the Parzen estimate's sums
    with pytest.raises(GannetError, match=r"^--device mps: Apple's GPU \(MPS\) has no float64, .*--device cpu\.$"):
        resolve_device("mps", float64=True)


def test_an_explicit_mps_is_taken_where_there_is_one(machine):
    machine(cuda=False, mps=True)
    assert resolve_device("mps") == torch.device("mps")


def test_an_absent_mps_is_one_sentence(machine, tmp_path, capsys):
    machine(cuda=False, mps=False)
    with pytest.raises(
        GannetError, match=r"^--device mps was asked for, but PyTorch sees no Apple GPU \(MPS\) here\.$"
    ):
        resolve_device("mps")
    code, out = gannet("sample", tmp_path / "run", "--device", "mps", "-o", tmp_path / "s.png", capsys=capsys)
    assert (
        code == 2
        and out.err == "gannet: error: --device mps was asked for, but PyTorch sees no Apple GPU (MPS) here.\n"
    )
    code, out = gannet("train", "toy1d", "--device", "mps", "--run-dir", tmp_path / "r", "--no-progress", capsys=capsys)
    assert code == 2 and out.err.endswith("sees no Apple GPU (MPS) here.\n") and "Traceback" not in out.err


def test_a_device_that_is_no_name_lists_mps_among_the_names():
    with pytest.raises(GannetError, match=r"'gpu' is not a device name \(try cpu, cuda, cuda:0 or mps\)"):
        resolve_device("gpu")


def test_a_device_gannet_cannot_compute_on_is_one_sentence(tmp_path, capsys):
    with pytest.raises(GannetError, match=r"^--device meta: gannet runs on cpu, cuda \(cuda:N\) or mps\.$"):
        resolve_device("meta")
    run = tmp_path / "r"
    code, out = gannet("train", "toy1d", "--device", "meta", "--run-dir", run, "--no-progress", capsys=capsys)
    assert code == 2 and out.err == "gannet: error: --device meta: gannet runs on cpu, cuda (cuda:N) or mps.\n"
    assert not run.exists()


def test_the_device_flag_says_what_auto_picks():
    help = FIELDS["device"].metadata["help"]
    assert "auto (a CUDA GPU if present, else Apple's MPS if present, else cpu)" in help and "mps" in help
