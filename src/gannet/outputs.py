"""Where commands write, and how much they may ask for: checked before any work starts.

A command that computes for minutes and then finds it cannot write its result has lost that
work; one asked for more than the machine holds runs until the memory is gone. So each command
first checks its output paths (`check_writable`, `check_folder`) and the size of what it will
hold (`check_fits`), and then writes each file whole or not at all (`write_file`).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from gannet.errors import GannetError

IMAGE_SUFFIXES = (".png", ".pdf", ".svg")
UMASK = os.umask(0)
os.umask(UMASK)  # read once, at import (os.umask can only be read by setting it): files get the mode plain writes would


class WriteFailed(GannetError, OSError):
    """A write that failed (a full disk, a read-only file system): one sentence for the command
    line, and still an OSError (with the file's name) for callers that handle those."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(f"Writing {path} failed ({error.strerror or error}); nothing was written there.")
        self.errno, self.strerror, self.filename = error.errno, error.strerror, str(path)

    def __str__(self) -> str:
        return self.args[0]


def check_writable(path: str | os.PathLike, suffixes: Sequence[str] = (), flag: str = "-o") -> Path:
    """`path` as a file a command may write: its name ends in one of `suffixes`, it is not a
    folder, and its folder exists or can be made, and takes a new file. The check writes and
    removes a temporary file (root passes any mode check) and removes the folders it made."""
    path = _named(path, flag)
    if path.name in ("", ".", ".."):  # argparse turns an empty -o "" into "."
        kinds = _either(suffixes) or "a file"
        raise GannetError(f"{flag} {str(path)!r} names no file; name a file to write ({kinds}).")
    if suffixes and path.suffix.lower() not in suffixes:
        raise GannetError(f"{flag} {path}: the file name must end in {_either(suffixes)}.")
    if path.is_dir():
        raise GannetError(f"{flag} {path} is a folder; name a file to write ({_either(suffixes) or 'a file'}).")
    _check_folder(path.parent, flag, path)
    return path


def check_folder(path: str | os.PathLike, flag: str = "-o") -> Path:
    """`path` as a folder a command may write files into: a folder, or one that can be made."""
    path = _named(path, flag)
    if path.exists() and not path.is_dir():
        raise GannetError(f"{flag} {path} is a file, not a folder; name a folder to write into.")
    _check_folder(path, flag, path)
    return path


def write_file(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path` (same suffix, so that writers choose
    the format by it) and rename it into place: a failure leaves no partial file and no folder
    made for it, and an OSError (a full disk, a read-only file system) is a WriteFailed."""
    path = Path(path)
    made, tmp = _missing_folders(path.parent), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(handle)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # the mode of a file written plainly, not mkstemp's 0600 (after the
        # writer: one that replaces the file, as safetensors' does, would bring 0600 back)
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        _remove_folders(made)
        if isinstance(error, OSError) and not isinstance(error, GannetError):
            raise WriteFailed(path, error) from None
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_file(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | os.PathLike, record: dict) -> Path:
    """`record` as indented JSON; NaN and infinities (which JSON does not have) are refused."""
    try:
        text = json.dumps(record, indent=2, allow_nan=False)
    except ValueError:
        raise GannetError(f"The result for {path} holds a number that is not finite; nothing was written.") from None
    return write_text(path, text + "\n")


def check_fits(asked: str, needed: int, advice: str = "") -> None:
    """Refuse `asked` (what the user asked for, in words) when its estimated `needed` bytes
    exceed the memory available now."""
    available = available_memory()
    if needed > available:
        raise GannetError(
            f"{asked} needs about {_size(needed)} of memory, and {_size(available)} is available; "
            f"{advice or 'ask for less'}."
        )


def available_memory() -> int:
    """Bytes this process may still allocate: MemAvailable, bounded by a cgroup's limit and
    an address-space limit (ulimit -v) where they are lower."""
    fits = [_meminfo("MemAvailable") or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    try:
        limit, used = (Path("/sys/fs/cgroup", n).read_text().strip() for n in ("memory.max", "memory.current"))
        if limit != "max":
            fits.append(int(limit) - int(used))
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        fits.append(soft - _meminfo("VmSize", "/proc/self/status"))
    return max(0, min(fits))


def check_count(flag: str, value: int, low: int = 1, high: int | None = None) -> int:
    """A count flag within [low, high]."""
    if value < low:
        also = f" (and at most {high:,})" if high is not None else ""
        raise GannetError(f"{flag} must be at least {low:,}{also}, not {value:,}.")
    if high is not None and value > high:
        raise GannetError(f"{flag} must be at most {high:,}, not {value:,}.")
    return value


MAX_SEED = 2**32 - 1  # the range training's seeds have (numpy's), for one meaning of a seed everywhere


def check_seed(value: int, flag: str = "--seed") -> int:
    return check_count(flag, value, 0, MAX_SEED)


def _named(path: str | os.PathLike, flag: str) -> Path:
    if not str(path).strip():
        raise GannetError(f"{flag} was given an empty path; name a file or folder.")
    return Path(path).expanduser()


def _check_folder(folder: Path, flag: str, path: Path) -> None:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise GannetError(f"{flag} {path} cannot be written: {existing} is a file, not a folder.")
    made = _missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        why = error.strerror or error
        raise GannetError(f"{flag} {path} cannot be written: {folder} takes no new file ({why}).") from None
    finally:
        _remove_folders(made)


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and its parents that do not exist, deepest first."""
    return [p for p in (folder, *folder.parents) if not p.exists()]


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; a folder that something else wrote into stays
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            break


def _meminfo(key: str, path: str = "/proc/meminfo") -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _either(suffixes: Sequence[str]) -> str:
    return " or ".join(", ".join(suffixes).rsplit(", ", 1)) if suffixes else ""


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""
