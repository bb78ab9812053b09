"""``clumpdet`` command line: argument parsing only; all logic lives in the library.

Every user-caused error (a :class:`~clumpdet.errors.ClumpdetError`, or an ``OSError`` about a
path, such as an output folder that cannot be created) is printed as one line
``clumpdet: error: <file>: <problem>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clumpdet import __version__
from clumpdet.errors import ClumpdetError
from clumpdet.sim.run import SIMULATORS


def _label_snr(value: str | None) -> float | str | None:
    """``--label-snr``: a number, ``reference``, or None."""
    if value is None or value == "reference":
        return value
    try:
        return float(value)
    except ValueError:
        return value  # simulate_matched names the bad value


def _cmd_simulate(args: argparse.Namespace) -> int:
    from clumpdet.sim import simulate_set

    if args.like or args.profile or args.inject_into:
        from clumpdet.sim.inject import simulate_matched

        out = simulate_matched(
            kind=args.kind,
            n=args.n,
            seed=args.seed,
            out=args.out,
            like=args.like,
            profile=args.profile,
            inject_into=args.inject_into,
            bands=args.bands,
            pixel_scale=args.pixel_scale,
            tile=args.tile,
            overrides=args.set,
            workers=args.workers,
            overwrite=args.overwrite,
            like_fraction=args.like_fraction,
            label_snr=_label_snr(args.label_snr),
        )
        print(f"wrote {args.n} survey-matched {args.kind} tiles, profile.yaml and truth to {out}")
        return 0
    out = simulate_set(
        args.kind,
        n=args.n,
        seed=args.seed,
        out=args.out,
        config=args.config,
        overrides=args.set,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.n} {args.kind} images and truth to {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from clumpdet.evaluation import evaluate_detections

    metrics = evaluate_detections(
        truth=args.truth,
        predictions=args.pred,
        out=args.out,
        score_threshold=args.score_threshold,
        match=args.match,
        iou_threshold=args.iou,
        centre_radius=args.radius,
    )
    print(
        f"completeness={metrics['completeness']:.3f} purity={metrics['purity']:.3f} "
        f"AP={metrics['AP']:.3f} AP50={metrics['AP50']:.3f} -> {Path(args.out) / 'metrics.json'}"
    )
    return 0


def _cmd_baseline(args: argparse.Namespace) -> int:
    from clumpdet.baselines import ClassicalConfig, run_classical_baseline
    from clumpdet.config import load_config

    cfg = load_config(ClassicalConfig, args.config, args.set)
    out = run_classical_baseline(
        truth=args.truth,
        images=args.images,
        out=args.out,
        method=args.method,
        config=cfg,
        workers=args.workers,
    )
    print(f"wrote classical ({args.method}) predictions to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector

    cfg = load_config(TrainConfig, args.config, args.set)
    path = train_detector(cfg, out=args.out, resume=args.resume)
    print(f"trained detector -> {path}")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from clumpdet.inference.run import run_detection

    summary = run_detection(
        checkpoint=args.checkpoint,
        images=args.images,
        coco=args.coco,
        out=args.out,
        score_threshold=args.score_threshold,
        batch_size=args.batch_size,
        tile_overlap=args.tile_overlap,
        overlays=args.overlays,
        device=args.device,
        allow_input_mismatch=args.allow_input_mismatch,
        pixel_scale=args.pixel_scale,
        central_host=args.central_host,
        nucleus_exclusion=args.nucleus_exclusion,
    )
    print(
        f"{summary['n_detections']} detections in {summary['n_images']} images "
        f"(score >= {summary['score_threshold']:.2f}) -> {summary['catalogue']}, "
        f"COCO results -> {summary['coco_results']}"
    )
    return 0


def _cmd_catalogue(args: argparse.Namespace) -> int:
    from clumpdet.inference.survey import run_catalogue

    summary = run_catalogue(
        checkpoint=args.checkpoint,
        inputs=args.inputs,
        out=args.out,
        shard_size=args.shard_size,
        band_files=args.band_files,
        workers=args.workers,
        scheduler=args.scheduler,
        threads=args.threads,
        batch_size=args.batch_size,
        tile_overlap=args.tile_overlap,
        score_threshold=args.score_threshold,
        pixel_scale=args.pixel_scale,
        device=args.device,
        fits=args.fits,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        allow_input_mismatch=args.allow_input_mismatch,
    )
    print(
        f"{summary['n_rows']} rows from {summary['n_images']} images in {summary['n_shards']} "
        f"shards ({summary['n_skipped']} resumed, {summary['n_failed']} failed -> "
        f"{summary['failed']}) -> {summary['catalogue']}"
    )
    return 0


def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from clumpdet.config import load_config
    from clumpdet.engine.classify import ClassifierTrainConfig, train_classifier

    cfg = load_config(ClassifierTrainConfig, args.config, args.set)
    path = train_classifier(cfg, out=args.out, resume=args.resume)
    print(f"trained {cfg.model.task} classifier -> {path}")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from clumpdet.engine.pretrain import load_pretrain_config, run_pretraining

    cfg = load_pretrain_config(args.config, args.set)  # objective: tasks | simclr | byol
    path = run_pretraining(cfg, out=args.out)
    print(f"pretrained backbone -> {path} (use it as model.backbone.name)")
    return 0


def _cmd_list_backbones(args: argparse.Namespace) -> int:
    from clumpdet.models import list_backbones

    for name, text in list_backbones().items():
        print(f"{name:24s} {text}")
    print(
        "\nAlso accepted: timm:<any timm model>, hf_hub:<repo>, local-dir:<folder>, "
        "or the path of a clumpdet backbone checkpoint (*.pt)."
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from clumpdet.pipeline import run_demo

    summary = run_demo(
        out=args.out,
        n_train=args.n_train,
        epochs=args.epochs,
        seed=args.seed,
        population=args.population,
    )
    for key, value in summary.items():
        print(f"{key:>14s}: {value}")
    return 0


def _add_pixel_scale_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pixel-scale",
        default=None,
        metavar="ARCSEC|model",
        help="arcsec/pixel of the inputs (overrides their WCS), or 'model' to run them "
        "unresampled; default: each FITS input's WCS, resampled to the model's scale",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser (one sub-parser per command)."""
    p = argparse.ArgumentParser(
        prog="clumpdet",
        description="Find giant star-forming clumps and deblend sources in galaxy images.",
    )
    p.add_argument("--version", action="version", version=f"clumpdet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("simulate", help="simulate images with exact truth (GalSim)")
    s.add_argument(
        "kind",
        choices=list(SIMULATORS),
        help="; ".join(f"{k}: {v}" for k, v in SIMULATORS.describe().items()),
    )
    s.add_argument("--n", type=int, required=True, help="number of images")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", type=Path, required=True, help="output directory")
    s.add_argument("--config", type=Path, default=None, help="simulation YAML (configs/sim/)")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set noise.sky_sb.r=21.5",
    )
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output dir")
    s.add_argument(
        "--like", type=Path, default=None, help="fields: match a real frame (writes profile.yaml)"
    )
    s.add_argument("--profile", type=Path, default=None, help="fields: reuse a profile.yaml")
    s.add_argument(
        "--inject-into",
        type=Path,
        default=None,
        help="fields: inject simulated objects into tiles cut from this real frame",
    )
    s.add_argument("--bands", nargs="+", default=None, help="band of each plane of the frame")
    s.add_argument("--pixel-scale", type=float, default=None, help="arcsec/px if no WCS")
    s.add_argument("--tile", type=int, default=128, help="tile side for --like/--inject-into")
    s.add_argument(
        "--like-fraction",
        type=float,
        default=0.0,
        help="with --inject-into: this share of the tiles purely simulated from the profile",
    )
    s.add_argument(
        "--label-snr",
        default=None,
        help="--like/--inject-into: S/N down to which objects are truth (number, or 'reference':"
        " the depth of a SExtractor-default catalogue of the frame, measured on simulated tiles)",
    )
    s.set_defaults(func=_cmd_simulate)

    e = sub.add_parser("evaluate", help="score COCO-results predictions against COCO truth")
    e.add_argument("--truth", type=Path, required=True, help="COCO annotations JSON")
    e.add_argument("--pred", type=Path, required=True, help="COCO results JSON")
    e.add_argument("--out", type=Path, required=True, help="output directory")
    e.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        help="operating score threshold for completeness/purity (default 0.3)",
    )
    e.add_argument(
        "--match", choices=["iou", "centre"], default="iou", help="matching rule (default iou)"
    )
    e.add_argument("--iou", type=float, default=0.5, help="IoU threshold for --match iou")
    e.add_argument(
        "--radius", type=float, default=5.0, help="centre distance in pixels for --match centre"
    )
    e.set_defaults(func=_cmd_evaluate)

    b = sub.add_parser("baseline", help="classical (sep/photutils) clump finder -> COCO results")
    b.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="COCO annotations JSON listing the images to process",
    )
    b.add_argument(
        "--images", type=Path, nargs="*", default=None, help="image files (instead of --truth)"
    )
    b.add_argument("--out", type=Path, required=True, help="output COCO results JSON")
    b.add_argument(
        "--method",
        choices=["residual", "unsharp"],
        default="residual",
        help="host-subtraction method (default residual)",
    )
    b.add_argument("--config", type=Path, default=None, help="ClassicalConfig YAML")
    b.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set threshold=4",
    )
    b.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    b.set_defaults(func=_cmd_baseline)

    t = sub.add_parser("train", help="train a Faster R-CNN detector (Lightning)")
    t.add_argument(
        "config",
        type=Path,
        nargs="?",
        default=None,
        help="training YAML (configs/detector/); default: built-in CPU config",
    )
    t.add_argument("--out", type=Path, required=True, help="run directory")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.max_epochs=5",
    )
    t.add_argument(
        "--resume", type=Path, default=None, help="continue from RUNDIR/checkpoints/last.ckpt"
    )
    t.set_defaults(func=_cmd_train)

    d = sub.add_parser("detect", help="detect clumps in images -> catalogue + COCO results")
    d.add_argument("checkpoint", type=Path, help="detector checkpoint (RUNDIR/model.pt)")
    d.add_argument("images", type=Path, nargs="*", help="FITS/PNG/JPEG images")
    d.add_argument(
        "--coco",
        type=Path,
        default=None,
        help="COCO annotations listing the images (ids match the truth)",
    )
    d.add_argument(
        "--out",
        type=Path,
        required=True,
        help="catalogue: .fits, .parquet or .csv (COCO results go to <stem>_coco.json)",
    )
    d.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="catalogue score cut (default: the checkpoint's, 0.3)",
    )
    d.add_argument("--batch-size", type=int, default=8)
    d.add_argument(
        "--tile-overlap",
        type=int,
        default=48,
        help="overlap in pixels of tiles for images larger than the training size",
    )
    d.add_argument("--overlays", type=Path, default=None, help="folder for overlay PNGs")
    d.add_argument("--device", default="cpu", help="cpu or cuda")
    d.add_argument(
        "--allow-input-mismatch",
        action="store_true",
        help="detect on PNG/JPEG with a FITS-trained model (or the reverse) instead of refusing",
    )
    d.add_argument(
        "--central-host",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-galaxy cutouts: keep only detections on the central galaxy's footprint "
        "(default: the checkpoint's model.central_host)",
    )
    d.add_argument(
        "--nucleus-exclusion",
        type=float,
        default=None,
        metavar="F",
        help="with --central-host, also drop boxes centred on the central galaxy's nucleus "
        "(within F x the box side; 0 keeps them; default: the checkpoint's "
        "model.nucleus_exclusion)",
    )
    _add_pixel_scale_arg(d)
    d.set_defaults(func=_cmd_detect)

    c = sub.add_parser(
        "catalogue",
        help="survey catalogue: sharded, resumable, on Dask (detector or classifier checkpoint)",
    )
    c.add_argument("checkpoint", type=Path, help="detector model.pt or classifier.pt")
    c.add_argument(
        "inputs",
        nargs="+",
        help="image files, folders, globs, or .txt/.csv lists of paths (streamed)",
    )
    c.add_argument("--out", type=Path, required=True, help="run directory")
    c.add_argument("--shard-size", type=int, default=1000, help="images per shard")
    c.add_argument(
        "--band-files",
        default=None,
        metavar="PATTERN",
        help="group single-band files into one image, e.g. '{field}-{band}.fits' (bands "
        "from the names, whatever the headers say)",
    )
    c.add_argument(
        "--workers",
        type=int,
        default=None,
        help="LocalCluster worker processes (default: one per core); 0: no Dask",
    )
    c.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    c.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--tile-overlap", type=int, default=48)
    c.add_argument("--score-threshold", type=float, default=None)
    _add_pixel_scale_arg(c)
    c.add_argument("--device", default="cpu", help="cpu or cuda")
    c.add_argument("--fits", action="store_true", help="also write catalogue.fits")
    c.add_argument("--overwrite", action="store_true", help="discard a previous run in --out")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.add_argument(
        "--allow-input-mismatch",
        action="store_true",
        help="run on PNG/JPEG with a FITS-trained detector (or the reverse) instead of refusing",
    )
    c.set_defaults(func=_cmd_catalogue)

    tc = sub.add_parser("train-classifier", help="train a galaxy classifier (Lightning)")
    tc.add_argument(
        "config",
        type=Path,
        nargs="?",
        default=None,
        help="classifier YAML (configs/classifier/); default: simulated mergers",
    )
    tc.add_argument("--out", type=Path, required=True, help="run directory")
    tc.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.task=four_class",
    )
    tc.add_argument("--resume", type=Path, default=None, help="RUN/checkpoints/last.ckpt")
    tc.set_defaults(func=_cmd_train_classifier)

    pt = sub.add_parser("pretrain", help="Zoobot-style joint pretraining of a galaxy backbone")
    pt.add_argument(
        "config",
        type=Path,
        nargs="?",
        default=None,
        help="pretraining YAML (configs/pretrain/; objective: simclr|byol for self-supervised "
        "pretraining on unlabelled images); default: simulated tasks",
    )
    pt.add_argument("--out", type=Path, required=True, help="run directory")
    pt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    pt.set_defaults(func=_cmd_pretrain)

    lb = sub.add_parser("list-backbones", help="list the registered backbones")
    lb.set_defaults(func=_cmd_list_backbones)

    m = sub.add_parser("demo", help="simulate -> train -> evaluate -> catalogue, on CPU in minutes")
    m.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default demo/)")
    m.add_argument(
        "--n-train",
        type=int,
        default=300,
        help="simulated training images (default 300; validation and test get a fifth each, "
        "at least 40; --n-train 20 --epochs 1 is a quick smoke run)",
    )
    m.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    m.add_argument("--seed", type=int, default=0, help="simulation and training seed (default 0)")
    m.add_argument(
        "--population",
        choices=("smooth", "realistic"),
        default="smooth",
        help="host population: smooth clumpy disks (default; a quick pipeline check) or the "
        "realistic default simulator (needs far more data and training)",
    )
    m.set_defaults(func=_cmd_demo)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clumpdet`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ClumpdetError as exc:
        print(f"clumpdet: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a path the user gave: a bug, keep the traceback
            raise
        print(f"clumpdet: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clumpdet: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
