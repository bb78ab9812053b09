"""The classification-task registry (clumpdet.tasks): outputs, losses, predictions, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clumpdet.errors import ConfigError, InputError, RegistryError
from clumpdet.models.classifier import ClassifierConfig, build_classifier
from clumpdet.tasks import TASKS, get_task, gz_tree, label_names, predict_from_outputs


def test_registry_holds_the_seed_and_generic_tasks():
    assert list(TASKS) == ["binary", "candels", "four_class", "gz_votes", "merger", "multiclass"]
    sims = {name: TASKS.get(name).simulator for name in TASKS}
    assert sims == {
        "binary": None,
        "candels": "morphology",
        "four_class": "four_class",
        "gz_votes": "morphology",
        "merger": "mergers",
        "multiclass": None,
    }
    assert label_names("four_class") == ("normal", "ringed", "merger", "other")
    assert label_names("gz_votes") == gz_tree.ANSWER_NAMES
    assert get_task("merger").sim_columns() == ("MergerLabel",)
    assert get_task("gz_votes").count_columns()[0] == "count_Class1.1"
    with pytest.raises(RegistryError, match="unknown task 'ring'; registered: binary, candels"):
        get_task("ring")


def test_output_counts_and_names():
    assert get_task("binary", label_names=["is_ring"]).label_names == ("is_ring",)
    assert get_task("binary").n_outputs == 1
    assert get_task("multiclass", label_names="abc").n_outputs == 3
    with pytest.raises(ConfigError, match="named by the data"):
        _ = get_task("multiclass").n_outputs
    with pytest.raises(ConfigError, match="'four_class' needs 4 label column"):
        get_task("four_class", label_names=["a", "b"])
    with pytest.raises(ConfigError, match="'binary' needs 1 label column"):
        get_task("binary", label_names=["a", "b"])


def test_predictions_from_raw_outputs():
    x = torch.tensor([[0.0, 1.0, 2.0]])
    assert predict_from_outputs("merger", torch.zeros(1, 1)).item() == pytest.approx(0.5)
    assert torch.allclose(get_task("multiclass", label_names="abc").predict(x), x.softmax(1))
    raw = torch.rand(4, 37)
    out = get_task("gz_votes").predict(raw)
    assert gz_tree.check_tree_consistency(out, 1e-5) == []
    conc = get_task("gz_votes").predict(raw + 1, dirichlet=True)
    assert torch.allclose(conc, gz_tree.normalise(raw + 1, method="sum"))


def test_losses_per_task():
    t = get_task("binary", label_names=["is_ring"])
    out, y = torch.tensor([[2.0], [-1.0]]), torch.tensor([[1.0], [0.0]])
    assert t.loss(out, y) == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(out, y).item()
    )
    m = get_task("multiclass", label_names="abc")
    logits, onehot = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    assert m.loss(logits, onehot) == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.tensor([1])).item()
    )
    with pytest.raises(ConfigError, match="needs vote counts"):
        get_task("gz_votes").loss(torch.ones(2, 37), torch.ones(2, 37), dirichlet=True)


def test_label_checks_name_the_row():
    binary = get_task("binary", label_names=["is_ring"])
    with pytest.raises(InputError, match="row 1: binary label is 2, expected 0 or 1"):
        binary.check_labels(np.array([[0.0], [2.0]]), source="t.csv")
    multi = get_task("multiclass", label_names="abc")
    with pytest.raises(InputError, match="row 0: .* is not one-hot over \\('a', 'b', 'c'\\)"):
        multi.check_labels(np.array([[1.0, 1.0, 0.0]]), source="t.csv")
    with pytest.raises(InputError, match="label b is nan"):
        multi.check_labels(np.array([[1.0, np.nan, 0.0]]), source="t.csv")
    with pytest.raises(InputError, match="vote fraction disk = 1.5 is outside"):
        get_task("candels").check_labels(np.array([[0, 1.5, 0, 0, 0.0]]), source="t.csv")


def test_metrics_and_class_index():
    t = get_task("binary", label_names=["is_ring"])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    assert t.headline_metrics(y, np.array([[0.2], [0.9], [0.6], [0.7]])) == {
        "accuracy": 0.75,
        "auc": 0.75,
    }
    assert t.class_index(y).tolist() == [0, 1, 1, 0]
    m = get_task("multiclass", label_names="abc")
    assert m.headline_metrics(np.eye(3), np.eye(3))["accuracy"] == 1.0
    assert get_task("candels").headline_metrics(np.zeros((2, 5)), np.ones((2, 5)))["rmse"] == 1.0


def test_classifier_config_checks_task_and_dirichlet():
    with pytest.raises(ConfigError, match="unknown task 'nonexistent'; registered tasks: binary"):
        ClassifierConfig(task="nonexistent")
    with pytest.raises(ConfigError, match="no Dirichlet head .*gz_votes"):
        ClassifierConfig(task="merger", dirichlet=True)
    cfg = ClassifierConfig(task="multiclass", label_names=("ring", "spiral", "smooth"))
    net = build_classifier(config=cfg, in_chans=1, image_size=32).eval()
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 3)


def test_simulated_label_names_match_the_tasks() -> None:
    """The galaxy simulators (torch-free) write the same label names the tasks train on."""
    from clumpdet.sim.galaxies.scene import FOUR_CLASS_NAMES
    from clumpdet.sim.galaxies.votes import CANDELS_NAMES
    from clumpdet.tasks.candels import CANDELS_LABELS
    from clumpdet.tasks.four_class import FOUR_CLASS_LABELS

    assert tuple(FOUR_CLASS_NAMES) == tuple(FOUR_CLASS_LABELS)
    assert tuple(CANDELS_NAMES) == tuple(CANDELS_LABELS)
