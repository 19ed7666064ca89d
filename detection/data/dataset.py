"""The AVA dataset (one item per keyframe with at least one box), its collate and loader.

Two sources of pixels give the same clips (``DATA.DECODING_BACKEND``):

- ``"video"``: the 15-minute cuts ``AVA.VIDEO_DIR/{video_id}.mp4`` (.mkv/.webm/.avi too) decoded
  with PyAV. Frame ``i`` of the 30 fps layout is the decoded frame nearest ``i / AVA.FPS`` s
  (`VideoReader.read_at_times`); the number of frames is ``round(duration * AVA.FPS)``.
- ``"frames"``: PySlowFast's extracted frames, ``AVA.FRAME_DIR`` + the paths in the frame
  lists ``AVA.FRAME_LIST_DIR/{AVA.TRAIN_LISTS | AVA.TEST_LISTS}``.

Splits: ``"train"`` reads ``AVA.TRAIN_GT_BOX_LISTS`` + ``AVA.TRAIN_PREDICT_BOX_LISTS`` and
augments (`train_transform`); ``"test"`` reads ``AVA.TEST_PREDICT_BOX_LISTS`` (scores >=
``AVA.DETECTION_SCORE_THRESH``) and only rescales (`test_transform`). Relative paths in the
``AVA.*_DIR`` keys are under ``DATA.PATH_TO_DATA_DIR``; box lists are under ``AVA.ANNOTATION_DIR``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from yacs.config import CfgNode

from .annotations import (
    AnnotationError,
    Keyframe,
    group_keyframes,
    read_box_files,
    read_frame_lists,
)
from .sampling import clip_frame_indices, pack_pathways
from .transforms import test_transform, train_transform
from .video import VideoReader, find_video, read_frame_files

SPLITS = ("train", "test")
BACKENDS = ("video", "frames")
# Open video files kept per worker process; AVA batches come from many videos, so a few suffice.
_MAX_OPEN_VIDEOS = 8


def _under(root: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) else root / path


class AvaDataset(Dataset):
    """AVA keyframes as model inputs.

    Item ``i`` is a dict: ``inputs`` list of pathway clips (each float32 [3, T_p, H, W]),
    ``boxes`` float32 [N, 4] in input pixels, ``labels`` float32 [N, MODEL.NUM_CLASSES] multi-hot,
    ``boxes_norm`` float32 [N, 4] as read from the CSV, ``video_id``, ``second`` and
    ``orig_size`` (H, W) of the source frames. A training crop can leave N = 0.
    """

    def __init__(self, cfg: CfgNode, split: str):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if cfg.DATA.DECODING_BACKEND not in BACKENDS:
            raise ValueError(
                f"DATA.DECODING_BACKEND must be one of {BACKENDS}, "
                f"got {cfg.DATA.DECODING_BACKEND!r}"
            )
        self.cfg = cfg
        self.split = split
        self.backend = cfg.DATA.DECODING_BACKEND
        root = Path(cfg.DATA.PATH_TO_DATA_DIR)
        ann_dir = _under(root, cfg.AVA.ANNOTATION_DIR)
        gt = cfg.AVA.TRAIN_GT_BOX_LISTS if split == "train" else []
        pred = (
            cfg.AVA.TRAIN_PREDICT_BOX_LISTS if split == "train" else cfg.AVA.TEST_PREDICT_BOX_LISTS
        )
        rows = read_box_files(
            [_under(ann_dir, p) for p in gt],
            [_under(ann_dir, p) for p in pred],
            score_thresh=cfg.AVA.DETECTION_SCORE_THRESH,
            num_classes=cfg.MODEL.NUM_CLASSES,
        )
        valid = range(cfg.AVA.VALID_FRAMES_START_SEC, cfg.AVA.VALID_FRAMES_END_SEC + 1)
        self.keyframes: list[Keyframe] = group_keyframes(rows, valid)
        video_ids = sorted({k.video_id for k in self.keyframes})
        if self.backend == "video":
            video_dir = _under(root, cfg.AVA.VIDEO_DIR)
            self._video_paths = {v: find_video(video_dir, v) for v in video_ids}
            self._num_frames = {}
            for video_id, path in self._video_paths.items():
                with VideoReader(path) as reader:
                    self._num_frames[video_id] = reader.num_frames_at(cfg.AVA.FPS)
        else:
            lists = cfg.AVA.TRAIN_LISTS if split == "train" else cfg.AVA.TEST_LISTS
            list_dir = _under(root, cfg.AVA.FRAME_LIST_DIR)
            self._frame_paths = read_frame_lists(
                [_under(list_dir, p) for p in lists], _under(root, cfg.AVA.FRAME_DIR)
            )
            missing = [v for v in video_ids if v not in self._frame_paths]
            if missing:
                raise AnnotationError(
                    f"videos {missing[:5]} have boxes but no frames in the frame lists "
                    f"{list(lists)} under {list_dir}"
                )
            self._num_frames = {v: len(self._frame_paths[v]) for v in video_ids}
        self._readers: dict[str, VideoReader] = {}
        self._readers_pid = os.getpid()
        # When set (the trainer sets it each epoch, before the epoch's workers start), item i's
        # augmentation draws from (augmentation_seed, i): the same crops and flips whatever the
        # number of workers or ranks. None: draw from torch's generator as described below.
        self.augmentation_seed: int | None = None

    def __len__(self) -> int:
        return len(self.keyframes)

    def __getstate__(self) -> dict[str, Any]:
        # Open files stay with the process that opened them.
        return {**self.__dict__, "_readers": {}}

    def _reader(self, video_id: str) -> VideoReader:
        if self._readers_pid != os.getpid():  # a forked worker must not share the parent's files
            self._readers, self._readers_pid = {}, os.getpid()
        reader = self._readers.pop(video_id, None)
        if reader is None:
            reader = VideoReader(self._video_paths[video_id])
            if len(self._readers) >= _MAX_OPEN_VIDEOS:
                self._readers.pop(next(iter(self._readers))).close()
        self._readers[video_id] = reader  # most recently used last
        return reader

    def clip_indices(self, index: int) -> np.ndarray:
        """Frame indices (30 fps layout) of item `index`'s clip: int64 [DATA.NUM_FRAMES]."""
        keyframe = self.keyframes[index]
        center = (keyframe.second - self.cfg.AVA.VIDEO_START_SEC) * self.cfg.AVA.FPS
        data = self.cfg.DATA
        return clip_frame_indices(
            center, data.NUM_FRAMES, data.SAMPLING_RATE, self._num_frames[keyframe.video_id]
        )

    def read_frames(self, index: int) -> np.ndarray:
        """The raw clip of item `index`: uint8 RGB [T, H, W, 3]."""
        video_id = self.keyframes[index].video_id
        indices = self.clip_indices(index)
        if self.backend == "video":
            return self._reader(video_id).read_at_times(indices / self.cfg.AVA.FPS)
        paths = self._frame_paths[video_id]
        return read_frame_files([paths[i] for i in indices])

    def __getitem__(self, index: int) -> dict[str, Any]:
        cfg = self.cfg
        keyframe = self.keyframes[index]
        frames = self.read_frames(index)
        labels = keyframe.multi_hot(cfg.MODEL.NUM_CLASSES)
        boxes_norm = keyframe.boxes
        common = {"mean": cfg.DATA.MEAN, "std": cfg.DATA.STD, "bgr": cfg.AVA.BGR}
        if self.split == "train":
            if self.augmentation_seed is not None:
                rng = np.random.default_rng([self.augmentation_seed, index])
            else:
                # Drawn from torch's generator, which the DataLoader seeds per worker.
                rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            clip, boxes, kept = train_transform(
                frames,
                boxes_norm,
                rng,
                jitter_scales=cfg.DATA.TRAIN_JITTER_SCALES,
                crop_size=cfg.DATA.TRAIN_CROP_SIZE,
                use_color_jitter=cfg.AVA.TRAIN_USE_COLOR_AUGMENTATION,
                **common,
            )
            labels, boxes_norm = labels[kept], boxes_norm[kept]
        else:
            clip, boxes = test_transform(
                frames, boxes_norm, short_side=cfg.DATA.TEST_CROP_SIZE, **common
            )
        return {
            "inputs": pack_pathways(clip, cfg.MODEL.ARCH, cfg.SLOWFAST.ALPHA),
            "boxes": boxes,
            "labels": torch.from_numpy(labels),
            "boxes_norm": torch.from_numpy(np.ascontiguousarray(boxes_norm)),
            "video_id": keyframe.video_id,
            "second": keyframe.second,
            "orig_size": tuple(frames.shape[1:3]),
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items with different box counts into the model's contract.

    Returns ``inputs`` (one [B, 3, T_p, H, W] per pathway; clips of different sizes, possible
    at test time, are zero-padded at the bottom and right, which keeps box coordinates),
    ``boxes`` float32 [K, 5] (batch index, x1, y1, x2, y2), ``labels`` float32 [K, C],
    ``boxes_norm`` float32 [K, 4], ``metadata`` K (video_id, second) and ``orig_sizes`` B (H, W).
    """
    inputs = []
    for pathway in range(len(items[0]["inputs"])):
        clips = [item["inputs"][pathway] for item in items]
        height = max(c.shape[2] for c in clips)
        width = max(c.shape[3] for c in clips)
        batch = clips[0].new_zeros(
            (len(clips), clips[0].shape[0], clips[0].shape[1], height, width)
        )
        for b, c in enumerate(clips):
            batch[b, :, :, : c.shape[2], : c.shape[3]] = c
        inputs.append(batch)
    batch_index = torch.cat(
        [torch.full((len(item["boxes"]), 1), float(b)) for b, item in enumerate(items)]
    )
    boxes = torch.cat([item["boxes"].float().reshape(-1, 4) for item in items])
    return {
        "inputs": inputs,
        "boxes": torch.cat([batch_index, boxes], dim=1),
        "labels": torch.cat([item["labels"] for item in items]),
        "boxes_norm": torch.cat([item["boxes_norm"].float().reshape(-1, 4) for item in items]),
        "metadata": [
            (item["video_id"], item["second"]) for item in items for _ in range(len(item["boxes"]))
        ],
        "orig_sizes": [item["orig_size"] for item in items],
    }


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and `random` in a worker from the seed the DataLoader gave its torch RNG."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    cfg: CfgNode, split: str, *, distributed: bool = False, shuffle: bool | None = None
) -> DataLoader:
    """A DataLoader over `AvaDataset(cfg, split)` that yields `collate` batches.

    ``shuffle`` defaults to True for "train"; the train loader drops its last incomplete batch.
    With `distributed`, a DistributedSampler (seeded with RNG_SEED) splits the items over ranks;
    call ``loader.sampler.set_epoch(epoch)`` each epoch.

    Randomness: the shuffle order comes from torch's global generator when an epoch's iterator
    starts (or from the DistributedSampler's seed and epoch), and so does one base seed from
    which every worker seeds torch, NumPy and `random`. Augmentation draws from
    ``(loader.dataset.augmentation_seed, item index)`` when that is set (the trainer sets it
    per epoch before the epoch's iterator starts), so an item gets the same crop and flip for
    any number of workers or ranks; otherwise from torch's generator. Seeding torch per epoch
    (as the trainer does) therefore makes a run reproducible and lets a resumed run replay its
    missing epochs exactly; no private generator is used, since it would restart at epoch 0's
    state after a resume.
    """
    dataset = AvaDataset(cfg, split)
    shuffle = split == "train" if shuffle is None else shuffle
    batch_size = cfg.TRAIN.BATCH_SIZE if split == "train" else cfg.TEST.BATCH_SIZE
    sampler = (
        DistributedSampler(dataset, shuffle=shuffle, seed=cfg.RNG_SEED) if distributed else None
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=cfg.DATA_LOADER.NUM_WORKERS,
        pin_memory=cfg.DATA_LOADER.PIN_MEMORY,
        drop_last=split == "train",
        collate_fn=collate,
        worker_init_fn=_seed_worker,
    )
