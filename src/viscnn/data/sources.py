"""`open_image_sets`: turn a user's spec (folder, image, tensor file, 'demo', 'fashion-mnist') into image sets."""
from __future__ import annotations

import unicodedata
from pathlib import Path

import torch

from viscnn.data.classes import label_from_name, slugify
from viscnn.data.imageset import IMAGE_EXTENSIONS, ImageItem, ImageSet, check_image, is_image_file
from viscnn.data.safeload import IMAGES, load_tensors
from viscnn.errors import ViscnnError

TENSOR_EXTENSIONS = frozenset({".pt", ".pth", ".npy", ".safetensors"})
OVERALL = "overall"
_CONTROL = ("Cc", "Zl", "Zp")  # control characters (newline, tab, ...), line and paragraph separators
_SPEC_HELP = "give a folder, an image, a tensor file (.pt .pth .npy .safetensors), 'demo' or 'fashion-mnist[:test|:train][:N]'"


def open_image_sets(spec: str, class_names: list[str] | None = None, *, resize: bool = False) -> dict[str, ImageSet]:
    """Open the image sets a spec names, each by name, plus ``overall`` (the union of them all).

    ``spec`` is a folder (ImageFolder layout: one set per class subfolder; or loose images: one set named
    after the folder), a single image file, a tensor file ([N, C, H, W] or {"images", "labels"}), ``demo``
    (the bundled demo photos, built on first use) or ``fashion-mnist[:test|:train][:N]`` (one set per
    class, at most N images each; the test split by default). The keywords win over same-named folders:
    write ``./demo`` for a folder called demo. A subfolder's label is its leading integer, else its name
    matched against ``class_names``, else -1. Any fault in the input is a ViscnnError naming the path.
    ``resize`` lets tensor images whose size differs from the model's input be resized (see `ImageSet`).
    """
    if spec == "demo":
        from viscnn.data.demo import build_demo_set

        return _open_folder(build_demo_set(), class_names)
    if spec.split(":")[0] == "fashion-mnist":
        return _open_fashion_mnist(spec, resize)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ViscnnError(f"{path} does not exist ({_SPEC_HELP})")
    if path.is_dir():
        return _open_folder(path, class_names)
    suffix = path.suffix.lower()
    if suffix in TENSOR_EXTENSIONS:
        return _open_tensor_file(path, resize)
    if suffix in IMAGE_EXTENSIONS:
        check_image(path)
        return _with_overall([ImageSet(path.stem, [ImageItem(path)])])
    raise ViscnnError(f"{path} is not an image or tensor file (extension {suffix or '(none)'}; {_SPEC_HELP})")


def _with_overall(sets: list[ImageSet], tensor: torch.Tensor | None = None, resize: bool = False) -> dict[str, ImageSet]:
    result: dict[str, ImageSet] = {}
    for image_set in sets:
        if image_set.name == OVERALL:
            raise ViscnnError(f"a set may not be called {OVERALL!r}: viscnn uses that name for the union of all sets")
        if any(unicodedata.category(ch) in _CONTROL for ch in image_set.name):
            raise ViscnnError(f"set name {image_set.name!r} holds a control character (a newline, tab, ...), which no "
                              f"expression or message can show: rename the folder or file it comes from")
        result[image_set.name] = image_set
    result[OVERALL] = ImageSet(OVERALL, [item for s in sets for item in s.items], tensor, resize=resize)
    return result


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise ViscnnError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc


def _images_under(folder: Path) -> list[Path]:
    """Image files in a folder and its subfolders (hidden ones skipped), sorted; each header-checked."""
    images = []
    for entry in _listdir(folder):
        if entry.is_dir():
            images.extend(_images_under(entry))
        elif entry.is_file() and is_image_file(entry):
            check_image(entry)
            images.append(entry)
    return images


def _open_folder(folder: Path, class_names: list[str] | None) -> dict[str, ImageSet]:
    entries = _listdir(folder)
    if not entries:
        raise ViscnnError(f"folder {folder} is empty")
    loose = [p for p in entries if p.is_file() and is_image_file(p)]
    for path in loose:
        check_image(path)
    sets = []
    for sub in (p for p in entries if p.is_dir()):
        images = _images_under(sub)
        if not images:
            continue  # an empty class folder is no set
        label = label_from_name(sub.name, class_names)
        if class_names and label >= len(class_names):
            raise ViscnnError(f"folder {sub}: class index {label} is out of range for {len(class_names)} classes (rename it)")
        sets.append(ImageSet(sub.name, [ImageItem(p, label) for p in images]))
    if loose:
        names = {s.name for s in sets}
        name = folder.resolve().name or "images"
        sets.append(ImageSet(name if name not in names else f"{name}_loose", [ImageItem(p) for p in loose]))
    if not sets:
        extensions = " ".join(sorted(IMAGE_EXTENSIONS))
        raise ViscnnError(f"folder {folder} holds no images (looked for {extensions})")
    return _with_overall(sets)


def _read_tensor_file(path: Path) -> object:
    return load_tensors(path, "tensor file", resave=IMAGES)


def _check_images(images: object, path: Path) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise ViscnnError(f"tensor file {path} holds a {type(images).__name__}, not a tensor of images")
    shape = tuple(images.shape)
    if images.ndim == 4 and shape[1] not in (1, 3) and shape[3] in (1, 3):
        images = images.permute(0, 3, 1, 2)  # channels-last [N, H, W, C], as numpy users often store it
    if images.ndim != 4 or images.shape[1] not in (1, 3) or min(images.shape[2:]) < 1:
        raise ViscnnError(f"tensor file {path} holds shape {list(shape)}; expected images [N, C, H, W] with C = 1 or 3")
    if images.shape[0] == 0:
        raise ViscnnError(f"tensor file {path} holds no images (N = 0)")
    if images.dtype == torch.uint8:
        return images.contiguous()
    if not images.is_floating_point():
        raise ViscnnError(f"tensor file {path} holds {images.dtype} pixels; expected uint8 or 0-1 floats")
    images = images.float().contiguous()
    if not bool(torch.isfinite(images).all()):
        raise ViscnnError(f"tensor file {path} holds NaN or infinite pixels")
    low, high = float(images.min()), float(images.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ViscnnError(f"tensor file {path} holds pixels in [{low:.3g}, {high:.3g}]; expected 0-1 floats (or uint8)")
    return images.clamp(0, 1)


def _check_labels(labels: object, count: int, path: Path) -> list[int]:
    if labels is None:
        return [-1] * count
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ViscnnError(f"tensor file {path}: labels are not a list of integers ({exc})") from exc
    if labels.ndim != 1 or labels.shape[0] != count or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ViscnnError(f"tensor file {path}: labels must be {count} integers, got {labels.dtype} of shape {list(labels.shape)}")
    if count and int(labels.min()) < -1:
        raise ViscnnError(f"tensor file {path}: labels must be class indices or -1 (unknown), found {int(labels.min())}")
    return [int(v) for v in labels.tolist()]


def _open_tensor_file(path: Path, resize: bool) -> dict[str, ImageSet]:
    data = _read_tensor_file(path)
    labels = None
    if isinstance(data, dict):
        if "images" not in data:
            raise ViscnnError(f"tensor file {path} holds a dict without 'images' (keys: {', '.join(map(str, data)) or 'none'})")
        data, labels = data["images"], data.get("labels")
    images = _check_images(data, path)
    items = [ImageItem(i, label) for i, label in enumerate(_check_labels(labels, images.shape[0], path))]
    return _with_overall([ImageSet(path.stem, items, images, resize=resize)], images, resize)


def _parse_fashion_spec(spec: str) -> tuple[str, int | None]:
    parts = spec.split(":")[1:]
    split = parts.pop(0) if parts and parts[0] in ("train", "test") else "test"
    cap = None
    if parts and parts[0].isdigit() and int(parts[0]) > 0:
        cap = int(parts.pop(0))
    if parts:
        raise ViscnnError(f"bad image spec {spec!r}: use fashion-mnist[:test|:train][:N] with N > 0 images per class")
    return split, cap


def _open_fashion_mnist(spec: str, resize: bool) -> dict[str, ImageSet]:
    from viscnn.data.fashion_mnist import CLASSES, load_fashion_mnist

    split, cap = _parse_fashion_spec(spec)
    images, labels = load_fashion_mnist(split)
    tensor = images.unsqueeze(1)  # [N, 1, 28, 28] uint8
    sets = []
    for label, name in enumerate(CLASSES):
        indices = torch.nonzero(labels == label).flatten().tolist()[:cap]
        sets.append(ImageSet(slugify(name), [ImageItem(i, label) for i in indices], tensor, resize=resize))
    return _with_overall(sets, tensor, resize)
