import shutil

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from detection.config import get_cfg
from detection.data.annotations import AnnotationError
from detection.data.dataset import AvaDataset, build_loader, collate
from detection.data.video import VideoReadError


def _cfg(root, backend="video", arch="slowfast", workers=0):
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = str(root)
    cfg.DATA.DECODING_BACKEND = backend
    cfg.MODEL.ARCH = arch
    cfg.MODEL.NUM_CLASSES = 5
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.SLOWFAST.ALPHA = 16, 2, 4
    cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = (
        [64, 80],
        64,
        72,
    )
    cfg.TRAIN.BATCH_SIZE = cfg.TEST.BATCH_SIZE = 2
    cfg.DATA_LOADER.NUM_WORKERS = workers
    return cfg


def test_test_items_follow_the_model_contract(synthetic_ava):
    dataset = AvaDataset(_cfg(synthetic_ava.root), "test")
    # Test uses the predicted boxes over 0.9: every actor of every val keyframe.
    assert len(dataset) == len(synthetic_ava.val_videos) * len(synthetic_ava.keyframe_seconds)
    item = dataset[0]
    slow, fast = item["inputs"]
    assert slow.shape == (3, 4, 72, 96) and fast.shape == (3, 16, 72, 96)
    torch.testing.assert_close(slow, fast[:, [0, 5, 10, 15]])
    n = len(item["boxes"])
    assert n >= 2 and item["labels"].shape == (n, 5) and item["boxes_norm"].shape == (n, 4)
    assert item["labels"].sum() == 0  # predicted boxes carry no labels
    assert item["orig_size"] == (120, 160)
    assert (item["video_id"], item["second"]) == (synthetic_ava.val_videos[0], 902)
    # Boxes in input pixels are the normalized boxes scaled by 72 / 120 of the 160x120 frame.
    torch.testing.assert_close(
        item["boxes"],
        (item["boxes_norm"] * torch.tensor([96, 72, 96, 72])).clamp(max=95),
        atol=1e-3,
        rtol=0,
    )
    (only,) = AvaDataset(_cfg(synthetic_ava.root, arch="slow"), "test")[0]["inputs"]
    assert only.shape == (3, 16, 72, 96)


def test_video_and_frame_backends_give_the_same_clips(synthetic_ava):
    by_video = AvaDataset(_cfg(synthetic_ava.root, "video"), "test")
    by_frames = AvaDataset(_cfg(synthetic_ava.root, "frames"), "test")
    assert len(by_video) == len(by_frames)
    for i in range(len(by_video)):
        np.testing.assert_array_equal(by_video.clip_indices(i), by_frames.clip_indices(i))
        a, b = by_video.read_frames(i).astype(int), by_frames.read_frames(i).astype(int)
        # The JPEGs were written from these very decoded frames: only JPEG's loss differs.
        assert a.shape == b.shape and np.abs(a - b).mean() < 2.0
    a, b = by_video[1], by_frames[1]
    torch.testing.assert_close(a["boxes"], b["boxes"])
    assert (a["inputs"][1] - b["inputs"][1]).abs().mean() < 0.05


def test_train_items_carry_gt_labels_and_augment(synthetic_ava):
    dataset = AvaDataset(_cfg(synthetic_ava.root), "train")
    torch.manual_seed(0)
    item = dataset[0]
    slow, fast = item["inputs"]
    assert slow.shape == (3, 4, 64, 64) and fast.shape == (3, 16, 64, 64)
    assert len(item["labels"]) == len(item["boxes"]) == len(item["boxes_norm"])
    assert (item["labels"].sum(1) >= 1).all()  # every GT box of the generated set has an action
    assert (item["boxes"] >= 0).all() and (item["boxes"] <= 63).all()


def test_collate_packs_variable_box_counts_into_k_by_5(synthetic_ava):
    dataset = AvaDataset(_cfg(synthetic_ava.root), "test")
    items = [dataset[0], dataset[1], dataset[2]]
    counts = [len(i["boxes"]) for i in items]
    batch = collate(items)
    k = sum(counts)
    assert [x.shape for x in batch["inputs"]] == [(3, 3, 4, 72, 96), (3, 3, 16, 72, 96)]
    assert batch["boxes"].shape == (k, 5) and batch["boxes"].dtype == torch.float32
    assert batch["boxes"][:, 0].tolist() == sum(([float(b)] * c for b, c in enumerate(counts)), [])
    torch.testing.assert_close(
        batch["boxes"][counts[0] : counts[0] + counts[1], 1:], items[1]["boxes"]
    )
    assert batch["labels"].shape == (k, 5) and batch["boxes_norm"].shape == (k, 4)
    assert len(batch["metadata"]) == k and batch["metadata"][-1] == (
        items[2]["video_id"],
        items[2]["second"],
    )
    assert batch["orig_sizes"] == [(120, 160)] * 3
    # Clips of different sizes (test time, videos of other aspect ratios) are zero-padded.
    small = dict(items[0], inputs=[x[..., :60, :80] for x in items[0]["inputs"]])
    padded = collate([small, items[1]])
    assert padded["inputs"][1].shape == (2, 3, 16, 72, 96)
    assert padded["inputs"][1][0, :, :, 60:].abs().sum() == 0


def test_loader_with_workers_is_deterministic(synthetic_ava):
    cfg = _cfg(synthetic_ava.root, workers=2)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)  # what the trainer does at the start of every epoch
        batches = list(build_loader(cfg, "train"))
        assert batches and all(len(b["orig_sizes"]) == 2 for b in batches)  # drop_last
        runs.append(batches)
    for a, b in zip(*runs, strict=True):
        assert a["metadata"] == b["metadata"]
        torch.testing.assert_close(a["boxes"], b["boxes"])
        torch.testing.assert_close(a["inputs"][1], b["inputs"][1])
    torch.manual_seed(8)
    other = list(build_loader(cfg, "train"))
    assert any(
        a["metadata"] != b["metadata"] or not torch.equal(a["boxes"], b["boxes"])
        for a, b in zip(runs[0], other, strict=True)
    )
    test = list(build_loader(_cfg(synthetic_ava.root, workers=0), "test"))
    seconds = [m for b in test for m in dict.fromkeys(b["metadata"])]
    assert seconds == sorted(seconds)  # the test split is not shuffled


def test_augmentation_seed_makes_items_independent_of_workers(synthetic_ava):
    """With `augmentation_seed` set, item i's crop and flip depend on (seed, i) only: 0 or 2
    workers (or ranks) give the same clips."""
    batches = {}
    for workers in (0, 2):
        loader = build_loader(_cfg(synthetic_ava.root, workers=workers), "train", shuffle=False)
        loader.dataset.augmentation_seed = 11
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2], strict=True):
        torch.testing.assert_close(a["boxes"], b["boxes"])
        torch.testing.assert_close(a["inputs"][1], b["inputs"][1])
    dataset = AvaDataset(_cfg(synthetic_ava.root), "train")
    dataset.augmentation_seed = 11
    first = dataset[1]
    torch.testing.assert_close(dataset[1]["inputs"][1], first["inputs"][1])
    dataset.augmentation_seed = 12
    assert not torch.equal(dataset[1]["inputs"][1], first["inputs"][1])


def test_distributed_loader_uses_a_distributed_sampler(synthetic_ava, tmp_path):
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        loader = build_loader(_cfg(synthetic_ava.root), "test", distributed=True)
        assert isinstance(loader.sampler, DistributedSampler) and not loader.sampler.shuffle
        assert sum(len(b["orig_sizes"]) for b in loader) == len(loader.dataset)
    finally:
        dist.destroy_process_group()


def test_missing_corrupt_video_and_missing_frames_are_named(synthetic_ava, tmp_path):
    root = tmp_path / "ava"
    shutil.copytree(synthetic_ava.root / "annotations", root / "annotations")
    shutil.copytree(synthetic_ava.root / "frame_lists", root / "frame_lists")
    (root / "videos").mkdir()
    vid = synthetic_ava.val_videos[0]
    with pytest.raises(VideoReadError, match=f"no video for id '{vid}' in .*videos"):
        AvaDataset(_cfg(root), "test")
    (root / "videos" / f"{vid}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(VideoReadError, match=f"{vid}.mp4: cannot open video"):
        AvaDataset(_cfg(root), "test")
    (root / "frame_lists" / "val.csv").write_text(
        "original_vido_id video_id frame_id path labels\n"
    )
    with pytest.raises(AnnotationError, match=f"videos \\['{vid}'\\] have boxes but no frames"):
        AvaDataset(_cfg(root, "frames"), "test")
