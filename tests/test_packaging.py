"""What gannet is as a package: its version (one place: pyproject.toml), its type marker, and
the shell completion that `gannet completion` prints."""

import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import gannet

from .conftest import ROOT
from .conftest import gannet as run_gannet

PYPROJECT = (ROOT / "pyproject.toml").read_text()  # read as text: tomllib is Python 3.11's, gannet takes 3.10
SUBCOMMANDS = ("train", "sample", "average", "eval", "figures", "export", "infer", "presets", "data", "completion")


def test_the_version_is_pyprojects(capsys):
    declared = re.search(r'^version = "(.+)"$', PYPROJECT, re.M).group(1)
    assert gannet.__version__ == version("gannet") == declared
    with pytest.raises(SystemExit) as exit_:
        run_gannet("--version")
    assert exit_.value.code == 0 and capsys.readouterr().out == f"gannet {declared}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", declared)


def test_the_version_command_runs_as_installed():
    result = subprocess.run([sys.executable, "-m", "gannet", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout == f"gannet {gannet.__version__}\n"


def test_the_package_says_it_is_typed():
    assert (Path(gannet.__file__).parent / "py.typed").is_file()
    package_data = PYPROJECT.split("[tool.setuptools.package-data]")[1].split("\n[")[0]
    assert re.search(r'^gannet = \[.*"py\.typed".*\]$', package_data, re.M)


def completion(shell, capsys) -> str:
    code, out = run_gannet("completion", shell, capsys=capsys)
    assert code == 0
    return out.out


def test_the_bash_completion_is_valid_bash_naming_commands_and_flags(capsys, tmp_path):
    script = completion("bash", capsys)
    (tmp_path / "gannet.bash").write_text(script)
    subprocess.run(["bash", "-n", tmp_path / "gannet.bash"], check=True)  # parses
    assert all(re.search(rf"\b{name}\b", script) for name in SUBCOMMANDS)
    assert "--epochs" in script and "--format" in script and "--lr-milestones" in script
    assert "_shtab_gannet_sample_pos_0_COMPGEN=_shtab_compgen_files" in script  # a run directory completes as a path


def test_bash_completes_a_subcommand_and_a_flag(capsys, tmp_path):
    (tmp_path / "gannet.bash").write_text(completion("bash", capsys))
    complete = "source gannet.bash; COMP_WORDS=({words}); COMP_CWORD={at}; _shtab_gannet; echo ${{COMPREPLY[@]}}"
    for words, at, expected in (("gannet ex", 1, "export"), ("gannet train --epo", 2, "--epochs")):
        shell = subprocess.run(
            ["bash", "-c", complete.format(words=words, at=at)], cwd=tmp_path, capture_output=True, text=True
        )
        assert shell.stdout.split() == [expected]


def test_the_zsh_completion_names_the_commands(capsys, tmp_path):
    script = completion("zsh", capsys)
    assert script.startswith("#compdef gannet")
    assert all(re.search(rf"\b{name}\b", script) for name in SUBCOMMANDS) and "--epochs" in script
    if shutil.which("zsh"):
        (tmp_path / "_gannet").write_text(script)
        subprocess.run(["zsh", "-n", tmp_path / "_gannet"], check=True)


def test_an_unknown_shell_is_one_sentence(capsys):
    assert run_gannet("completion", "fish") == (2, None)
    assert "invalid choice: 'fish' (choose from 'bash', 'zsh')" in capsys.readouterr().err


def test_an_uninstalled_source_tree_still_has_a_version(monkeypatch):
    import importlib
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    try:
        assert importlib.reload(gannet).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(gannet)
    assert gannet.__version__ == version("gannet")
