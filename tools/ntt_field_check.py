"""Real-image check: a trained star/galaxy detector against SExtractor on the ESO NTT frame.

Writes ``real_field.json`` (recovery of SExtractor sources, by S/N; the extra detections with
their aperture S/N; why each missed source was missed), ``overlay.png``, ``missed.png`` (cutouts
around the missed sources) and ``detections.csv`` under ``--out``. The frame is resampled only
when its PSF is narrower than the training PSF stored in the checkpoint (``psf_fwhm_px``).

Example::

    python tools/ntt_field_check.py --checkpoint results/fields_benchmark/run/model.pt \\
        --out results/ntt_field
    # a detector trained at the frame's own PSF (clumpdet simulate fields --like/--inject-into):
    python tools/ntt_field_check.py --checkpoint runs/matched/model.pt \
        --threshold-from data/inj_val/annotations.json --out results/ntt_matched
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clumpdet.errors import ClumpdetError
from clumpdet.experiments.real_field import check_against_sextractor, operating_threshold
from clumpdet.utils import command_line

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sep_ntt_field"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--image", type=Path, default=DATA / "image.fits")
    p.add_argument("--catalogue", type=Path, default=DATA / "image.cat")
    p.add_argument("--snr-min", type=float, default=10.0, help="SExtractor AUTO S/N limit")
    p.add_argument("--radius", type=float, default=2.0, help="match radius, frame pixels")
    p.add_argument(
        "--zoom", type=float, default=None, help="resampling (default: checkpoint PSF / frame PSF)"
    )
    p.add_argument("--score-threshold", type=float, default=None)
    p.add_argument(
        "--threshold-from",
        type=Path,
        default=None,
        help="choose the operating threshold (best F1) on this simulated/injected COCO set",
    )
    args = p.parse_args(argv)
    try:
        if args.threshold_from is not None and args.score_threshold is None:
            op = operating_threshold(
                checkpoint=args.checkpoint, coco=args.threshold_from, match_radius_px=args.radius
            )
            args.score_threshold = op["threshold"]
            print(f"operating threshold {op['threshold']:.2f} (best F1 on {args.threshold_from})")
        res = check_against_sextractor(
            checkpoint=args.checkpoint,
            image=args.image,
            catalogue=args.catalogue,
            out=args.out,
            snr_min=args.snr_min,
            match_radius_px=args.radius,
            zoom=args.zoom,
            score_threshold=args.score_threshold,
        )
        brief = {k: v for k, v in res.items() if k not in ("clumpdet", "sep_sextractor_settings")}
        print(json.dumps(brief, indent=1, default=str))
        for name in ("clumpdet", "sep_sextractor_settings"):
            r = res[name]
            print(
                f"{name}: {r['n_detections']} detections; recovers "
                f"{r['n_recovered_above_snr_min']}/{res['n_sextractor_above_snr_min']} SExtractor "
                f"sources with S/N >= {res['snr_min']:g} ({r['recovered_above_snr_min']:.3f}); "
                f"{r['n_unmatched_detections']} without a SExtractor counterpart"
            )
        print(f"command: {command_line(argv)}")
    except ClumpdetError as exc:
        print(f"ntt_field_check: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
