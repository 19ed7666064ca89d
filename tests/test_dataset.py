import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from detection.config import get_cfg
from detection.data import transforms
from detection.data.annotations import AnnotationError
from detection.data.dataset import AvaDataset, SameSizeBatchSampler, build_loader, collate
from detection.data.synthetic import generate_synthetic_ava
from detection.data.video import VideoReader, VideoReadError, find_video


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


def _inputs(item):
    """A test item's model inputs (`InputFormat.inputs` of its uint8 frames), each [3, T, H, W]."""
    return [x[0] for x in item["input_format"].inputs(item["frames"][None])]


def test_test_items_follow_the_model_contract(synthetic_ava):
    dataset = AvaDataset(_cfg(synthetic_ava.root), "test")
    # Test uses the predicted boxes over 0.9: every actor of every val keyframe.
    assert len(dataset) == len(synthetic_ava.val_videos) * len(synthetic_ava.keyframe_seconds)
    item = dataset[0]
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (16, 72, 96, 3)
    slow, fast = _inputs(item)
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
    (only,) = _inputs(AvaDataset(_cfg(synthetic_ava.root, arch="slow"), "test")[0])
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
    assert (_inputs(a)[1] - _inputs(b)[1]).abs().mean() < 0.05


def test_test_items_read_in_order_equal_clips_each_read_alone(synthetic_ava):
    """Test items read in keyframe order (one reader continuing forward, the next clip's frames
    kept decoded, the others' B-frames skipped, the frames shared with the previous clip taken
    from it already transformed, the others decoded into one reused buffer) hold exactly the
    clip and boxes that a fresh reader and `test_transform` give for each keyframe."""
    cfg = _cfg(synthetic_ava.root)
    dataset = AvaDataset(cfg, "test")
    items = [dataset[i] for i in range(len(dataset))]
    video_dir = Path(synthetic_ava.root) / cfg.AVA.VIDEO_DIR
    for index, item in enumerate(items):
        keyframe = dataset.keyframes[index]
        with VideoReader(find_video(video_dir, keyframe.video_id), keep_frames=False) as reader:
            frames = reader.read_at_times(dataset.clip_indices(index) / cfg.AVA.FPS)
        clip, boxes = transforms.test_transform(
            frames,
            keyframe.boxes,
            short_side=cfg.DATA.TEST_CROP_SIZE,
            mean=cfg.DATA.MEAN,
            std=cfg.DATA.STD,
            bgr=cfg.AVA.BGR,
        )
        torch.testing.assert_close(_inputs(item)[1], clip, rtol=0, atol=0)
        torch.testing.assert_close(item["boxes"], boxes, rtol=0, atol=0)
        assert item["orig_size"] == frames.shape[1:3]


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
    assert batch["frames"].shape == (3, 16, 72, 96, 3)
    assert batch["input_format"] == items[0]["input_format"]
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
    # Clips of different sizes are never padded into one batch.
    small = dict(items[0], frames=items[0]["frames"][:, :60, :80])
    with pytest.raises(ValueError, match=r"different sizes \[\(60, 80\), \(72, 96\)\]"):
        collate([small, items[1]])


@pytest.mark.parametrize("backend", ["video", "frames"])
def test_test_batches_are_written_in_place_and_equal_batches_of_single_items(
    synthetic_ava, backend
):
    """The loader's test batches (frames written straight into the batch by `__getitems__`, in
    shared memory in a worker) equal `collate` of the items read one by one, with 0 and 2
    workers, and so do their model inputs; without workers the batch is the tensor the items'
    frames are slices of."""
    cfg = _cfg(synthetic_ava.root, backend=backend)
    cfg.TEST.BATCH_SIZE = 3
    dataset = AvaDataset(cfg, "test")
    indices = [0, 1, 2]
    items = dataset.__getitems__(indices)
    batch = collate(items)
    assert all(item["frames"]._base is batch["frames"] for item in items)
    single = collate([AvaDataset(cfg, "test")[i] for i in indices])
    for key in ("frames", "boxes", "labels", "boxes_norm"):
        torch.testing.assert_close(batch[key], single[key], rtol=0, atol=0)
    for workers in (0, 2):
        cfg.DATA_LOADER.NUM_WORKERS = workers
        loader = build_loader(cfg, "test")
        batches = sorted(loader, key=lambda b: b["metadata"][0])
        fresh = AvaDataset(cfg, "test")
        position = {(k.video_id, k.second): i for i, k in enumerate(fresh.keyframes)}
        for got in batches:
            first = position[got["metadata"][0]]
            want = collate([fresh[i] for i in range(first, first + len(got["orig_sizes"]))])
            assert got["metadata"] == want["metadata"]
            assert got["frames"].is_shared() == (workers > 0)
            torch.testing.assert_close(got["frames"], want["frames"], rtol=0, atol=0)
            inputs = got["input_format"].inputs(got["frames"])
            for b, index in enumerate(range(first, first + len(got["orig_sizes"]))):
                for ours, theirs in zip(inputs, _inputs(fresh[index]), strict=True):
                    torch.testing.assert_close(ours[b], theirs, rtol=0, atol=0)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_loader_with_workers_loads_the_kernels_before_they_fork(synthetic_ava, tmp_path, workers):
    """Workers forked after `build_loader` inherit the colour and normalization kernels instead
    of each importing Numba and loading them again every epoch; without workers they stay
    unloaded until a frame is converted."""
    cfg = _cfg(synthetic_ava.root, workers=workers)
    config = tmp_path / "loader.yaml"
    config.write_text(cfg.dump())
    code = (
        "import sys; from detection.config import get_cfg; from detection.data import jpeg_colour; "
        "from detection.data.dataset import build_loader; cfg = get_cfg(); "
        f"cfg.merge_from_file({str(config)!r}); build_loader(cfg, 'test'); "
        "print(jpeg_colour._kernel is not None, 'numba' in sys.modules, "
        "'detection.data._normalize_kernel' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.split() == [str(workers > 0)] * 3


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
        train = build_loader(_cfg(synthetic_ava.root), "train", distributed=True)
        assert isinstance(train.sampler, DistributedSampler) and train.sampler.shuffle
        loader = build_loader(_cfg(synthetic_ava.root), "test", distributed=True)
        assert isinstance(loader.batch_sampler, SameSizeBatchSampler)
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


@pytest.mark.parametrize("num_shards", [1, 2, 3, 5, 12])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_test_batches_hold_one_size_and_every_item_once_over_all_shards(num_shards, batch_size):
    sizes = [(64, 85)] * 4 + [(85, 64)] * 3 + [(64, 85)] * 2  # three runs of equal sizes
    batches = [
        SameSizeBatchSampler(sizes, batch_size, shard=r, num_shards=num_shards)
        for r in range(num_shards)
    ]
    flat = [i for shard in batches for batch in shard for i in batch]
    for shard in batches:
        assert len(shard) >= 1
        for batch in shard:
            assert 1 <= len(batch) <= batch_size and len({sizes[i] for i in batch}) == 1
            assert batch == list(range(batch[0], batch[0] + len(batch)))
    # Once each, in order across shards; more processes than items: the last shards, which
    # would be empty, repeat the last item (the tester drops repeated predictions).
    assert flat == list(range(len(sizes))) + [len(sizes) - 1] * max(0, num_shards - len(sizes))
    counts = [sum(map(len, shard)) for shard in batches]
    assert max(counts) - min(counts) <= 1
    if num_shards == 1:
        expected = {1: 9, 3: 4, 8: 3}[batch_size]  # runs of 4, 3, 2 cut at batch_size
        assert len(batches[0]) == expected


@pytest.fixture(scope="module")
def two_aspect_ratios(tmp_path_factory):
    """An AVA-format val set of two videos of different aspect ratios, 160x120 and 96x128
    (test clips 85x64 and 64x85 at TEST_CROP_SIZE 64), 2 keyframes each, boxes for 2-4
    actors per keyframe. Returns DATA.PATH_TO_DATA_DIR."""
    tmp = tmp_path_factory.mktemp("two_aspect_ratios")
    root = tmp / "ava"
    (root / "videos").mkdir(parents=True)
    (root / "annotations").mkdir()
    files = ["ava_val_predicted_boxes.csv", "ava_val_v2.2.csv"]
    texts = dict.fromkeys(files, "")
    for name, (width, height) in {"wide": (160, 120), "tall": (96, 128)}.items():
        info = generate_synthetic_ava(
            tmp / name, num_videos=2, num_val=1, seconds=5, seed=1, width=width, height=height,
            progress=False,
        )  # fmt: skip
        (video,) = info.val_videos
        shutil.copy(info.root / "videos" / f"{video}.mp4", root / "videos" / f"{name}.mp4")
        for f in files:
            texts[f] += (info.root / "annotations" / f).read_text().replace(video, name)
    for f, text in texts.items():
        (root / "annotations" / f).write_text(text)
    for f in (info.root / "annotations").glob("*.pbtxt"):
        shutil.copy(f, root / "annotations" / f.name)
    return root


def test_scores_do_not_depend_on_test_batch_size_across_videos_of_two_sizes(
    two_aspect_ratios, tmp_path
):
    """TEST.BATCH_SIZE 1 and 8 give the same detections CSV on keyframes of two videos whose
    clips differ in size (a tiny SlowFast with a non-local block: a padded batch changed its
    scores by up to 1.7e-2 on this set; unpadded batches differ by float rounding only), and so
    do 3 processes' shards gathered as the tester gathers them."""
    from detection.ava.csv_io import read_ava_csv, write_detections
    from detection.config import load_config
    from detection.engine.tester import Predictions, predict
    from detection.models import build_model

    runs, csvs = {}, {}
    for batch_size, workers in ((1, 0), (8, 0), (8, 2)):
        cfg = load_config(
            str(Path(__file__).resolve().parents[1] / "configs/test/SLOWFAST_TINY.yaml"),
            ["DATA.PATH_TO_DATA_DIR", str(two_aspect_ratios), "MODEL.NUM_CLASSES", "5"]
            + ["AVA.TEST_PREDICT_BOX_LISTS", "['ava_val_predicted_boxes.csv']"]
            + ["TEST.BATCH_SIZE", str(batch_size), "DATA_LOADER.NUM_WORKERS", str(workers)],
        )
        torch.manual_seed(0)
        model = build_model(cfg)
        with torch.no_grad():  # zero-initialized final BNs would hide residual and non-local
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm3d) and not m.weight.any():
                    m.weight.fill_(0.3)
        loader = build_loader(cfg, "test")
        if workers == 0:
            batch_sizes = [{tuple(b["frames"].shape[2:4])} for b in loader]
        key = (batch_size, workers)
        runs[key] = predict(model, loader, torch.device("cpu")).unique_sorted()
        path = tmp_path / f"detections_{batch_size}_{workers}.csv"
        write_detections(
            path,
            runs[key].video_ids,
            runs[key].timestamps,
            runs[key].boxes,
            runs[key].scores,
            [1, 2, 3, 4, 5],
        )
        csvs[key] = read_ava_csv(path, kind="detections")
    assert batch_sizes == [{(85, 64)}, {(64, 85)}]  # batch 8: one batch per video, nothing padded
    # Two workers read a video each (one contiguous run of batches): the same batches, the
    # same file.
    assert (tmp_path / "detections_8_2.csv").read_bytes() == (
        tmp_path / "detections_8_0.csv"
    ).read_bytes()
    runs = {batch_size: runs[(batch_size, 0)] for batch_size in (1, 8)}
    csvs = {batch_size: csvs[(batch_size, 0)] for batch_size in (1, 8)}
    dataset = loader.dataset
    shards = [
        SameSizeBatchSampler(
            [dataset.input_size(i) for i in range(len(dataset))], 8, shard=r, num_shards=3
        )
        for r in range(3)
    ]
    gathered = [
        predict(
            model, DataLoader(dataset, batch_sampler=s, collate_fn=collate), torch.device("cpu")
        )
        for s in shards
    ]
    ranks = Predictions.concatenate(gathered, 5).unique_sorted()
    assert (ranks.video_ids, ranks.timestamps) == (runs[8].video_ids, runs[8].timestamps)
    np.testing.assert_allclose(ranks.scores, runs[8].scores, rtol=0, atol=1e-6)
    one, eight = runs[1], runs[8]
    assert len(set(one.video_ids)) == 2 and len(one.video_ids) >= 8
    assert (one.video_ids, one.timestamps) == (eight.video_ids, eight.timestamps)
    np.testing.assert_array_equal(one.boxes, eight.boxes)
    np.testing.assert_allclose(one.scores, eight.scores, rtol=0, atol=1e-6)
    columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"]
    pd.testing.assert_frame_equal(csvs[1][columns], csvs[8][columns])
    np.testing.assert_allclose(csvs[1]["score"], csvs[8]["score"], rtol=0, atol=1.5e-6)


def test_the_clip_is_centred_on_the_keyframes_frame(tmp_path):
    """Second s is frame (s - 900) * 30 of the cut, the centre (position NUM_FRAMES // 2) of a
    clip range(c - N * rate / 2, c + N * rate / 2, rate): read from frames whose pixel value
    is their index (PNG, lossless)."""
    root = tmp_path / "ava"
    for d in ("annotations", "frame_lists", "frames/v"):
        (root / d).mkdir(parents=True)
    lines = ["original_vido_id video_id frame_id path labels"]
    for i in range(150):  # 5 s at 30 fps
        cv2.imwrite(str(root / f"frames/v/{i:03d}.png"), np.full((8, 8, 3), i, np.uint8))
        lines.append(f'v 0 {i} v/{i:03d}.png ""')
    (root / "frame_lists/val.csv").write_text("\n".join(lines) + "\n")
    (root / "annotations/ava_val_predicted_boxes.csv").write_text(
        "v,0902,0.1,0.1,0.5,0.5,,0.95\nv,0903,0.1,0.1,0.5,0.5,,0.95\n"
    )
    cfg = _cfg(root, backend="frames")
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 8, 4
    dataset = AvaDataset(cfg, "test")
    for index, second in enumerate((902, 903)):
        assert dataset.keyframes[index].second == second
        values = dataset.read_frames(index)[:, 0, 0, 0].tolist()
        centre = (second - 900) * 30
        assert values[8 // 2] == centre
        assert values == list(range(centre - 16, centre + 16, 4))


class _WhoReads(torch.utils.data.Dataset):
    """Item i is (i, the id of the loader worker that read it)."""

    def __len__(self) -> int:
        return 23

    def __getitem__(self, index: int) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return index, -1 if info is None else info.id


@pytest.mark.parametrize("num_workers", [2, 3])
def test_each_loader_worker_reads_one_contiguous_run_of_test_batches(num_workers):
    """With workers, a real DataLoader hands worker w the w-th contiguous run of the shard's
    batches (the sampler interleaves the runs in the order the loader deals batches out), so
    a worker's clips follow each other in the video; the batches are those of no workers."""
    sizes = [(64, 85)] * 9 + [(85, 64)] * 14
    plain = SameSizeBatchSampler(sizes, 3)
    sampler = SameSizeBatchSampler(sizes, 3, num_workers=num_workers)
    assert sorted(sampler) == sorted(plain)
    loader = DataLoader(
        _WhoReads(), batch_sampler=sampler, num_workers=num_workers, collate_fn=list
    )
    read_by: dict[int, list[int]] = {}
    for batch in loader:
        for index, worker in batch:
            read_by.setdefault(worker, []).append(index)
    assert sorted(read_by) == list(range(num_workers))
    runs = [read_by[w] for w in range(num_workers)]
    assert [i for run in runs for i in run] == list(range(len(sizes)))  # contiguous, in order
    batch_counts = [len({plain_index for plain_index, b in enumerate(plain) if b[0] in run})
                    for run in runs]  # fmt: skip
    assert max(batch_counts) - min(batch_counts) <= 1
