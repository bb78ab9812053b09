"""Self-supervised pretraining of a galaxy trunk on a folder of unlabelled images.

``clumpdet pretrain configs/pretrain/ssl_real.yaml --out RUN`` (a config with ``objective:
simclr`` or ``objective: byol``; see :func:`clumpdet.engine.pretrain.pretrain_from_file`) trains
a trunk with a SimCLR (NT-Xent, Chen et al. 2020) or BYOL (Grill et al. 2020) objective, the
losses and heads coming from ``lightly``. Every image gives two views drawn from galaxy-safe
augmentations (:class:`SSLAugmentConfig`): arbitrary rotations, flips, small shifts and zooms,
a random Gaussian PSF change and added Gaussian noise; never colour jitter, so the colours a
galaxy's morphology correlates with stay intact.

Run layout::

    RUN/config.yaml              resolved config
    RUN/ssl_images.txt           the image files used (train + validation), one a line
    RUN/ssl_views.png            a few images and two random views of each (augmentation check)
    RUN/checkpoints/best.ckpt    lowest validation SSL loss (Lightning)
    RUN/logs/metrics.csv         per-epoch train/loss, val/loss
    RUN/pretrain_metrics.json    final metrics, images used, wall time
    RUN/backbone.pt              the trunk, a backbone checkpoint loadable by the detector
                                 (``model.backbone.name: RUN/backbone.pt``) and a classifier

The validation split is a random fraction of the folder (``data.val_fraction``); its loss only
selects the best epoch. Held-out galaxies of a later evaluation are left out with
``data.exclude_ids`` (a text file of ids = file names without extension), so that the trunk
never sees them, not even unlabelled.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from clumpdet.checkpoints import save_checkpoint
from clumpdet.config import save_config
from clumpdet.engine.classify import ClassifierOptimConfig, training_input
from clumpdet.engine.config import TrainerConfig
from clumpdet.engine.trainer import EpochLossModule, fit_by_val_loss, start_run
from clumpdet.errors import ConfigError, InputError
from clumpdet.models.backbones import BackboneConfig, build_trunk
from clumpdet.utils import atomic_write

#: File name endings read as images from an SSL folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".fits", ".fit", ".fits.gz", ".fz")


@dataclass
class SSLDataConfig:
    """The unlabelled images.

    Attributes
    ----------
    images_dir : str
        Folder of images (JPEG / PNG / FITS, any of :data:`IMAGE_SUFFIXES`; searched
        recursively with ``recursive``).
    recursive : bool
        Also read images in sub-folders.
    exclude_ids : str or None
        Text file of galaxy ids (one a line; an id is a file name without its extension) that
        are never used, e.g. the held-out test galaxies of a later fine-tuning comparison.
    max_images : int or None
        Use at most this many images (the first ones in sorted order).
    val_fraction : float
        Random fraction kept for the validation SSL loss (best-epoch selection).
    bands, stretch, stretch_params
        Preprocessing (stored in ``backbone.pt``); empty ``bands`` keeps the file's bands.
    center_crop : int or None
        Square centre crop (pixels of the file) before resizing to ``image_size``.
    cache : bool
        Keep decoded, cropped and resized images in memory.
    num_workers : int
        DataLoader workers.
    """

    images_dir: str = "../shared/data/gz2_sdss_galaxies/images"
    recursive: bool = False
    exclude_ids: str | None = None
    max_images: int | None = None
    val_fraction: float = 0.1
    bands: tuple[str, ...] = ()
    stretch: str = "asinh"
    stretch_params: dict = field(default_factory=dict)
    center_crop: int | None = None
    cache: bool = True
    num_workers: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class SSLAugmentConfig:
    """Galaxy-safe view augmentations (applied to the preprocessed, resized image).

    Attributes
    ----------
    rotate, flips : bool
        Arbitrary rotation; flips and 90-degree rotations.
    zoom : float
        Maximum scale jitter (log-uniform in ``[1/(1+zoom), 1+zoom]``).
    shift : float
        Maximum shift, fraction of the image side.
    blur_prob, blur_sigma : float, (float, float)
        Probability and range (pixels of the resized image) of a Gaussian PSF blur.
    noise_prob, noise_sigma : float, (float, float)
        Probability and range of added Gaussian noise, in units of the standardised pixels.
    """

    rotate: bool = True
    flips: bool = True
    zoom: float = 0.15
    shift: float = 0.05
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    noise_prob: float = 0.5
    noise_sigma: tuple[float, float] = (0.02, 0.2)

    def __post_init__(self) -> None:
        for name in ("blur_prob", "noise_prob"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ConfigError(f"augment.{name} must be in [0, 1], got {v}")
        for name in ("blur_sigma", "noise_sigma"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ConfigError(f"augment.{name}: give 0 <= low <= high, got {(lo, hi)}")


@dataclass
class SSLConfig:
    """Self-supervised pretraining (``objective: simclr`` or ``byol``).

    Attributes
    ----------
    objective : {"simclr", "byol"}
        SimCLR (NT-Xent with ``temperature``, in-batch negatives) or BYOL (online predictor +
        momentum target, ``momentum`` rising to 1 on a cosine schedule).
    image_size : int
        Side every image is resized to (pixels).
    backbone : BackboneConfig
        The trunk (its last stage is pooled into the projection head).
    projection_dim, hidden_dim : int
        Projection head output and hidden widths.
    temperature : float
        SimCLR NT-Xent temperature.
    momentum : float
        BYOL base momentum of the target network.
    max_minutes : float or None
        Wall-clock limit of the training (Lightning ``max_time``), for a sized CPU run.
    """

    objective: Literal["simclr", "byol"] = "simclr"
    data: SSLDataConfig = field(default_factory=SSLDataConfig)
    augment: SSLAugmentConfig = field(default_factory=SSLAugmentConfig)
    image_size: int = 64
    backbone: BackboneConfig = field(
        default_factory=lambda: BackboneConfig(name="resnet18", out_indices=(1, 2, 3, 4))
    )
    projection_dim: int = 128
    hidden_dim: int = 512
    temperature: float = 0.2
    momentum: float = 0.99
    optim: ClassifierOptimConfig = field(
        default_factory=lambda: ClassifierOptimConfig(
            lr=1e-3, weight_decay=1e-4, batch_size=64, max_epochs=30, scheduler="cosine",
            patience=10,
        )
    )  # fmt: skip
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.objective not in ("simclr", "byol"):
            raise ConfigError(f"objective: choose simclr or byol, got {self.objective!r}")
        if self.image_size < 8:
            raise ConfigError(f"image_size must be >= 8 pixels, got {self.image_size}")
        if self.optim.batch_size < 2:
            raise ConfigError("optim.batch_size: contrastive learning needs at least 2 per batch")


def list_images(data: SSLDataConfig) -> list[Path]:
    """Sorted image files of ``data.images_dir``, less ``exclude_ids``, at most ``max_images``.

    Raises
    ------
    InputError
        The folder or the exclusion file is missing, or no image is left.
    """
    from clumpdet.data.splits import read_id_list

    root = Path(data.images_dir)
    if not root.is_dir():
        raise InputError(root, "SSL image folder not found")
    pattern = "**/*" if data.recursive else "*"
    files = sorted(
        p for p in root.glob(pattern) if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)
    )
    if data.exclude_ids is not None:
        excluded = {str(i) for i in read_id_list(data.exclude_ids)}
        files = [p for p in files if _stem(p) not in excluded]
    if data.max_images is not None:
        files = files[: data.max_images]
    if len(files) < 4:
        raise InputError(root, f"needs at least 4 images for SSL pretraining, found {len(files)}")
    return files


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


class ViewAugmentation:
    """Draw one random galaxy-safe view of a ``(C, H, W)`` tensor (:class:`SSLAugmentConfig`)."""

    def __init__(self, config: SSLAugmentConfig) -> None:
        from clumpdet.data.galaxy_dataset import GalaxyAugmentation

        self.config = config
        self.geometric = GalaxyAugmentation(
            rot90=config.flips,
            flips=config.flips,
            rotate=config.rotate,
            zoom=config.zoom,
            shift=config.shift,
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = self.geometric(x)
        if c.blur_prob > 0 and torch.rand(()).item() < c.blur_prob:
            sigma = _uniform(*c.blur_sigma)
            x = gaussian_blur(x, sigma)
        if c.noise_prob > 0 and torch.rand(()).item() < c.noise_prob:
            sigma = _uniform(*c.noise_sigma)
            x = x + sigma * torch.randn_like(x)
        return x.contiguous()


def _uniform(lo: float, hi: float) -> float:
    """A uniform draw from torch's generator (seeded per DataLoader worker by Lightning)."""
    return float(lo + (hi - lo) * torch.rand(()).item())


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Convolve each plane of ``x`` (C, H, W) with a circular Gaussian of ``sigma`` pixels.

    Reflect padding keeps the size; ``sigma <= 0`` returns ``x`` unchanged.
    """
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    r = min(r, (min(x.shape[1:]) - 1) // 2) or 1
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[0]
    y = nn.functional.pad(x.unsqueeze(0), (r, r, r, r), mode="reflect")
    y = nn.functional.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = nn.functional.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0]


class TwoViews(Dataset):
    """Items ``(view1, view2)`` of one image, from a base dataset of ``(C, H, W)`` images."""

    def __init__(self, base, augmentation: ViewAugmentation) -> None:
        self.base, self.augmentation = base, augmentation

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.base.load_image(i)
        return self.augmentation(x), self.augmentation(x)


class SSLModule(EpochLossModule):
    """Trunk + lightly projection head(s) trained with SimCLR or BYOL.

    ``forward`` gives pooled trunk features ``(B, F)``.
    """

    def __init__(self, config: SSLConfig, *, in_chans: int, steps_per_epoch: int = 1) -> None:
        super().__init__()
        from lightly.loss import NegativeCosineSimilarity, NTXentLoss
        from lightly.models.modules import (
            BYOLPredictionHead,
            BYOLProjectionHead,
            SimCLRProjectionHead,
        )

        self.config = config
        self.trunk = build_trunk(config.backbone, in_chans=in_chans)
        width = self.trunk.channels[-1]
        h, p = config.hidden_dim, config.projection_dim
        self.steps_total = max(1, steps_per_epoch * config.optim.max_epochs)
        if config.objective == "simclr":
            self.projection = SimCLRProjectionHead(width, h, p)
            self.criterion = NTXentLoss(temperature=config.temperature)
        else:
            import copy

            from lightly.models.utils import deactivate_requires_grad

            self.projection = BYOLProjectionHead(width, h, p)
            self.prediction = BYOLPredictionHead(p, h, p)
            self.trunk_momentum = copy.deepcopy(self.trunk)
            self.projection_momentum = copy.deepcopy(self.projection)
            deactivate_requires_grad(self.trunk_momentum)
            deactivate_requires_grad(self.projection_momentum)
            self.criterion = NegativeCosineSimilarity()

    @staticmethod
    def _pool(trunk, x: torch.Tensor) -> torch.Tensor:
        maps = trunk(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(list(maps.values())[-1], 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features ``(B, F)``."""
        return self._pool(self.trunk, x)

    def step_loss(self, batch):
        x0, x1 = batch[0], batch[1]
        if self.config.objective == "simclr":
            z0 = self.projection(self(x0))
            z1 = self.projection(self(x1))
            return self.criterion(z0, z1), None
        p0 = self.prediction(self.projection(self(x0)))
        p1 = self.prediction(self.projection(self(x1)))
        with torch.no_grad():
            t0 = self.projection_momentum(self._pool(self.trunk_momentum, x0))
            t1 = self.projection_momentum(self._pool(self.trunk_momentum, x1))
        return 0.5 * (self.criterion(p0, t1.detach()) + self.criterion(p1, t0.detach())), None

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.config.objective != "byol":
            return
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = cosine_schedule(self.global_step, self.steps_total, self.config.momentum, 1.0)
        update_momentum(self.trunk, self.trunk_momentum, m=m)
        update_momentum(self.projection, self.projection_momentum, m=m)

    def validation_step(self, batch, batch_idx: int) -> None:
        self.validation_outputs(batch)

    def configure_optimizers(self):
        o = self.config.optim
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        if o.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, o.max_epochs))
            return {"optimizer": opt, "lr_scheduler": sched}
        return opt


def make_ssl_datasets(config: SSLConfig, *, seed: int = 0):
    """Train / validation two-view datasets, the preprocessing, input record and file lists."""
    from clumpdet.data.containers import ClassificationData, FileImages
    from clumpdet.data.galaxy_dataset import ClassificationDataset
    from clumpdet.data.preprocessing import Preprocessing

    d = config.data
    files = list_images(d)
    images = FileImages(files)
    first = images.read(0)
    data = ClassificationData(
        images=images,
        labels=np.zeros((len(files), 1), np.float32),
        task="binary",
        label_names=("unlabelled",),
        bands=first.bands,
        ids=np.array([_stem(p) for p in files]),
        source=Path(d.images_dir),
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    n_val = max(2, round(d.val_fraction * len(files)))
    va, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    pre = Preprocessing(
        bands=tuple(d.bands or data.bands), stretch=d.stretch, stretch_params=d.stretch_params
    )
    pre = pre.fit_normalisation([data.image(int(i)) for i in tr[:200]])
    kw = dict(preprocessing=pre, center_crop=d.center_crop, resize=config.image_size, cache=d.cache)
    aug = ViewAugmentation(config.augment)
    train = TwoViews(ClassificationDataset(data.subset(tr), **kw), aug)
    val = TwoViews(ClassificationDataset(data.subset(va), **kw), aug)
    used = [files[i] for i in tr], [files[i] for i in va]
    return train, val, pre, training_input(data), used


def plot_views(dataset: TwoViews, path: str | Path, *, n: int = 4) -> Path:
    """A PNG of ``n`` images (first three channels, standardised) and two random views each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(dataset))
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for i in range(n):
        x = dataset.base.load_image(i)
        for j, img in enumerate((x, dataset.augmentation(x), dataset.augmentation(x))):
            a = img[:3].numpy()
            a = np.moveaxis(a[::-1] if a.shape[0] == 3 else a[:1].repeat(3, 0), 0, -1)
            lo, hi = np.percentile(a, [1, 99.5])
            axes[i, j].imshow(np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1))
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(("image", "view 1", "view 2")[j], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def pretrain_ssl(config: SSLConfig, *, out: str | Path) -> Path:
    """Self-supervised pretraining; writes ``out/backbone.pt`` (see the module docstring).

    Returns
    -------
    Path
        The backbone checkpoint.
    """

    t = config.trainer
    out = start_run(out, t)
    save_config(config, out / "config.yaml")
    t0 = time.perf_counter()
    train, val, pre, input_record, (tr_files, va_files) = make_ssl_datasets(config, seed=t.seed)
    with atomic_write(out / "ssl_images.txt", "w") as fh:
        fh.writelines(f"train {p}\n" for p in tr_files)
        fh.writelines(f"val {p}\n" for p in va_files)
    plot_views(train, out / "ssl_views.png")
    bs = min(config.optim.batch_size, len(train))
    kw = dict(num_workers=config.data.num_workers)
    train_dl = DataLoader(train, batch_size=bs, shuffle=True, drop_last=True, **kw)
    val_dl = DataLoader(val, batch_size=min(bs, len(val)), shuffle=False, drop_last=True, **kw)
    module = SSLModule(config, in_chans=pre.n_bands, steps_per_epoch=len(train_dl))
    options = {}
    if config.max_minutes is not None:
        options["max_time"] = {"minutes": float(config.max_minutes)}
    trainer, best = fit_by_val_loss(
        t,
        module,
        train_dl,
        val_dl,
        out=out,
        max_epochs=config.optim.max_epochs,
        patience=config.optim.patience,
        **options,
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics.update(
        objective=config.objective,
        n_train_images=len(tr_files),
        n_val_images=len(va_files),
        epochs=int(trainer.current_epoch),
        steps=int(trainer.global_step),
        best_val_loss=float(best.best_model_score) if best.best_model_score is not None else None,
        wall_s=time.perf_counter() - t0,
    )
    with atomic_write(out / "pretrain_metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    return save_checkpoint(
        out / "backbone.pt",
        kind="backbone",
        model=module.trunk,
        preprocessing=pre,
        input=input_record,
        source={
            "ssl_objective": config.objective,
            "images_dir": str(config.data.images_dir),
            "exclude_ids": config.data.exclude_ids,
            "n_images": len(tr_files) + len(va_files),
            "run": str(out),
            "image_size": config.image_size,
        },
    )
