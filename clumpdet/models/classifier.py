"""Galaxy classifiers: any registered trunk + a task head, and the seed papers' small CNNs.

What a classifier predicts (outputs, loss, predictions, metrics) is its task, a
:class:`clumpdet.tasks.Task` from the ``TASKS`` registry. This module holds the networks:
:class:`TaskHead` (dropout + MLP; for tasks that support it, a Dirichlet-concentration head) and
the ``CLASSIFIERS`` registry: ``trunk`` (a :class:`~clumpdet.models.backbones.Trunk` from the
backbone registry + global pooling + head: the same trunks the detector uses), ``deepmerge_cnn``
(Ciprijanovic et al. 2020, exact architecture) and ``dieleman_cnn`` (Dieleman et al. 2015-style,
45x45 input, 4 convolutions, 2 dense layers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from clumpdet.errors import ConfigError
from clumpdet.models.backbones import BackboneConfig, Trunk, build_trunk
from clumpdet.registry import Registry
from clumpdet.tasks import TASKS, Task, get_task

CLASSIFIERS: Registry = Registry("classifier")


class TaskHead(nn.Module):
    """Dropout + MLP from pooled features to the task's outputs.

    Parameters
    ----------
    in_features : int
        Pooled feature width.
    n_out : int
        Number of outputs K.
    hidden : int
        Hidden width (0: a single linear layer).
    dropout : float
        Dropout before each linear layer.
    dirichlet : bool
        Output Dirichlet concentrations (softplus + 1) instead of logits.
    """

    def __init__(
        self,
        in_features: int,
        *,
        n_out: int,
        hidden: int = 0,
        dropout: float = 0.2,
        dirichlet: bool = False,
    ) -> None:
        super().__init__()
        self.dirichlet = dirichlet
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_features = hidden
        layers.append(nn.Linear(in_features, n_out))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw outputs (logits, or concentrations for the Dirichlet head), shape (B, K)."""
        out = self.mlp(features)
        if self.dirichlet:
            return nn.functional.softplus(out) + 1.0
        return out


@dataclass
class ClassifierConfig:
    """Which classifier to build.

    Attributes
    ----------
    model : str
        ``trunk`` (backbone registry + head), ``deepmerge_cnn`` or ``dieleman_cnn``.
    task : str
        A registered task (:data:`clumpdet.tasks.TASKS`): ``merger``, ``gz_votes``,
        ``candels``, ``four_class``, ``binary``, ``multiclass`` ...
    label_names : tuple of str
        Output names of tasks named by their data (``binary``, ``multiclass``); filled in from
        the data at training time, so that a checkpoint rebuilds the same head.
    backbone : BackboneConfig
        For ``model: trunk``; by default every stage is returned and the last one is pooled.
    hidden, dropout : int, float
        Head MLP.
    dirichlet : bool
        Dirichlet-concentration head for tasks that support it (``gz_votes``; needs vote counts
        to train).
    """

    model: str = "trunk"
    task: str = "merger"
    label_names: tuple[str, ...] = ()
    backbone: BackboneConfig = field(
        default_factory=lambda: BackboneConfig(name="resnet18", out_indices=(4,))
    )
    hidden: int = 0
    dropout: float = 0.2
    dirichlet: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(
                f"task: unknown task {self.task!r}; registered tasks: {', '.join(TASKS)}"
            )
        task = self.build_task()
        if self.dirichlet and not task.supports_dirichlet:
            with_head = [t for t in TASKS if TASKS.get(t).supports_dirichlet]
            raise ConfigError(
                f"dirichlet: task {self.task!r} has no Dirichlet head (only {', '.join(with_head)})"
            )

    def build_task(self) -> Task:
        """The :class:`~clumpdet.tasks.Task` this config names, with its label names."""
        return get_task(self.task, label_names=self.label_names)


class TrunkClassifier(nn.Module):
    """Trunk -> global average pool of its last map -> task head."""

    def __init__(self, trunk: Trunk, head: TaskHead) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, F)`` of the last returned stage."""
        maps = self.trunk(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(list(maps.values())[-1], 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DeepMergeCNN(nn.Module):
    """The DeepMerge network (Ciprijanovic et al. 2020), for 75x75 inputs.

    conv 8 (5x5) -> BN -> ReLU -> maxpool 2; conv 16 (3x3) -> BN -> ReLU -> maxpool 2;
    conv 32 (3x3) -> BN -> ReLU -> maxpool 2; dropout 0.5; dense 64 -> 32 -> 1 (sigmoid applied in
    the task's loss / prediction).
    """

    def __init__(self, *, in_chans: int = 3, image_size: int = 75, n_out: int = 1) -> None:
        super().__init__()

        def block(cin: int, cout: int, k: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, k, padding=k // 2),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.conv = nn.Sequential(block(in_chans, 8, 5), block(8, 16, 3), block(16, 32, 3))
        side = image_size // 8
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(32 * side * side, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, 32),
            nn.ReLU(inplace=True),
            nn.Linear(32, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.conv(x))


class DielemanCNN(nn.Module):
    """A Dieleman et al. (2015)-style CNN: 45x45 input, 4 convolutions, 2 dense layers.

    conv 32 (6x6) -> maxpool 2; conv 64 (5x5) -> maxpool 2; conv 128 (3x3); conv 128 (3x3)
    -> maxpool 2; dense 2048 (dropout 0.5) -> dense 2048 (dropout 0.5) -> outputs. The
    rotation-invariant multi-view input of the original is approximated by rotation/flip
    augmentation and test-time augmentation.
    """

    def __init__(self, *, in_chans: int = 3, n_out: int = 37, width: int = 2048) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_chans, 32, 6),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 128, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.LazyLinear(width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.conv(x))


@CLASSIFIERS.register("trunk", help="any registered backbone + pooled task head")
def _build_trunk_classifier(
    *, config: ClassifierConfig, in_chans: int, image_size: int
) -> nn.Module:
    trunk = build_trunk(config.backbone, in_chans=in_chans)
    head = TaskHead(
        trunk.channels[-1],
        n_out=config.build_task().n_outputs,
        hidden=config.hidden,
        dropout=config.dropout,
        dirichlet=config.dirichlet,
    )
    return TrunkClassifier(trunk, head)


@CLASSIFIERS.register("deepmerge_cnn", help="DeepMerge CNN (Ciprijanovic et al. 2020), 75x75")
def _build_deepmerge(*, config: ClassifierConfig, in_chans: int, image_size: int) -> nn.Module:
    return DeepMergeCNN(
        in_chans=in_chans, image_size=image_size, n_out=config.build_task().n_outputs
    )


@CLASSIFIERS.register("dieleman_cnn", help="Dieleman et al. 2015-style CNN, 45x45 input")
def _build_dieleman(*, config: ClassifierConfig, in_chans: int, image_size: int) -> nn.Module:
    model = DielemanCNN(in_chans=in_chans, n_out=config.build_task().n_outputs)
    with torch.no_grad():  # materialise the lazy layer for this input size
        model.eval()(torch.zeros(1, in_chans, image_size, image_size))
    return model


def build_classifier(*, config: ClassifierConfig, in_chans: int, image_size: int) -> nn.Module:
    """Build the classifier ``config.model`` for ``in_chans`` bands of ``image_size`` pixels.

    Returns
    -------
    nn.Module
        Maps ``(B, C, H, W)`` to raw outputs ``(B, K)``; turn them into probabilities or vote
        fractions with the task's :meth:`~clumpdet.tasks.Task.predict`.
    """
    return CLASSIFIERS.get(config.model)(config=config, in_chans=in_chans, image_size=image_size)
