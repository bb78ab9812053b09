"""Training configuration of the detector (``clumpdet train CONFIG.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from clumpdet.errors import ConfigError
from clumpdet.models.detector import DetectorConfig


@dataclass
class SimulateDataConfig:
    """Simulate the training data when no annotation file is given.

    Attributes
    ----------
    kind : str
        Detection simulator (``clumpdet.sim.SIMULATORS``): ``clumps`` (clumpy SDSS-like
        galaxies) or ``fields`` (stars and galaxies in blended DECam-like fields).
    config : str or None
        Simulation YAML (``configs/sim/...``); ``None`` uses that simulator's built-in default.
    val_config : str or None
        Simulation YAML of the validation set only (default: ``config``). Lets a run train on a
        clump-rich mix (``clumps_sdss_trainmix.yaml``) but select its checkpoint on the
        population it will be used on (``clumps_sdss.yaml``, ~12 % clumpy).
    n_train, n_val : int
        Images to simulate for training and validation (validation uses ``seed + 1``).
    seed : int
        Seed of the training set.
    rendering : {"fits", "colour"}
        Train on the physical-unit FITS cubes (default) or on the simulator's 8-bit gri colour
        set (``DIR/colour/``: JPEG composites framed as Galaxy Zoo 2 cutouts; the sim config must
        switch ``render.colour`` on, e.g. ``configs/sim/clumps_sdss_colour.yaml``).
    bin : int
        Colour rendering only: average ``bin x bin`` pixel blocks of each frame
        (:func:`clumpdet.data.dataset.bin_detection_set`; 2 turns a 424 px Galaxy Zoo frame into
        212 px). The checkpoint records it and detection bins its input the same way.
    """

    kind: str = "clumps"
    config: str | None = None
    val_config: str | None = None
    n_train: int = 300
    n_val: int = 60
    seed: int = 0
    rendering: Literal["fits", "colour"] = "fits"
    bin: int = 1


@dataclass
class AugmentConfig:
    """Geometric augmentation (boxes move with the pixels). No colour jitter: fluxes are physics."""

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: bool = True
    shift: float = 0.0
    scale: float = 0.0


@dataclass
class DataConfig:
    """Where the images and truth come from and how they are preprocessed.

    Attributes
    ----------
    train, val : str or None
        COCO annotation files (image paths relative to each file's folder). With ``val`` unset,
        ``val_fraction`` of ``train`` is held out. With ``train`` unset, ``simulate`` is used.
    bands : tuple of str
        Bands fed to the model, in order (must exist in every image).
    stretch : str
        Named stretch (``clumpdet.data.stretch``) applied per band before normalisation.
    stretch_params : dict
        Extra parameters of the stretch.
    max_train_images : int or None
        Use only the first N training images (learning curves).
    cache : bool
        Keep preprocessed images in memory.
    """

    train: str | None = None
    val: str | None = None
    val_fraction: float = 0.15
    simulate: SimulateDataConfig = field(default_factory=SimulateDataConfig)
    bands: tuple[str, ...] = ("g", "r", "i")
    stretch: str = "asinh"
    stretch_params: dict[str, Any] = field(default_factory=dict)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    max_train_images: int | None = None
    cache: bool = True
    num_workers: int = 0


@dataclass
class OptimConfig:
    """Optimiser and schedule (Popp et al. 2024: Adam, lr 1e-4, weight decay 5e-5, batch 4)."""

    lr: float = 1e-4
    weight_decay: float = 5e-5
    batch_size: int = 4
    max_epochs: int = 30
    scheduler: Literal["none", "cosine", "onecycle"] = "cosine"
    warmup_epochs: float = 0.0


@dataclass
class TrainerConfig:
    """Lightning trainer settings. The same config runs on CPU, one GPU or many (DDP).

    Attributes
    ----------
    accelerator, devices, strategy, num_nodes, precision
        Passed to ``lightning.Trainer``; ``devices: auto`` uses every visible GPU.
    monitor : str
        Validation metric that selects the best checkpoint and drives early stopping
        (``val/f1`` = completeness/purity F1 at the operating threshold, or ``val/AP50``).
    patience : int
        Early-stopping patience in validation epochs.
    seed : int
        Seeds python, numpy, torch and dataloader workers.
    """

    accelerator: str = "cpu"
    devices: str | int = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    monitor: Literal["val/f1", "val/AP50", "val/AP"] = "val/f1"
    patience: int = 8
    seed: int = 0
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    progress_bar: bool = True
    threads: int | None = None


@dataclass
class EvalConfig:
    """How validation matches detections to truth (see ``clumpdet.evaluation``).

    Attributes
    ----------
    operating_threshold : {"config", "val_f1"}
        Score threshold stored in the exported checkpoint (used by ``detect``, catalogues and
        the real-galaxy check): ``model.score_threshold`` as configured, or the threshold of
        the best validation F1 of the exported epoch (chosen on simulated validation data,
        never on the images the model is later run on).
    """

    match: Literal["iou", "centre"] = "iou"
    iou_threshold: float = 0.5
    centre_radius: float = 5.0
    operating_threshold: Literal["config", "val_f1"] = "config"


@dataclass
class TrainConfig:
    """Everything ``clumpdet train`` needs; saved resolved next to the run and in checkpoints.

    Attributes
    ----------
    init_from : str or None
        Warm start: a detector ``model.pt`` of the same architecture whose weights (and
        preprocessing) start this run, with a fresh optimiser and schedule (mmdetection's
        ``load_from``; use ``--resume`` to continue an interrupted run instead).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: DetectorConfig = field(default_factory=DetectorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.optim.batch_size < 1:
            raise ConfigError("optim.batch_size: must be >= 1")
        if self.optim.max_epochs < 1:
            raise ConfigError("optim.max_epochs: must be >= 1")
        if not 0.0 < self.data.val_fraction < 1.0:
            raise ConfigError("data.val_fraction: must be in (0, 1)")
        if not self.data.bands:
            raise ConfigError("data.bands: at least one band is required")
