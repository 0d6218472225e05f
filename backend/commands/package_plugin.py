"""`lama-backend package-plugin krita|gimp -o OUT`: build an editor plugin's installable zip.

Each target is one row of `TARGETS`: which files of the source checkout go where in the zip, and
where the stdlib-only client (`backend/client/`, region logic included) is copied so the plugin
runs on the editor's own Python with nothing else installed. Adding an editor is adding a row.
The zip is reproducible: sorted entries, fixed timestamps, no bytecode caches.
"""
from __future__ import annotations

import argparse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lama_training.utils.cli import CommandError

from .. import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = REPO_ROOT / "backend" / "client"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class PluginTarget:
    """How one editor's bundle is laid out."""

    source: str                 # folder of the plugin in the checkout, relative to REPO_ROOT
    entries: tuple[str, ...]    # files/folders inside `source` copied to the zip root under the same name
    client_dest: str            # where the client package lands inside the zip
    default_name: str           # output file name when -o is a directory or missing
    install_hint: str           # printed after building
    executables: tuple[str, ...] = ()  # zip names that need the executable bit (GIMP plug-in entry files)


TARGETS: dict[str, PluginTarget] = {
    # Krita's "Tools > Scripts > Import Python Plugin from File" wants <name>.desktop, the <name>/
    # package and an optional <name>.action (shortcuts) at any depth of the zip.
    "krita": PluginTarget(
        source="krita_plugin",
        entries=("lama_inpaint.desktop", "lama_inpaint.action", "lama_inpaint"),
        client_dest="lama_inpaint/lama_client",
        default_name="lama_inpaint-krita-%s.zip" % __version__,
        install_hint="Krita: Tools > Scripts > Import Python Plugin from File..., pick the zip, restart Krita, "
                     "then enable the docker in Settings > Dockers > LaMa Inpaint.",
    ),
    # GIMP 3 loads plug-ins/<name>/<name>.py, and only when that file is executable.
    "gimp": PluginTarget(
        source="gimp_plugin",
        entries=("lama_inpaint",),
        client_dest="lama_inpaint/lama_client",
        default_name="lama_inpaint-gimp-%s.zip" % __version__,
        install_hint="GIMP 3: unzip into the plug-ins folder of your GIMP profile (Linux ~/.config/GIMP/3.0/plug-ins/, "
                     "Windows %APPDATA%\\GIMP\\3.0\\plug-ins\\, macOS ~/Library/Application Support/GIMP/3.0/plug-ins/) "
                     "so that lama_inpaint/lama_inpaint.py lies there, restart GIMP, then use "
                     "Filters > Enhance > Inpaint Selection (LaMa).",
        executables=("lama_inpaint/lama_inpaint.py",),
    ),
}


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.is_dir():
            if child.name not in _SKIP_DIRS:
                yield from _walk(child)
        elif child.suffix not in _SKIP_SUFFIXES:
            yield child


def bundle_files(target: PluginTarget) -> list[tuple[str, Path]]:
    """(name in zip, file on disk) for every file of the bundle, sorted by name."""
    source = REPO_ROOT / target.source
    files: list[tuple[str, Path]] = []
    for entry in target.entries:
        path = source / entry
        if not path.exists():
            raise CommandError(f"{path} is missing: package-plugin needs a source checkout of the project")
        files += [(p.relative_to(source).as_posix(), p) for p in _walk(path)]
    if not (CLIENT_DIR / "__init__.py").is_file():
        raise CommandError(f"{CLIENT_DIR} is missing: package-plugin needs a source checkout of the project")
    files += [(f"{target.client_dest}/{p.relative_to(CLIENT_DIR).as_posix()}", p) for p in _walk(CLIENT_DIR)]
    names = [name for name, _ in files]
    if len(set(names)) != len(names):
        raise CommandError(f"the plugin folder already holds {target.client_dest}: remove that stale copy")
    return sorted(files)


def build_bundle(editor: str, output: Path) -> Path:
    """Write the zip for `editor` to `output` (a file, or a directory to put the default name in)."""
    target = TARGETS[editor]
    if output.is_dir():
        output = output / target.default_name
    if output.suffix != ".zip":
        raise CommandError(f"{output}: the output must end in .zip (or be an existing directory)")
    output.parent.mkdir(parents=True, exist_ok=True)
    files = bundle_files(target)
    # Folder entries as `zip -r` writes them: Krita's importer finds the package by its "name/" entry.
    folders = sorted({name.rsplit("/", i)[0] + "/" for name, _ in files for i in range(1, name.count("/") + 1)})
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            info = zipfile.ZipInfo(folder, date_time=_FIXED_TIME)
            info.external_attr = (0o40755 << 16) | 0x10  # unix directory + MS-DOS directory flag
            archive.writestr(info, b"")
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name in target.executables else 0o644) << 16
            archive.writestr(info, path.read_bytes())
    return output


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("package-plugin", help="build the installable plugin zip for an editor")
    parser.add_argument("editor", choices=sorted(TARGETS), help="which editor's plugin")
    parser.add_argument("-o", "--output", type=Path, default=Path("."),
                        help="zip file to write, or a directory for the default name (default: .)")
    parser.set_defaults(func=package_plugin)


def package_plugin(args: argparse.Namespace) -> int:
    path = build_bundle(args.editor, args.output)
    print(path)
    print(TARGETS[args.editor].install_hint)
    return 0
