"""`fetch`: download a known weights file into the cache, verify it, and unpack it.

The TorchScript file is checked by its published MD5; the official archive, which has no
published checksum, by its structure (`big-lama/config.yaml`, `big-lama/models/best.ckpt`, no
paths outside the folder) and by loading its generator with strict keys. A pinned SHA-256 in the
registry is checked for either. Nothing reaches its final place in the cache before it passed,
so discovery never picks up a half-downloaded or half-unpacked model.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from .checkpoint import load_checkpoint_generator
from .discovery import cache_dir
from .download import DownloadInterrupted, ProgressBar, download
from .errors import WeightsError, one_line
from .registry import REGISTRY, KnownWeights

DEFAULT_TIMEOUT = 10.0


@dataclass
class FetchResult:
    installed: Path           # what to pass to `load_model` / `--weights`
    sha256: str | None        # of the downloaded file; None when it was already installed
    preset: str | None        # the generator the archive holds (None for TorchScript or a custom size)
    already_present: bool = False


def known_weights(name: str) -> KnownWeights:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}") from None


def manual_hint(entry: KnownWeights, directory: Path) -> str:
    """What an offline user should do by hand (the error before it names the URL)."""
    place = (f"unzip it into {directory} (giving {directory / entry.installed})" if entry.archive
             else f"save it as {directory / entry.installed}")
    return (f"download {entry.filename} on a connected machine, then run `lama-backend fetch {entry.name} "
            f"--url /path/to/{entry.filename}` or {place}")


def as_url(location: str) -> str:
    """A local file (a download copied from elsewhere) becomes a file:// URL; URLs pass through."""
    if "://" not in location:
        path = Path(location).expanduser()
        if path.is_file():
            return path.resolve().as_uri()
    return location


def fetch(name: str, *, url: str | None = None, directory: Path | None = None, timeout: float = DEFAULT_TIMEOUT,
          force: bool = False, progress: Callable[[int, int | None, int], None] | None = None) -> FetchResult:
    """Fetch a registry entry by name; `url` replaces its published location (mirrors, tests)."""
    entry = known_weights(name)
    if url is not None:
        entry = dataclasses.replace(entry, url=as_url(url))
    return fetch_entry(entry, directory=directory, timeout=timeout, force=force, progress=progress)


def fetch_entry(entry: KnownWeights, *, directory: Path | None = None, timeout: float = DEFAULT_TIMEOUT,
                force: bool = False, progress: Callable[[int, int | None, int], None] | None = None) -> FetchResult:
    directory = Path(directory) if directory is not None else cache_dir()
    installed = directory / entry.installed
    if installed.exists() and not force:
        return FetchResult(installed, None, None, already_present=True)
    part = directory / (entry.filename + ".part")
    if progress is None:
        progress = ProgressBar(entry.name)
    try:
        result = download(entry.url, part, timeout=timeout, progress=progress)
    except DownloadInterrupted:
        raise  # running the command again continues the .part file
    except WeightsError as exc:
        raise WeightsError(f"{exc}; {manual_hint(entry, directory)}") from None
    if entry.md5 is not None and result.md5 != entry.md5:
        part.unlink()
        raise WeightsError(f"{entry.filename}: MD5 {result.md5} differs from the published {entry.md5} "
                           "(damaged or replaced download, deleted); run the command again")
    if entry.sha256 is not None and result.sha256 != entry.sha256:
        part.unlink()
        raise WeightsError(f"{entry.filename}: SHA-256 {result.sha256} differs from the pinned {entry.sha256} "
                           "(damaged or replaced download, deleted); run the command again")
    if entry.archive:
        preset = install_archive(entry, part, directory)
        part.unlink()
    else:
        part.replace(installed)
        preset = None
    return FetchResult(installed, result.sha256, preset)


def check_members(entry: KnownWeights, archive: zipfile.ZipFile, source: str) -> None:
    """Every required file present; nothing that would land outside the target folder."""
    names = archive.namelist()
    for name in names:
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
            raise WeightsError(f"{source}: archive member {name!r} points outside the archive folder")
    missing = [member for member in entry.required_members if member not in names]
    if missing:
        raise WeightsError(f"{source}: not the {entry.name} archive (missing {', '.join(missing)})")


def install_archive(entry: KnownWeights, archive_path: Path, directory: Path) -> str | None:
    """Unpack into a temporary folder beside the target, check it, then move it into place.

    A bad archive is deleted: keeping it would make the next run resume a file that is complete
    and wrong, and fail the same way forever.
    """
    try:
        with tempfile.TemporaryDirectory(prefix=f".{entry.name}-unpacking-", dir=directory) as scratch:
            preset = unpack_and_check(entry, archive_path, Path(scratch))
            target = directory / entry.installed
            if target.exists():
                shutil.rmtree(target)
            (Path(scratch) / entry.installed).replace(target)
        return preset
    except WeightsError as exc:
        archive_path.unlink(missing_ok=True)
        raise WeightsError(f"{exc} (download deleted; run the command again)") from None


def unpack_and_check(entry: KnownWeights, archive_path: Path, scratch: Path) -> str | None:
    """Structure first (cheap), then the generator's keys: the preset it holds, or a `WeightsError`."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            check_members(entry, archive, archive_path.name)
            archive.extractall(scratch)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise WeightsError(f"{archive_path.name}: damaged zip archive ({one_line(exc)})") from None
    preset = None
    for member in entry.required_members:
        if member.endswith(".ckpt"):
            try:
                _, preset = load_checkpoint_generator(scratch / member)  # strict generator keys
            except WeightsError as exc:
                raise WeightsError(f"{entry.filename}: its generator does not load: "
                                   f"{str(exc).replace(str(scratch), entry.filename)}") from None
    return preset
