"""Inference and training throughput of clumpdet's detector vs torchvision's stock Faster R-CNN.

Both run in this one process on the same 200x200 3-band images, so the ratio is meaningful on
any machine. Usage::

    python tools/bench_detector_speed.py --out results/speed [--checkpoint RUN/model.pt]
        [--config configs/detector/cpu_resnet18.yaml] [--threads 2] [--device cpu]

Writes ``speed.json`` and prints a table and the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from clumpdet.config import load_config
from clumpdet.engine.config import TrainConfig
from clumpdet.models.detector import build_detector


class PeakRSS:
    """Sample the process RSS in a thread; ``peak_mb`` is the maximum seen in the block."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        proc = psutil.Process()
        self.peak = proc.memory_info().rss

        def run() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                time.sleep(self.interval)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def make_images(n: int, seed: int) -> tuple[list[torch.Tensor], list[dict]]:
    """Simulated SDSS-like clump cutouts (stretched), with their targets."""
    from clumpdet.data.preprocessing import Preprocessing
    from clumpdet.sim import load_sim_config, simulate_clump_scene

    cfg = load_sim_config()
    pre = Preprocessing(bands=("g", "r", "i"), stretch="asinh")
    images, targets = [], []
    for i in range(n):
        scene = simulate_clump_scene(config=cfg, seed=seed * 100_000 + i, image_id=i)
        images.append(torch.from_numpy(pre.stretch_only(scene.image)))
        targets.append(
            {
                "boxes": torch.as_tensor(scene.boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.as_tensor(scene.labels, dtype=torch.int64),
            }
        )
    return images, targets


def time_inference(model, images, *, batch_size: int, device, channels_last: bool) -> dict:
    model.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    with torch.inference_mode():
        model([x.to(device) for x in batches[0]])  # warm-up
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            n_det = 0
            for b in batches:
                out = model([x.to(device) for x in b])
                n_det += sum(len(o["boxes"]) for o in out)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
    return {
        "images": len(images),
        "seconds": dt,
        "images_per_s": len(images) / dt,
        "peak_rss_mb": mem.peak_mb,
        "detections_per_image": n_det / len(images),
    }


def time_training(model, images, targets, *, batch_size: int, device, steps: int) -> dict:
    model.train().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    idx = np.arange(len(images))

    def step(k: int) -> None:
        sel = idx[(k * batch_size) % len(images) :][:batch_size]
        losses = model(
            [images[i].to(device) for i in sel],
            [{kk: v.to(device) for kk, v in targets[i].items()} for i in sel],
        )
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()

    step(0)  # warm-up
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        for k in range(1, steps + 1):
            step(k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return {
        "steps": steps,
        "batch_size": batch_size,
        "seconds": dt,
        "images_per_s": steps * batch_size / dt,
        "peak_rss_mb": mem.peak_mb,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/speed"))
    p.add_argument(
        "--config",
        type=Path,
        default=Path(__file__).parents[1] / "configs/detector/cpu_resnet18.yaml",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="trained model.pt (realistic detection counts); default: untrained",
    )
    p.add_argument("--n-images", type=int, default=64)
    p.add_argument("--n-stock", type=int, default=6, help="images for the slow stock model")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--train-steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    images, targets = make_images(args.n_images, seed=7)
    results: dict = {
        "device": str(device),
        "threads": args.threads,
        "torch": torch.__version__,
        "image_shape": list(images[0].shape),
    }

    if args.checkpoint is not None:
        from clumpdet.checkpoints import load_detector

        ours = load_detector(args.checkpoint).model
        results["ours_model"] = str(args.checkpoint)
    else:
        cfg = load_config(TrainConfig, args.config)
        ours = build_detector(config=cfg.model, in_chans=3, image_mean=[0] * 3, image_std=[1] * 3)
        results["ours_model"] = f"untrained, {args.config}"
    results["ours_inference"] = time_inference(
        ours, images, batch_size=args.batch_size, device=device, channels_last=True
    )
    results["ours_inference_plain"] = time_inference(
        ours, images, batch_size=1, device=device, channels_last=False
    )
    cfg = load_config(TrainConfig, args.config)
    fresh = build_detector(config=cfg.model, in_chans=3, image_mean=[0] * 3, image_std=[1] * 3)
    results["ours_training"] = time_training(
        fresh, images, targets, batch_size=4, device=device, steps=args.train_steps
    )

    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    stock = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    results["stock_inference"] = time_inference(
        stock, images[: args.n_stock], batch_size=1, device=device, channels_last=False
    )
    results["stock_training"] = time_training(
        stock, images, targets, batch_size=2, device=device, steps=2
    )
    ours_ips = results["ours_inference"]["images_per_s"]
    results["inference_speedup_vs_stock"] = ours_ips / results["stock_inference"]["images_per_s"]
    results["training_speedup_vs_stock"] = (
        results["ours_training"]["images_per_s"] / results["stock_training"]["images_per_s"]
    )
    cmd = " ".join(["python", *sys.argv])
    results["command"] = cmd
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(results, indent=2))

    print(f"{'configuration':40s} {'img/s':>8s} {'peak RSS MB':>12s}")
    for key in (
        "ours_inference",
        "ours_inference_plain",
        "stock_inference",
        "ours_training",
        "stock_training",
    ):
        r = results[key]
        print(f"{key:40s} {r['images_per_s']:8.2f} {r['peak_rss_mb']:12.0f}")
    print(
        f"inference speed-up vs stock: {results['inference_speedup_vs_stock']:.1f}x; "
        f"training: {results['training_speedup_vs_stock']:.1f}x"
    )
    print(f"wrote {args.out / 'speed.json'}\ncommand: {cmd}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
