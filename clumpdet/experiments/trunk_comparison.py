"""Which pretrained trunk helps a few-label galaxy classifier? (``tools/trunk_comparison.py``)

Real galaxies with a binary label (default: the GZ2 ``spiral`` label of
``../shared/data/gz2_sdss_galaxies``) are split **by galaxy id** into a held-out test set and a
pool. Trunks are then compared by fine-tuning a classifier on ``n_labels`` labelled galaxies of
the pool and scoring accuracy and ROC AUC on the held-out set, per seed (the seed draws the
labelled subset, the validation galaxies and the head's initialisation):

- ``scratch``: a randomly initialised ResNet-18;
- ``sim``: the simulated-galaxy-task trunk (``clumpdet pretrain configs/pretrain/cpu_small.yaml``);
- ``supervised``: a trunk trained on the whole pool with the label (never on held-out galaxies);
- ``ssl``: a self-supervised trunk (``configs/pretrain/ssl_real.yaml``) trained on the pool's
  images without labels, the held-out images excluded (``data.exclude_ids``).

Each trunk is fine-tuned ``frozen`` (linear probe), ``topk`` (top ``top_k`` blocks) and ``full``,
with the Zoobot-style recipe of ``configs/classifier/zoobot_recipe.yaml`` (lr, layer decay, weight
decay, dropout, head-first epochs). Results: ``comparison.json`` (every run and the mean +- std
and the standard error over seeds per trunk and mode), ``comparison.png``, ``summary.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.errors import ConfigError, InputError
from clumpdet.utils import atomic_write

#: Fine-tuning modes -> ``trainable_stages`` (``topk`` uses ``ComparisonConfig.top_k``).
MODES = ("frozen", "topk", "full")
#: Trunks the comparison can build itself.
TRUNKS = ("scratch", "sim", "supervised", "ssl")


@dataclass
class ComparisonConfig:
    """What to compare, on which data, with which recipe.

    Attributes
    ----------
    labels, images_dir : str
        Label CSV and image folder (defaults: the GZ2 SDSS sample, relative to the repo root).
    id_column, label_column, image_pattern : str
        Galaxy id column, 0/1 label column and image file name (``{id}`` = the id).
    held_out_fraction : float
        Fraction of galaxies held out for testing (stratified by label, ``split_seed``).
    n_labels : int
        Labelled galaxies of the pool each fine-tuning uses (the few-label regime).
    n_val : int
        Labelled pool galaxies used for early stopping (disjoint from the training ones).
    seeds : list of int
        Fine-tuning seeds (the labelled subset, validation galaxies and initialisation vary).
    trunks : list of str
        Among :data:`TRUNKS`.
    modes : list of str
        Among :data:`MODES`.
    top_k : int
        Trainable top blocks of the ``topk`` mode.
    image_size, center_crop : int
        Input side after a centre crop of the file (pixels).
    recipe : dict
        Overrides of the fine-tuning classifier config (``optim.*``, ``model.dropout`` ...),
        applied over ``configs/classifier/zoobot_recipe.yaml``.
    sim_pretrain_config : str
        Pretraining config of the ``sim`` trunk (unless ``trunk_paths['sim']`` is given).
    ssl_config : str
        Pretraining config of the ``ssl`` trunk.
    ssl_overrides, sim_overrides, supervised_overrides : list of str
        ``key=value`` overrides of those runs (sizing).
    trunk_paths : dict
        Existing backbone checkpoints to use instead of training a trunk (``{"sim": path}``).
    threads : int
        Torch threads.
    report_only : bool
        Train nothing: tabulate the fine-tunings finished so far under ``out`` (others are
        listed as missing).
    """

    labels: str = "../shared/data/gz2_sdss_galaxies/labels.csv"
    images_dir: str = "../shared/data/gz2_sdss_galaxies/images"
    id_column: str = "galaxy_id"
    label_column: str = "spiral"
    image_pattern: str = "{id}.jpg"
    held_out_fraction: float = 1 / 3
    split_seed: int = 0
    n_labels: int = 100
    n_val: int = 100
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    trunks: list[str] = field(default_factory=lambda: list(TRUNKS))
    modes: list[str] = field(default_factory=lambda: list(MODES))
    top_k: int = 2
    image_size: int = 64
    center_crop: int | None = 256
    recipe: dict[str, Any] = field(default_factory=dict)
    recipe_config: str = "configs/classifier/zoobot_recipe.yaml"
    sim_pretrain_config: str = "configs/pretrain/cpu_small.yaml"
    ssl_config: str = "configs/pretrain/ssl_real.yaml"
    sim_overrides: list[str] = field(default_factory=list)
    ssl_overrides: list[str] = field(default_factory=list)
    supervised_overrides: list[str] = field(default_factory=list)
    trunk_paths: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    report_only: bool = False

    def __post_init__(self) -> None:
        bad = [t for t in self.trunks if t not in TRUNKS]
        if bad:
            raise ConfigError(f"trunks: unknown {bad}; choose from {', '.join(TRUNKS)}")
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise ConfigError(f"modes: unknown {bad}; choose from {', '.join(MODES)}")
        if not 0 < self.held_out_fraction < 1:
            raise ConfigError("held_out_fraction must be in (0, 1)")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")


def read_labels(cfg: ComparisonConfig) -> tuple[np.ndarray, np.ndarray]:
    """Galaxy ids (str) and 0/1 labels of the label CSV.

    Raises
    ------
    InputError
        Missing file or columns, or labels other than 0/1.
    """
    import pandas as pd

    path = Path(cfg.labels)
    if not path.is_file():
        raise InputError(path, "label table not found")
    df = pd.read_csv(path)
    for col in (cfg.id_column, cfg.label_column):
        if col not in df.columns:
            raise InputError(path, f"no column {col!r} (columns: {', '.join(df.columns)})")
    y = df[cfg.label_column].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise InputError(path, f"column {cfg.label_column!r} must hold 0/1 labels")
    return df[cfg.id_column].astype(str).to_numpy(), y.astype(int)


def held_out_split(
    ids: np.ndarray, labels: np.ndarray, *, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pool and held-out galaxy ids: a stratified random split by galaxy (each id once)."""
    rng = np.random.default_rng(seed)
    held = []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        held.extend(rows[: round(fraction * len(rows))])
    mask = np.zeros(len(ids), bool)
    mask[held] = True
    return ids[~mask], ids[mask]


def _write_ids(path: Path, ids) -> Path:
    with atomic_write(path, "w") as fh:
        fh.writelines(f"{i}\n" for i in ids)
    return path


def _classifier_config(cfg: ComparisonConfig, overrides: list[str]):
    from clumpdet.config import load_config
    from clumpdet.engine.classify import ClassifierTrainConfig

    base = [
        "data.source=folder",
        f"data.labels={cfg.labels}",
        f"data.images_dir={cfg.images_dir}",
        f"data.id_column={cfg.id_column}",
        f"data.image_pattern={cfg.image_pattern}",
        f"data.label_columns=[{cfg.label_column}]",
        f"data.resize={cfg.image_size}",
        f"data.center_crop={'null' if cfg.center_crop is None else cfg.center_crop}",
        "trainer.progress_bar=false",
        f"trainer.threads={cfg.threads}",
    ]
    recipe = [f"{k}={_yaml_value(v)}" for k, v in cfg.recipe.items()]
    return load_config(ClassifierTrainConfig, cfg.recipe_config, base + recipe + list(overrides))


def _yaml_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    return str(v)


def build_trunks(cfg: ComparisonConfig, *, out: Path, pool_ids_file: Path, held_file: Path):
    """Backbone checkpoint per trunk name (``None`` for scratch) and the wall time of each."""
    from clumpdet.engine.classify import train_classifier
    from clumpdet.engine.pretrain import load_pretrain_config, run_pretraining

    paths: dict[str, str | None] = {}
    walls: dict[str, float] = {}
    for name in cfg.trunks:
        t0 = time.perf_counter()
        if name == "scratch":
            paths[name] = None
        elif name in cfg.trunk_paths:
            p = Path(cfg.trunk_paths[name])
            if not p.is_file():
                raise InputError(p, f"backbone checkpoint for trunk {name!r} not found")
            paths[name] = str(p)
        elif (out / "trunks" / name / "backbone.pt").is_file():  # resume
            paths[name] = str(out / "trunks" / name / "backbone.pt")
        elif name == "sim":
            pc = load_pretrain_config(cfg.sim_pretrain_config, cfg.sim_overrides)
            paths[name] = str(run_pretraining(pc, out=out / "trunks" / "sim"))
        elif name == "ssl":
            over = [
                f"data.exclude_ids={held_file}",
                f"data.images_dir={cfg.images_dir}",
                f"image_size={cfg.image_size}",
                f"data.center_crop={'null' if cfg.center_crop is None else cfg.center_crop}",
            ]
            pc = load_pretrain_config(cfg.ssl_config, over + list(cfg.ssl_overrides))
            paths[name] = str(run_pretraining(pc, out=out / "trunks" / "ssl"))
        elif name == "supervised":
            tc = _classifier_config(
                cfg,
                [
                    f"data.test_ids={held_file}",
                    "data.split=[0.8, 0.15, 0.05]",  # with test_ids: train:val = 0.8:0.15
                    "model.backbone.name=resnet18",
                    "model.backbone.trainable_stages=-1",
                    "model.dropout=0.2",
                    "optim.lr=1e-3",
                    "optim.layer_decay=null",
                    "optim.head_epochs=0",
                    "optim.weight_decay=1e-4",
                    "optim.max_epochs=20",
                    "optim.batch_size=64",
                    *cfg.supervised_overrides,
                ],
            )
            train_classifier(tc, out=out / "trunks" / "supervised")
            paths[name] = str(out / "trunks" / "supervised" / "backbone.pt")
        walls[name] = time.perf_counter() - t0
    return paths, walls


def finetune_once(
    cfg: ComparisonConfig,
    *,
    trunk: str | None,
    mode: str,
    seed: int,
    out: Path,
    held_file: Path,
    pool_ids: np.ndarray,
    pool_labels: np.ndarray,
) -> dict[str, Any]:
    """Fine-tune one classifier (``n_labels`` pool galaxies) and score it on the held-out set."""
    from clumpdet.engine.classify import train_classifier

    metrics_file = out / "test_metrics.json"
    if not metrics_file.is_file():  # resume: finished cells are kept
        rng = np.random.default_rng(1000 + seed)
        chosen = []
        for value in np.unique(pool_labels):  # keep the class balance of the pool
            rows = rng.permutation(np.flatnonzero(pool_labels == value))
            share = round((cfg.n_labels + cfg.n_val) * len(rows) / len(pool_labels))
            chosen.extend(rows[:share])
        chosen = rng.permutation(np.asarray(chosen))
        train_ids, val_ids = pool_ids[chosen[: cfg.n_labels]], pool_ids[chosen[cfg.n_labels :]]
        out.mkdir(parents=True, exist_ok=True)
        split_file = _write_split(cfg, out / "split.csv", train_ids, val_ids, held_file)
        stages = {"frozen": 0, "topk": cfg.top_k, "full": -1}[mode]
        over = [
            f"data.labels={split_file}",
            "data.split_column=split",
            f"model.backbone.name={trunk or 'resnet18'}",
            f"model.backbone.trainable_stages={stages}",
            f"trainer.seed={seed}",
        ]
        if trunk is None:
            over.append("model.backbone.weights=none")
        tc = _classifier_config(cfg, over)
        t0 = time.perf_counter()
        train_classifier(tc, out=out)
        wall = time.perf_counter() - t0
        m = json.loads(metrics_file.read_text())
        m["wall_s"] = wall
        with atomic_write(metrics_file, "w") as fh:
            json.dump(m, fh, indent=2, default=float)
        for junk in [*(out / "checkpoints").glob("*.ckpt"), out / "backbone.pt"]:
            junk.unlink(missing_ok=True)  # keep the run folder small; classifier.pt stays
    m = json.loads(metrics_file.read_text())
    return {k: m[k] for k in ("accuracy", "auc", "n_train", "wall_s") if k in m}


def _write_split(cfg, path: Path, train_ids, val_ids, held_file: Path) -> Path:
    """A copy of the label table with a ``split`` column: train / val / test (held-out)."""
    import pandas as pd

    df = pd.read_csv(cfg.labels)
    ids = df[cfg.id_column].astype(str)
    held = set(Path(held_file).read_text().split())
    split = np.full(len(df), "unused", dtype=object)
    split[ids.isin(set(map(str, train_ids))).to_numpy()] = "train"
    split[ids.isin(set(map(str, val_ids))).to_numpy()] = "val"
    split[ids.isin(held).to_numpy()] = "test"
    df = df.assign(split=split)
    df = df[df["split"] != "unused"]
    with atomic_write(path, "w") as fh:
        df.to_csv(fh, index=False)
    return path


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a ROC AUC from the test-set size alone (Hanley & McNeil 1982).

    The sampling uncertainty of one AUC measured on ``n_pos`` positives and ``n_neg``
    negatives; it does not include the seed-to-seed spread of training.
    """
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def summarise(
    rows: list[dict[str, Any]], *, n_pos: int | None = None, n_neg: int | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, std and standard error over seeds of accuracy and AUC per trunk and mode.

    With the held-out class counts ``n_pos`` / ``n_neg``, ``auc_se_test`` is the test-set
    sampling error of the mean AUC (:func:`hanley_mcneil_se`, divided by sqrt(seeds) is *not*
    applied: the seeds share one test set).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        out.setdefault(r["trunk"], {}).setdefault(r["mode"], {"_rows": []})["_rows"].append(r)
    for modes in out.values():
        for cell in modes.values():
            rs = cell.pop("_rows")
            for key in ("accuracy", "auc"):
                v = np.array([r[key] for r in rs if r.get(key) is not None], float)
                if not len(v):
                    continue
                cell[f"{key}_mean"] = float(v.mean())
                cell[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
                cell[f"{key}_sem"] = cell[f"{key}_std"] / np.sqrt(len(v))
            cell["n_seeds"] = len(rs)
            if n_pos and n_neg and "auc_mean" in cell:
                cell["auc_se_test"] = hanley_mcneil_se(cell["auc_mean"], n_pos, n_neg)
    return out


def plot_comparison(summary: dict, path: Path, *, title: str) -> Path:
    """Grouped bars of held-out accuracy and AUC per trunk and mode.

    Error bars: accuracy, the s.e. over seeds; AUC, the larger of that and the test-set s.e.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trunks = list(summary)
    modes = [m for m in MODES if any(m in summary[t] for t in trunks)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(trunks))
    for ax, key in zip(axes, ("accuracy", "auc")):
        for i, trunk in enumerate(trunks):
            x = np.arange(len(modes)) + (i - (len(trunks) - 1) / 2) * width
            m = [summary[trunk].get(mo, {}).get(f"{key}_mean", np.nan) for mo in modes]
            e = [
                _se(summary[trunk].get(mo, {})) if key == "auc" else
                summary[trunk].get(mo, {}).get(f"{key}_sem", 0.0)
                for mo in modes
            ]  # fmt: skip
            ax.bar(x, m, width, yerr=e, capsize=3, label=trunk)
        ax.set_xticks(np.arange(len(modes)), modes)
        ax.set_ylabel(f"held-out {key}")
        lo = np.nanmin([summary[t][mo].get(f"{key}_mean", np.nan) for t in trunks
                        for mo in summary[t]])  # fmt: skip
        ax.set_ylim(max(0.0, lo - 0.1), 1.0)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="trunk", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_comparison(cfg: ComparisonConfig, *, out: str | Path, command: str = "") -> dict:
    """Build the trunks, fine-tune every (trunk, mode, seed) and write the results.

    Finished fine-tunings (their ``test_metrics.json``) are reused when the run is repeated
    with the same ``out``.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ids, labels = read_labels(cfg)
    pool, held = held_out_split(ids, labels, fraction=cfg.held_out_fraction, seed=cfg.split_seed)
    pool_file = _write_ids(out / "pool_ids.txt", pool)
    held_file = _write_ids(out / "held_out_ids.txt", held)
    lab = dict(zip(ids, labels))
    pool_labels = np.array([lab[i] for i in pool])
    if cfg.n_labels + cfg.n_val > len(pool):
        raise ConfigError(f"n_labels + n_val = {cfg.n_labels + cfg.n_val} > pool of {len(pool)}")
    t0 = time.perf_counter()
    if cfg.report_only:
        paths = {t: None if t == "scratch" else str(out / "trunks" / t / "backbone.pt")
                 for t in cfg.trunks}  # fmt: skip
        paths.update({t: p for t, p in cfg.trunk_paths.items() if t in paths})
        trunk_walls: dict[str, float] = {}
    else:
        paths, trunk_walls = build_trunks(
            cfg, out=out, pool_ids_file=pool_file, held_file=held_file
        )
    rows, missing = [], []
    for seed in cfg.seeds:  # seed-major: an interrupted run still has every trunk and mode
        for trunk in cfg.trunks:
            for mode in cfg.modes:
                cell = out / "finetune" / f"{trunk}_{mode}_s{seed}"
                if cfg.report_only and not (cell / "test_metrics.json").is_file():
                    missing.append(cell.name)
                    continue
                r = finetune_once(
                    cfg,
                    trunk=paths[trunk],
                    mode=mode,
                    seed=seed,
                    out=cell,
                    held_file=held_file,
                    pool_ids=pool,
                    pool_labels=pool_labels,
                )
                rows.append({"trunk": trunk, "mode": mode, "seed": seed, **r})
                print(f"{trunk:>10} {mode:>6} seed {seed}: acc {r.get('accuracy'):.3f} "
                      f"auc {r.get('auc'):.3f}", flush=True)  # fmt: skip
    n_pos = int(sum(lab[i] for i in held))
    summary = summarise(rows, n_pos=n_pos, n_neg=len(held) - n_pos)
    result = {
        "command": command,
        "config": _plain(cfg),
        "n_pool": len(pool),
        "n_held_out": len(held),
        "held_out_positive_fraction": float(np.mean([lab[i] for i in held])),
        "trunks": paths,
        "trunk_wall_s": trunk_walls,
        "ssl_excluded_ids": _ssl_exclusion(paths.get("ssl")),
        "runs": rows,
        "missing_runs": missing,
        "summary": summary,
        "wall_s": time.perf_counter() - t0,
    }
    with atomic_write(out / "comparison.json", "w") as fh:
        json.dump(result, fh, indent=2, default=float)
    n_seeds = "-".join(sorted({str(c["n_seeds"]) for m in summary.values() for c in m.values()}))
    title = f"{cfg.n_labels} labels, held-out n={len(held)}, {n_seeds} seeds a bar (mean +- s.e.)"
    plot_comparison(summary, out / "comparison.png", title=title)
    write_summary(result, out / "summary.md")
    return result


def _ssl_exclusion(path: str | None) -> str | None:
    """The ``exclude_ids`` file an SSL backbone was trained without (``None``: none or unknown).

    ``None`` for an SSL trunk means a transductive comparison: its pretraining may have seen
    the held-out images (without labels).
    """
    if path is None or not Path(path).is_file():
        return None
    from clumpdet.checkpoints import read_checkpoint

    source = read_checkpoint(path, "backbone").get("source") or {}
    return source.get("exclude_ids")


def _plain(cfg: ComparisonConfig) -> dict:
    from clumpdet.config import to_dict

    return to_dict(cfg)


def _se(cell: dict) -> float:
    """Conservative AUC error: the larger of the seed s.e. and the test-set s.e."""
    return float(max(cell.get("auc_sem", 0.0), cell.get("auc_se_test", 0.0)))


def write_summary(result: dict, path: Path) -> Path:
    """Markdown table of the summary with the command and the verdict against scratch."""
    s = result["summary"]
    lines = [
        "# Trunk comparison: few-label fine-tuning on held-out real galaxies",
        "",
        f"`{result['command']}`",
        "",
        f"Pool {result['n_pool']} galaxies, held-out {result['n_held_out']} "
        f"(positive fraction {result['held_out_positive_fraction']:.3f}); "
        f"{result['config']['n_labels']} training labels, {result['config']['n_val']} "
        "validation labels per run. Mean +- std (s.e.) over seeds.",
        "",
        f"SSL trunk pretrained without the images of: {result.get('ssl_excluded_ids')} "
        "(None: transductive, it may have seen the held-out images, unlabelled).",
        "",
        "| trunk | mode | accuracy | AUC | AUC test-set s.e. | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for trunk, modes in s.items():
        for mode, c in modes.items():
            lines.append(
                f"| {trunk} | {mode} | {c.get('accuracy_mean', float('nan')):.3f} +- "
                f"{c.get('accuracy_std', 0):.3f} ({c.get('accuracy_sem', 0):.3f}) | "
                f"{c.get('auc_mean', float('nan')):.3f} +- {c.get('auc_std', 0):.3f} "
                f"({c.get('auc_sem', 0):.3f}) | {c.get('auc_se_test', float('nan')):.3f} | "
                f"{c.get('n_seeds')} |"
            )
    if result.get("missing_runs"):
        lines += ["", f"Not run (missing): {', '.join(result['missing_runs'])}"]
    lines += [
        "",
        "Against scratch (same mode): AUC difference / combined s.e. (per arm the larger of the "
        "seed s.e. and the test-set s.e.; the arms share one held-out set, so a rough guide):",
        "",
    ]
    for trunk, modes in s.items():
        if trunk == "scratch" or "scratch" not in s:
            continue
        for mode, c in modes.items():
            ref = s["scratch"].get(mode)
            if not ref or "auc_mean" not in c:
                continue
            d = c["auc_mean"] - ref["auc_mean"]
            se = float(np.hypot(_se(c), _se(ref))) or float("nan")
            lines.append(f"- {trunk} {mode}: {d:+.3f} ({d / se:+.1f} s.e.)")
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
