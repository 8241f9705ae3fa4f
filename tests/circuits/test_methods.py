"""The method registry: every method is known whichever method module was imported first."""
import json
import subprocess
import sys

import pytest
import torch

from viscnn.circuits.methods import all_methods, get_method
from viscnn.errors import ViscnnError

EVERY_METHOD = ["ablation", "actgrad", "actgrad_signed", "force", "learned", "magnitude", "random", "snip", "worst"]

FIRST_IMPORT = """
import json, sys
import viscnn.circuits.methods.{first}
from viscnn.circuits.methods import all_methods, get_method
print(json.dumps({{"named": get_method(sys.argv[1]).name, "all": sorted(all_methods())}}))
"""


@pytest.mark.parametrize("first, asked", [("actgrad", "snip"), ("learned", "random"), ("snip", "worst")])
def test_one_method_module_imported_first_hides_no_other(first, asked):
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORT.format(first=first), asked], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["named"] == asked
    assert answer["all"] == EVERY_METHOD


def test_all_methods_and_unknown_names():
    assert sorted(all_methods()) == EVERY_METHOD
    assert all(method.description for method in all_methods().values())
    assert not get_method("learned").normalise and get_method("actgrad").normalise
    with pytest.raises(ViscnnError, match="unknown circuit method 'best': choose from ablation, actgrad"):
        get_method("best")


def test_options_are_named_and_checked(single_thread):
    from viscnn.circuits.planted import build

    case = build("residual")
    x = [(case.images(8, 0), None)]
    assert set(get_method("learned").options()) == {"steps", "seconds", "augment", "progress"}
    assert get_method("actgrad").options() == []
    with pytest.raises(ViscnnError, match="circuit method actgrad takes no option progress"):
        get_method("actgrad")(case.model, case.graph, x, case.target, 0.1, progress=print)
    with pytest.raises(ViscnnError, match="takes no option batch .it takes steps, seconds, augment, progress."):
        get_method("learned")(case.model, case.graph, x, case.target, 0.1, batch=4)
    with pytest.raises(ViscnnError, match="at least one step"):
        get_method("learned")(case.model, case.graph, x, case.target, 0.1, steps=-3)


def test_learned_reports_every_step_and_keeps_to_its_time(single_thread):
    from viscnn.circuits.planted import build

    case = build("depthwise")
    x = [(case.images(32, 0), None)]
    reports = []
    get_method("learned")(case.model, case.graph, x, case.target, 0.2, steps=30, progress=reports.append)
    assert [r.step for r in reports] == list(range(1, 31)) and {r.steps for r in reports} == {30}
    assert all(r.remaining >= 0 and 0 <= r.loss <= 2 for r in reports)
    assert reports[-1].remaining == 0 and reports[-1].elapsed >= reports[0].elapsed
    hurried = []
    get_method("learned")(case.model, case.graph, x, case.target, 0.2, steps=500, seconds=1e-3, progress=hurried.append)
    assert hurried[-1].steps == hurried[-1].step == 20  # planned down to MIN_STEPS after the first three


def test_augmentation_is_seeded_and_leaves_its_input_alone(single_thread):
    from viscnn.circuits.augment import Augment, augmentation_for

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    images = torch.rand(4, 3, 40, 40)
    before = images.clone()
    augment = Augment(mean, std, size=24)
    first = augment(images, torch.Generator().manual_seed(1))
    assert first.shape == (4, 3, 24, 24) and torch.equal(images, before)
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(2)))
    assert not torch.allclose(first[0], first[1])  # each image its own draw
    pixels = first * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert float(pixels.min()) >= -1e-5 and float(pixels.max()) <= 1 + 1e-5  # back in the model's input space
    assert augmentation_for(mean, std, 224, 27).size == 128 and augmentation_for(mean, std, 28, 27).size == 28
    assert augmentation_for(mean, std, 224, 5000) is None
    with pytest.raises(ViscnnError, match="images have 1 channels but the augmentation's mean has 3"):
        augment(torch.rand(2, 1, 40, 40), torch.Generator())
    with pytest.raises(ViscnnError, match="one mean and one std per channel"):
        Augment((0.5,), (0.2, 0.3))


def test_learned_trains_on_augmented_images(single_thread):
    from viscnn.circuits.augment import Augment
    from viscnn.circuits.planted import build

    case = build("distractor")
    x = [(case.images(32, 0), None)]
    seen = []

    class Spy(Augment):
        def __call__(self, images, generator):
            out = super().__call__(images, generator)
            seen.append(out.shape)
            return out

    scores = get_method("learned")(case.model, case.graph, x, case.target, case.keep(), steps=10,
                                   augment=Spy((0.0,) * 3, (1.0,) * 3, size=10, jitter=0.0))
    assert seen == [(32, 3, 10, 10)] * 11  # the ranking's images, then a fresh draw of the minibatch per step
    assert set(scores.edges) == set(case.candidates())


def test_the_cli_shows_learned_progress(tmp_path, capsys, single_thread):
    from pathlib import Path

    from tests.circuits import small
    from viscnn.cli import main

    (tmp_path / "net.py").write_text(Path(small.__file__).read_text())
    torch.save(torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0)), tmp_path / "train.pt")
    args = ["circuit", "--model", f"{tmp_path / 'net.py'}:make", "--images", str(tmp_path / "train.pt"), "--target", "c4:2",
            "--keep", "0.3", "--method", "learned", "--out", str(tmp_path / "c.json")]
    assert main(args) == 0
    shown = capsys.readouterr()
    assert "learned: 200/200 steps" in shown.err and "s left, loss" in shown.err
    assert "circuit for c4:2 by learned" in shown.out
    assert main(args + ["--quiet"]) == 0 and "steps" not in capsys.readouterr().err


def test_evaluate_passes_options_and_draws_the_controls(tmp_path, single_thread):
    from PIL import Image

    from viscnn.circuits.evaluate import evaluate
    from viscnn.circuits.planted import build

    case = build("depthwise")
    train, held = [(case.images(32, 0), None)], [(case.images(32, 1), None)]
    steps = []
    options = {"learned": {"steps": 15, "progress": steps.append}}
    evaluation = evaluate(case.model, case.graph, train, held, [case.target], ["actgrad", "random", "worst", "learned"],
                          [0.2, 0.5], options=options)
    assert len(steps) == 2 * 15  # one learned circuit per fraction, 15 steps each
    assert evaluation.best_method() in ("actgrad", "learned")
    evaluation.plot_controls(tmp_path / "fig8.png")
    with Image.open(tmp_path / "fig8.png") as image:
        assert image.size[0] > 600 and image.size[1] > 400
    with pytest.raises(ViscnnError, match="circuit method learned takes no option batch"):
        evaluate(case.model, case.graph, train, held, [case.target], ["learned"], [0.2], options={"learned": {"batch": 3}})
