"""`class:NAME` targets work in every command that takes a target (they read the model's class names)."""
import json

from viscnn.circuits import Circuit
from viscnn.cli import main
from viscnn.data import FASHION_MNIST_CLASSES

FMNIST = ["--model", "fmnist-convnet", "--images", "fashion-mnist:test:2"]
BAG = FASHION_MNIST_CLASSES.index("Bag")


def test_circuit_command_takes_a_class_name(tmp_path, capsys, fmnist):
    path = tmp_path / "c.json"
    assert main(["circuit", *FMNIST, "--target", "class:Bag", "--keep", "0.2", "--method", "magnitude",
                 "--out", str(path)]) == 0
    assert f"circuit for logit:{BAG} by magnitude" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["target"] == {"text": f"logit:{BAG}"}
    _, graph = fmnist
    assert str(Circuit.load(path, graph).target) == f"logit:{BAG}"
    # a hand-written file may name the class too, read with the model's class names
    data["target"]["text"] = "class:bag"
    path.write_text(json.dumps(data))
    assert Circuit.load(path, graph, class_names=list(FASHION_MNIST_CLASSES)).target.class_index == BAG


def test_evaluate_command_takes_class_names(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", *FMNIST, "--targets", "class:Sneaker,class:Bag,features.6:3", "--methods", "magnitude",
                 "--fractions", "0.5", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    data = json.loads((out / "evaluation.json").read_text())
    sneaker = FASHION_MNIST_CLASSES.index("Sneaker")
    assert data["targets"] == [f"logit:{sneaker}", f"logit:{BAG}", "features.6:3"]


def test_edge_targets_are_refused_where_scores_are_needed(tmp_path, capsys):
    for command in (["circuit", *FMNIST, "--target", "features.3:1<-2", "--out", str(tmp_path / "c.json")],
                    ["evaluate", *FMNIST, "--targets", "features.3:1<-2", "--out", str(tmp_path / "e")]):
        assert main(command) == 2
        assert "cannot score target 'features.3:1<-2': an edge is a render objective only" in capsys.readouterr().err
