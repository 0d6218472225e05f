"""Assemble a training folder from photographs that installed packages ship.

No dataset can be downloaded on the machines this project trains its default model on, but a
few packages carry real photographs. This module gathers them into `OUT/train` and
`OUT/heldout` (a fixed, name-based split for evaluation) and writes `OUT/manifest.json` recording
every file's origin, licence and checksum, so the shipped model's data is reproducible and its
licences are known. Procedural textures can add variety; they are marked as generated.

Never used here: Debian's `plasma-workspace-wallpapers` and `palapeli-data`, which the project
reserves for evaluation.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

LOG = logging.getLogger(__name__)

RESERVED_FOR_EVALUATION = ("plasma-workspace-wallpapers", "palapeli-data")
MATE_NATURE_DIR = Path("/usr/share/backgrounds/mate/nature")
BACKGROUNDS_DIR = Path("/usr/share/backgrounds")
DOC_DIR = Path("/usr/share/doc")
# Debian's lomiri-wallpapers-16.04 / -20.04 (Ubuntu community wallpaper-contest photographs) install
# into BACKGROUNDS_DIR; the licence of each file is read from the package's DEP-5 copyright file.
# Only the photographs: the packages' gradients and illustrations (umang, Fossa, Infinite-Sea,
# Painting-Colors, warty-final-ubuntu) would teach flat colour fields, as the textures did.
LOMIRI_PHOTOS = {
    "lomiri-wallpapers-16.04": ("Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg",
                                "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg",
                                "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
                                "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg",
                                "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
                                "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
                                "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg"),
    "lomiri-wallpapers-20.04": ("Kleiber_by_Lukas_Baubkus.jpg",),
}

# Licences as stated in each package's own documentation (skimage/data/_fetchers.py docstrings,
# sklearn/datasets/images/README.txt, /usr/share/doc/mate-backgrounds/copyright). Left out on
# purpose: skimage's motorcycle pair (no licence stated) and retina (not a natural photograph).
SKIMAGE_PHOTOS = {
    "astronaut.png": "public domain (NASA)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "rocket.jpg": "public domain (SpaceX)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "brick.png": "CC0 (CC0Textures Bricks25), greyscale",
    "grass.png": "CC0 (CC0Textures), greyscale",
    "gravel.png": "CC0 (CC0Textures Gravel04), greyscale",
}
SKLEARN_PHOTOS = {
    "china.jpg": "CC BY 2.0 (danielbuechele)",
    "flower.jpg": "CC BY 2.0 (vultilion)",
}
# Held out for the project's own evaluation set: a fixed choice across sources and content.
HELDOUT_NAMES = frozenset({"mate-nature-Garden", "mate-nature-Storm", "skimage-coffee", "sklearn-flower"})


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    split: str
    source: str
    origin: str
    licence: str
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class Candidate:
    """A photograph found on this machine, not yet copied."""

    name: str
    source: str
    origin: Path
    licence: str


def _module_dir(module_name: str, sub: str) -> Path | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return Path(module.__file__).parent / sub


def dep5_licences(copyright_text: str) -> dict[str, str]:
    """`Files:` pattern -> `License:` short name from a Debian machine-readable copyright file."""
    licences: dict[str, str] = {}
    for paragraph in copyright_text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1].strip() and ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
        if "files" in fields and "license" in fields:
            for pattern in fields["files"].split():
                licences[pattern] = fields["license"]
    return licences


def find_lomiri_photos(backgrounds: Path = BACKGROUNDS_DIR, docs: Path = DOC_DIR) -> list[Candidate]:
    """The photographs of the lomiri-wallpapers packages that are installed, with their licences."""
    found: list[Candidate] = []
    for package, names in LOMIRI_PHOTOS.items():
        copyright_file = docs / package / "copyright"
        if not copyright_file.is_file():
            LOG.warning("Debian package %s is not installed (apt-get install %s)", package, package)
            continue
        licences = dep5_licences(copyright_file.read_text(encoding="utf-8", errors="replace"))
        for name in names:
            path = backgrounds / name
            licence = next((value for pattern, value in licences.items() if pattern.rsplit("/", 1)[-1] == name), None)
            if not path.is_file() or licence is None:
                LOG.warning("%s: %s is missing or has no licence entry; skipped", package, name)
                continue
            found.append(Candidate(f"lomiri-{Path(name).stem}", f"debian:{package}", path, licence))
    return found


def find_package_photos() -> list[Candidate]:
    """Every known photograph that is installed here; missing packages are logged, not fatal."""
    found: list[Candidate] = []
    if MATE_NATURE_DIR.is_dir():
        for path in sorted(MATE_NATURE_DIR.glob("*.jpg")):
            found.append(Candidate(f"mate-nature-{path.stem}", "debian:mate-backgrounds", path, "GPL-2+"))
    else:
        LOG.warning("Debian package mate-backgrounds is not installed (apt-get install mate-backgrounds)")
    found.extend(find_lomiri_photos())
    for module, sub, table in (("skimage", "data", SKIMAGE_PHOTOS), ("sklearn", "datasets/images", SKLEARN_PHOTOS)):
        folder = _module_dir(module, sub)
        if folder is None:
            LOG.warning("Python package %s is not installed; its sample photos are skipped", module)
            continue
        for filename, licence in table.items():
            path = folder / filename
            if path.is_file():
                found.append(Candidate(f"{module}-{Path(filename).stem}", f"pypi:{'scikit-image' if module == 'skimage' else 'scikit-learn'}",
                                       path, licence))
    for candidate in found:
        if any(reserved in str(candidate.origin) for reserved in RESERVED_FOR_EVALUATION):
            raise RuntimeError(f"{candidate.origin} belongs to a package reserved for evaluation")
    return found


def procedural_texture(seed: int, size: int = 768) -> np.ndarray:
    """A colourful fractal-noise texture (sum of upsampled random octaves), H x W x 3 uint8."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size, 3), np.float64)
    for octave in range(1, 7):
        cells = 2 ** octave
        noise = rng.random((cells + 1, cells + 1, 3))
        upsampled = np.asarray(Image.fromarray((noise * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                               np.float64) / 255.0
        image += upsampled / octave
    image -= image.min(axis=(0, 1))
    image /= image.max(axis=(0, 1)) + 1e-9
    tint = rng.random(3) * 0.6 + 0.4
    return np.clip(image * tint * 255.0, 0, 255).astype(np.uint8)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_entry(out: Path, name: str, split: str, source: str, origin: str, licence: str,
                 write: Callable[[Path], None], suffix: str) -> ManifestEntry:
    relative = Path(split) / f"{name}{suffix}"
    destination = out / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    write(destination)
    with Image.open(destination) as image:
        width, height = image.size
    return ManifestEntry(relative.as_posix(), split, source, origin, licence, _sha256(destination), width, height)


def assemble(out: Path, textures: int = 0, candidates: Iterable[Candidate] | None = None) -> list[ManifestEntry]:
    """Copy the photographs (and optional procedural textures) into `out`; write the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    entries: list[ManifestEntry] = []
    for candidate in candidates if candidates is not None else find_package_photos():
        split = "heldout" if candidate.name in HELDOUT_NAMES else "train"
        entries.append(_write_entry(out, candidate.name, split, candidate.source, str(candidate.origin),
                                    candidate.licence, lambda dst, src=candidate.origin: shutil.copyfile(src, dst),
                                    candidate.origin.suffix.lower()))
    for index in range(textures):
        pixels = procedural_texture(seed=index)
        entries.append(_write_entry(out, f"texture-{index:03d}", "train", "generated:procedural_texture",
                                    f"lama_training.offline_data.procedural_texture(seed={index})", "CC0 (generated)",
                                    lambda dst, px=pixels: Image.fromarray(px).save(dst), ".png"))
    if not any(entry.split == "train" for entry in entries):
        raise RuntimeError("no training images found: install mate-backgrounds, scikit-image or scikit-learn")
    manifest = {"reserved_for_evaluation_never_used": list(RESERVED_FOR_EVALUATION),
                "files": [asdict(entry) for entry in entries]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return entries
