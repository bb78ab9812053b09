"""DetectionDataset items, caching, augmentation, collate and deterministic splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from clumpdet.data import (
    DetectionDataset,
    Preprocessing,
    build_augmentation,
    detection_collate,
    load_coco,
    read_image,
    split_ids,
    write_coco,
    write_image_fits,
)
from clumpdet.errors import ConfigError, InputError

H, W = 24, 32
PREP = Preprocessing(bands=("g", "r", "i"), stretch="none")


@pytest.fixture
def coco_dir(tmp_path):
    """Three 3-band FITS images; image 2 has no clumps."""
    rng = np.random.default_rng(0)
    images, anns = [], []
    boxes = {1: [[2.0, 3.0, 6.0, 5.0], [10.0, 10.0, 8.0, 8.0]], 2: [], 3: [[20.0, 1.0, 4.0, 4.0]]}
    for image_id, bxs in boxes.items():
        name = f"images/{image_id:06d}.fits"
        # Planes stored as (i, r, g) to check that the dataset reorders them.
        data = rng.normal(size=(3, H, W)).astype(np.float32) + image_id
        write_image_fits(tmp_path / name, data, bands=("i", "r", "g"))
        images.append({"id": image_id, "file_name": name, "width": W, "height": H})
        for k, b in enumerate(bxs):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1 + k % 2,
                    "bbox": b,
                    "area": b[2] * b[3],
                    "iscrowd": 0,
                }
            )
    write_coco(tmp_path / "annotations.json", images=images, annotations=anns)
    return tmp_path


def test_items_shapes_dtypes_and_empty_target(coco_dir):
    ds = DetectionDataset(coco_dir / "annotations.json", preprocessing=PREP)
    assert len(ds) == 3 and ds.image_ids == [1, 2, 3]
    assert ds.categories == {1: "clump", 2: "odd_clump"}

    image, target = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, H, W)
    raw = read_image(ds.image_path(0)).data
    np.testing.assert_array_equal(image.numpy(), raw[::-1])  # (i, r, g) on disk -> (g, r, i)
    assert set(target) == {"boxes", "labels", "image_id", "area", "iscrowd"}
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (2, 4)
    torch.testing.assert_close(
        target["boxes"], torch.tensor([[2.0, 3.0, 8.0, 8.0], [10.0, 10.0, 18.0, 18.0]])
    )
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [1, 2]
    assert target["image_id"].dtype == torch.int64 and target["image_id"].ndim == 0
    assert int(target["image_id"]) == 1
    torch.testing.assert_close(target["area"], torch.tensor([30.0, 64.0]))
    assert target["iscrowd"].dtype == torch.int64 and target["iscrowd"].tolist() == [0, 0]

    image, target = ds[1]  # no clumps
    assert image.shape == (3, H, W) and int(target["image_id"]) == 2
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    assert target["area"].shape == (0,) and target["iscrowd"].shape == (0,)


def test_subset_cache_and_loaded_dict(coco_dir):
    coco = load_coco(coco_dir / "annotations.json")
    ds = DetectionDataset(coco, preprocessing=PREP, image_ids=[3, 1], cache=True)
    assert len(ds) == 2 and int(ds[0][1]["image_id"]) == 3
    first = ds[0][0].clone()
    (coco_dir / "images" / "000003.fits").unlink()  # served from the cache from now on
    torch.testing.assert_close(ds[0][0], first)
    ds[0][0].zero_()  # callers may modify items without corrupting the cache
    torch.testing.assert_close(ds[0][0], first)

    uncached = DetectionDataset(coco, preprocessing=PREP, image_ids=[3])
    with pytest.raises(InputError, match=r"000003\.fits: file not found"):
        uncached[0]
    with pytest.raises(InputError, match=r"annotations\.json: 1 image id\(s\) not in file: 99"):
        DetectionDataset(coco_dir / "annotations.json", preprocessing=PREP, image_ids=[1, 99])


def test_wrong_bands_and_size_are_input_errors(coco_dir):
    ds = DetectionDataset(
        coco_dir / "annotations.json", preprocessing=Preprocessing(bands=("u", "g", "r"))
    )
    with pytest.raises(InputError, match=r"000001\.fits: band\(s\) u not found"):
        ds[0]
    write_image_fits(
        coco_dir / "images/000002.fits", np.zeros((3, H, W + 2)), bands=("i", "r", "g")
    )
    ds = DetectionDataset(coco_dir / "annotations.json", preprocessing=PREP)
    with pytest.raises(InputError, match=r"000002\.fits: image is 34x24 px but .* says 32x24"):
        ds[1]


def test_augmentation_moves_boxes(coco_dir):
    aug = build_augmentation(hflip=1.0, vflip=0.0, rot90=False)
    plain = DetectionDataset(coco_dir / "annotations.json", preprocessing=PREP)
    ds = DetectionDataset(coco_dir / "annotations.json", preprocessing=PREP, augmentation=aug)
    image, target = ds[0]
    torch.testing.assert_close(image, plain[0][0].flip(-1))
    torch.testing.assert_close(
        target["boxes"],
        torch.tensor([[W - 8.0, 3.0, W - 2.0, 8.0], [W - 18.0, 10.0, W - 10.0, 18.0]]),
    )
    assert target["labels"].tolist() == [1, 2] and target["iscrowd"].tolist() == [0, 0]
    assert ds[1][1]["boxes"].shape == (0, 4)


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_dataloader_collate_and_worker_seeding(coco_dir):
    ds = DetectionDataset(coco_dir / "annotations.json", preprocessing=PREP)
    images, targets = next(iter(DataLoader(ds, batch_size=3, collate_fn=detection_collate)))
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == 3
    assert [t["boxes"].shape[0] for t in targets] == [2, 0, 1]

    # Forked workers would otherwise repeat the same "random" transforms.
    aug = build_augmentation(hflip=0.5, vflip=0.5, rot90=True)
    ids = [1] * 8
    many = DetectionDataset(
        coco_dir / "annotations.json", preprocessing=PREP, augmentation=aug, image_ids=ids
    )
    torch.manual_seed(0)
    loader = DataLoader(many, batch_size=1, num_workers=2, collate_fn=detection_collate)
    boxes = [t[0]["boxes"][0].tolist() for _, t in loader]
    assert boxes[0::2] != boxes[1::2]  # items 0, 2, .. from worker 0; 1, 3, .. from worker 1


def test_split_ids():
    ids = list(range(100, 200))
    train, val, test = split_ids(ids, fractions=(0.8, 0.1, 0.1), seed=0)
    assert (len(train), len(val), len(test)) == (80, 10, 10)
    assert sorted(train + val + test) == ids and train == sorted(train)
    assert split_ids(ids[::-1], seed=0) == (train, val, test)  # independent of input order
    assert split_ids(ids, seed=1) != (train, val, test)
    a, b = split_ids(range(7), fractions=(0.5, 0.5), seed=3)
    assert len(a) + len(b) == 7 and not set(a) & set(b)
    with pytest.raises(ConfigError, match="sum to 1"):
        split_ids(ids, fractions=(0.8, 0.3))
    with pytest.raises(ConfigError, match="positive"):
        split_ids(ids, fractions=(1.2, -0.2))
    with pytest.raises(InputError, match="1 repeated id"):
        split_ids([1, 2, 2])
