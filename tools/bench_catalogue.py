"""Survey-catalogue benchmark: throughput, Dask scaling, memory per worker, kill -9 resume.

In one run, on small simulated FITS cutouts (3-band Gaussian galaxies with compact knots, a TAN
WCS at 0.396"/px) and a tiny *untrained* ResNet-18 Faster R-CNN (weights are irrelevant to
speed and memory; its detections are capped at ``--dets`` per image so the photometry does a
realistic amount of work):

1. **network alone**: ``Predictor.predict`` on images already in memory (stretch + forward),
   with 1 and with ``--cores`` torch threads;
   **end to end**: ``clumpdet catalogue`` (read FITS, detect, photometry, parquet shards,
   manifest, merge) in one process (1 thread), and on a Dask ``LocalCluster`` of 1 and 2
   workers (1 thread each).
2. **peak RSS per worker** for ``--rss-small`` vs ``--rss-large`` images: a fresh 1-worker
   ``LocalCluster`` per size, the worker's ``ru_maxrss`` read after the run (the large list
   repeats the small set's files, read from disk each time). ``clumpdet detect`` (one process)
   is measured the same way for ``--rss-small`` and 3x as many images.
3. **resume**: an uninterrupted ``clumpdet catalogue`` run, then ``--trials`` runs killed with
   SIGKILL (the whole process group: driver and Dask workers) at a random moment and rerun to
   completion; the merged ``catalogue.parquet``, ``catalogue.fits`` and ``failed.csv`` are
   compared byte for byte with the uninterrupted run's.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_catalogue.py --out results/bench_catalogue

Writes ``bench_catalogue.json`` and ``bench_catalogue.png`` in ``--out`` and prints the command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def make_images(root: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """``n`` 3-band FITS cutouts: an exponential disk with 0-4 Gaussian knots, noise, WCS."""
    from clumpdet.data.fits import make_wcs, write_image_fits

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        c = size / 2 + rng.normal(0, 2, 2)
        r = np.hypot(xx - c[0], (yy - c[1]) * rng.uniform(1, 2))
        img = 5.0 * np.exp(-r / rng.uniform(4, 10))
        for _ in range(rng.integers(0, 5)):
            k = c + rng.normal(0, size / 8, 2)
            img = img + rng.uniform(2, 10) * np.exp(-((xx - k[0]) ** 2 + (yy - k[1]) ** 2) / 3)
        cube = img[None] * np.array([0.6, 1.0, 1.3])[:, None, None]
        cube = cube + rng.normal(0, 0.3, cube.shape)
        p = (root / f"{i:05d}.fits").resolve()
        wcs = make_wcs(shape=(size, size), ra=150 + i * 1e-3, dec=2.0, pixel_scale=0.396)
        write_image_fits(p, cube, bands=("g", "r", "i"), wcs=wcs, pixel_scale=0.396)
        paths.append(p)
    return paths


def make_checkpoint(path: Path, size: int, dets: int) -> Path:
    from clumpdet.checkpoints import save_checkpoint
    from clumpdet.config import to_dict
    from clumpdet.data.preprocessing import Preprocessing
    from clumpdet.models.backbones import BackboneConfig
    from clumpdet.models.detector import DetectorConfig, build_detector

    torch.manual_seed(0)
    pre = Preprocessing(bands=("g", "r", "i"))
    cfg = DetectorConfig(
        backbone=BackboneConfig(name="resnet18", weights="none"),
        min_score=0.0,
        detections_per_image=dets,
    )
    model = build_detector(config=cfg, in_chans=3, image_mean=pre.mean, image_std=pre.std)
    return save_checkpoint(
        path,
        kind="detector",
        model=model.eval(),
        preprocessing=pre,
        model_config=to_dict(cfg),
        image_size=(size, size),
        input={"kind": "fits", "unit": "nanomaggy"},
        pixel_scale=0.396,
    )


def network_alone(ckpt: Path, paths: list[Path], threads: int, batch: int) -> float:
    """Images/s of stretch + forward on images already in memory."""
    from clumpdet.inference.predictor import Predictor

    torch.set_num_threads(threads)
    pred = Predictor.from_checkpoint(ckpt, batch_size=batch)
    images = [pred.read(p) for p in paths]
    pred.predict(images[:batch])  # warm-up
    t0 = time.perf_counter()
    for s in range(0, len(images), batch):
        pred.predict(images[s : s + batch])
    return len(images) / (time.perf_counter() - t0)


def catalogue_cmd(ckpt: Path, listing: Path, out: Path, *, workers: int, shard: int) -> list[str]:
    return [
        sys.executable, "-m", "clumpdet.cli", "catalogue", str(ckpt), str(listing),
        "--out", str(out), "--workers", str(workers), "--shard-size", str(shard),
        "--no-progress", "--fits",
    ]  # fmt: skip


def warm_up(ckpt, listing, out, *, workers, scheduler=None, tile_overlap=48) -> float:
    """Seconds of a 2-image-per-worker catalogue run: imports and model loading, not timed
    again (each worker keeps its model)."""
    from clumpdet.inference.survey import run_catalogue

    lines = listing.read_text().splitlines()[: 2 * max(1, workers)]
    warm = out.parent / f"{out.name}_warm.txt"
    warm.write_text("".join(f"{x}\n" for x in lines))
    t0 = time.perf_counter()
    run_catalogue(
        checkpoint=ckpt,
        inputs=[warm],
        out=out.parent / f"{out.name}_warm",
        shard_size=1,
        workers=workers,
        scheduler=scheduler,
        tile_overlap=tile_overlap,
        overwrite=True,
        progress=False,
    )
    return time.perf_counter() - t0


def end_to_end(ckpt, listing, out, *, workers, shard, scheduler=None, tile_overlap=48) -> dict:
    """Images/s of a whole ``run_catalogue`` (in this process, or on ``scheduler``), after a
    warm-up run (imports, model loading) whose time is reported apart."""
    from clumpdet.inference.survey import run_catalogue

    torch.set_num_threads(1)
    warm_s = warm_up(
        ckpt, listing, out, workers=workers, scheduler=scheduler, tile_overlap=tile_overlap
    )
    t0 = time.perf_counter()
    s = run_catalogue(
        checkpoint=ckpt,
        inputs=[listing],
        out=out,
        shard_size=shard,
        workers=workers,
        scheduler=scheduler,
        tile_overlap=tile_overlap,
        overwrite=True,
        progress=False,
    )
    dt = time.perf_counter() - t0
    if s["n_failed"]:
        raise RuntimeError(f"{s['n_failed']} images failed: see {s['failed']}")
    return {
        "images_per_s": s["n_images"] / dt,
        "seconds": dt,
        "n_images": s["n_images"],
        "n_rows": s["n_rows"],
        "warm_up_s": warm_s,
    }


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def dask_run(ckpt, listing, out, *, workers, shard, tile_overlap=48) -> dict:
    """``run_catalogue`` on a fresh LocalCluster; cluster start-up excluded; worker peak RSS."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    from clumpdet.inference.survey import WORKER_CONFIG

    with (
        dask.config.set(WORKER_CONFIG),  # the same worker settings as `clumpdet catalogue`
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        ) as cluster,
        Client(cluster) as client,
    ):
        rec = end_to_end(
            ckpt,
            listing,
            out,
            workers=workers,
            shard=shard,
            scheduler=cluster.scheduler_address,
            tile_overlap=tile_overlap,
        )
        rss = client.run(_maxrss_mb)
    rec["worker_peak_rss_mb"] = sorted(rss.values())
    return rec


def detect_rss(ckpt: Path, paths: list[Path], n: int, out: Path) -> float:
    """Peak RSS (MB) of a ``clumpdet detect`` child process on ``n`` images."""
    files = [str(paths[k % len(paths)]) for k in range(n)]
    # repeated files: copy-free symlinks so each path is distinct for detect's COCO ids
    link_dir = (out / f"links_{n}").resolve()
    link_dir.mkdir(parents=True, exist_ok=True)
    links = []
    for k, f in enumerate(files):
        dst = link_dir / f"{k:06d}.fits"
        if not dst.exists():
            dst.symlink_to(f)
        links.append(str(dst))
    cmd = [
        sys.executable, "-m", "clumpdet.cli", "detect", str(ckpt), *links,
        "--out", str(out / f"detect_{n}.parquet"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(err[-2000:])
    return usage.ru_maxrss / 1024.0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def resume_trials(ckpt, listing, out: Path, *, trials, workers, shard, seed) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    names = ("catalogue.parquet", "catalogue.fits", "failed.csv")
    ref = out / "ref"
    t0 = time.perf_counter()
    subprocess.run(
        catalogue_cmd(ckpt, listing, ref, workers=workers, shard=shard),
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    t_ref = time.perf_counter() - t0
    want = {n: digest(ref / n) for n in names}
    rng = random.Random(seed)
    results = []
    for k in range(trials):
        run = out / f"trial{k}"
        at = rng.uniform(0.15, 0.95) * t_ref
        proc = subprocess.Popen(
            catalogue_cmd(ckpt, listing, run, workers=workers, shard=shard),
            env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            proc.wait(timeout=at)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
        manifest = run / "manifest.json"
        done = len(json.loads(manifest.read_text())["shards"]) if manifest.is_file() else 0
        subprocess.run(
            catalogue_cmd(ckpt, listing, run, workers=workers, shard=shard),
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        same = all(digest(run / n) == want[n] for n in names)
        results.append(
            {"kill_at_s": round(at, 2), "killed": killed, "shards_done": done, "identical": same}
        )
        print(f"trial {k}: kill at {at:.1f}s ({done} shards done) -> identical={same}")
    return {
        "workers": workers,
        "shard_size": shard,
        "uninterrupted_s": t_ref,
        "trials": results,
        "identical": sum(r["identical"] for r in results),
        "killed": sum(r["killed"] for r in results),
    }


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    sp = res["speed"]
    labels = [
        "network\n1 thread",
        f"network\n{res['cores']} threads",
        "catalogue\n1 process",
        "catalogue\nDask 1 worker",
        "catalogue\nDask 2 workers",
    ]
    vals = [
        sp["network_1thread"],
        sp["network_all_threads"],
        sp["catalogue_in_process"]["images_per_s"],
        sp["dask_1_worker"]["images_per_s"],
        sp["dask_2_workers"]["images_per_s"],
    ]
    a.bar(labels, vals, color=["grey", "grey", "C0", "C1", "C2"])
    a.set_ylabel("images / s")
    a.set_title(f"{res['size']}x{res['size']} cutouts, {res['speed_images']} images")
    m = res["memory"]
    b.bar(
        [f"catalogue worker\n{m['small']} img", f"catalogue worker\n{m['large']} img",
         f"detect\n{m['detect_images']} img", f"detect\n{3 * m['detect_images']} img"],
        [m["worker_rss_small_mb"], m["worker_rss_large_mb"],
         m["detect_rss_small_mb"], m["detect_rss_3x_mb"]],
        color=["C0", "C0", "grey", "grey"],
    )  # fmt: skip
    b.set_ylabel("peak RSS (MB)")
    b.set_title(f"resume: {res['resume']['identical']}/{len(res['resume']['trials'])} identical")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("results/bench_catalogue"))
    ap.add_argument("--size", type=int, default=128, help="cutout side (pixels)")
    ap.add_argument("--dets", type=int, default=5, help="detections per image (tiny detector)")
    ap.add_argument("--speed-images", type=int, default=400)
    ap.add_argument("--rss-small", type=int, default=1000)
    ap.add_argument("--rss-large", type=int, default=10000)
    ap.add_argument("--rss-size", type=int, default=64, help="cutout side for the RSS runs")
    ap.add_argument("--detect-rss-n", type=int, default=200, help="detect RSS: N vs 3N images")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--trial-images", type=int, default=120)
    ap.add_argument("--trial-workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["speed", "memory", "resume"])
    ap.add_argument(
        "--checkpoint",
        type=Path,
        help="a TRAINED detector checkpoint for the speed section (default: the tiny untrained "
        "one, whose detections are capped at --dets)",
    )
    ap.add_argument(
        "--images",
        type=Path,
        help="folder of FITS cutouts for the speed section, e.g. a `clumpdet simulate clumps` "
        "images/ folder (the first --speed-images, sorted); default: synthetic --size cutouts",
    )
    args = ap.parse_args(argv)
    out = args.out
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    res_path = out / "bench_catalogue.json"
    res: dict = json.loads(res_path.read_text()) if res_path.is_file() else {}
    res.setdefault("commands", []).append(" ".join(["python", *sys.argv]))
    res.update(size=args.size, cores=args.cores, speed_images=args.speed_images)

    def save() -> None:  # after every section: a long run keeps what it measured
        res_path.write_text(json.dumps(res, indent=1))

    ckpt = make_checkpoint(work / "model.pt", args.size, args.dets)
    paths = make_images(work / "img", args.speed_images, args.size, seed=args.seed)
    speed_ckpt, speed_paths = ckpt, paths
    if args.checkpoint is not None:
        speed_ckpt = args.checkpoint.resolve()
        res["speed_checkpoint"] = str(speed_ckpt)
    if args.images is not None:
        speed_paths = sorted(args.images.resolve().glob("*.fits"))[: args.speed_images]
        if not speed_paths:
            ap.error(f"--images {args.images}: no *.fits files")
        res["speed_images_from"] = str(args.images)
    speed_listing = work / "speed_images.txt"
    speed_listing.write_text("".join(f"{p}\n" for p in speed_paths))
    listing = work / "speed.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    if "speed" not in args.skip:
        sp = {
            "network_1thread": network_alone(speed_ckpt, speed_paths, 1, args.batch_size),
            "network_all_threads": network_alone(
                speed_ckpt,
                speed_paths,
                args.cores,
                args.batch_size,
            ),
        }
        print(f"network alone: {sp['network_1thread']:.1f} img/s (1 thread), "
              f"{sp['network_all_threads']:.1f} img/s ({args.cores} threads)")  # fmt: skip
        sp["catalogue_in_process"] = end_to_end(
            speed_ckpt, speed_listing, work / "e2e", workers=0, shard=args.shard_size
        )
        for w, key in ((1, "dask_1_worker"), (2, "dask_2_workers")):
            sp[key] = dask_run(
                speed_ckpt, speed_listing, work / f"dask{w}", workers=w, shard=args.shard_size
            )
        sp["ratio_in_process_vs_network_1thread"] = (
            sp["catalogue_in_process"]["images_per_s"] / sp["network_1thread"]
        )
        sp["ratio_dask2_vs_network_all_threads"] = (
            sp["dask_2_workers"]["images_per_s"] / sp["network_all_threads"]
        )
        # the stricter baseline: two single-thread network processes (ideal scaling)
        sp["ratio_dask2_vs_2x_network_1thread"] = sp["dask_2_workers"]["images_per_s"] / (
            args.cores * sp["network_1thread"]
        )
        sp["dask_speedup_2_vs_1"] = (
            sp["dask_2_workers"]["images_per_s"] / sp["dask_1_worker"]["images_per_s"]
        )
        res["speed"] = sp
        save()
        print(json.dumps(sp, indent=1))
    if "memory" not in args.skip:
        ck_small = make_checkpoint(work / "model_small.pt", args.rss_size, args.dets)
        small = make_images(work / "img_small", args.rss_small, args.rss_size, seed=1)
        mem = {"small": args.rss_small, "large": args.rss_large, "size": args.rss_size}
        for n, key in ((args.rss_small, "small"), (args.rss_large, "large")):
            lst = work / f"rss_{n}.txt"
            lst.write_text("".join(f"{small[k % len(small)]}\n" for k in range(n)))
            rec = dask_run(
                ck_small,
                lst,
                work / f"rss{n}",
                workers=1,
                shard=args.shard_size * 4,
                tile_overlap=min(48, args.rss_size // 4),
            )
            mem[f"worker_rss_{key}_mb"] = rec["worker_peak_rss_mb"][0]
            mem[f"rate_{key}"] = rec["images_per_s"]
            print(f"{n} images: worker peak RSS {mem[f'worker_rss_{key}_mb']:.0f} MB")
        mem["worker_rss_ratio"] = mem["worker_rss_large_mb"] / mem["worker_rss_small_mb"]
        # detect on the larger cutouts, where holding every image (the old growth) shows
        mem["detect_images"] = args.detect_rss_n
        mem["detect_size"] = args.size
        mem["detect_rss_small_mb"] = detect_rss(ckpt, paths, args.detect_rss_n, work)
        mem["detect_rss_3x_mb"] = detect_rss(ckpt, paths, 3 * args.detect_rss_n, work)
        res["memory"] = mem
        save()
        print(json.dumps(mem, indent=1))
    if "resume" not in args.skip:
        lst = work / "trial.txt"
        lst.write_text("".join(f"{paths[k % len(paths)]}\n" for k in range(args.trial_images)))
        res["resume"] = resume_trials(
            ckpt,
            lst,
            work / "resume",
            trials=args.trials,
            workers=args.trial_workers,
            shard=max(1, args.trial_images // 12),
            seed=args.seed,
        )
        save()
        print(f"resume: {res['resume']['identical']}/{args.trials} identical")
    save()
    if all(k in res for k in ("speed", "memory", "resume")):
        plot(res, out / "bench_catalogue.png")
    print(f"wrote {res_path}\n{res['commands'][-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
