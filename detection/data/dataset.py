"""The AVA dataset (one item per keyframe with at least one box), its collate and loader.

Two sources of pixels give the same clips (``DATA.DECODING_BACKEND``):

- ``"video"``: the 15-minute cuts ``AVA.VIDEO_DIR/{video_id}.mp4`` (.mkv/.webm/.avi too) decoded
  with PyAV. Frame ``i`` of the 30 fps layout is the source frame ``ffmpeg -r 30`` writes as
  file ``i + 1`` (``DATA.VIDEO_FRAME_RULE``), in the colours of ffmpeg's JPEGs read by OpenCV
  (``DATA.VIDEO_COLOR``; `VideoReader.read_at_times`); the number of frames is
  ``round(duration * AVA.FPS)``. Test clips are read in keyframe order, each frame decoded,
  converted and scaled once: consecutive keyframes' clips overlap (about half of a 32x2 clip
  at one keyframe per second), so each item keeps the previous clip's frames scaled to the
  test size and reads only the others, its reader continuing forward (frames that no clip
  samples are skipped where the codec allows); training clips are random accesses (a seek to
  the key frame before the clip, then decoding forward). The decoder uses the cores of its
  process (a worker's share of them) and decodes into one reused clip buffer.
- ``"frames"``: PySlowFast's extracted frames, ``AVA.FRAME_DIR`` + the paths in the frame
  lists ``AVA.FRAME_LIST_DIR/{AVA.TRAIN_LISTS | AVA.TEST_LISTS}``.

Splits: ``"train"`` reads ``AVA.TRAIN_GT_BOX_LISTS`` + ``AVA.TRAIN_PREDICT_BOX_LISTS`` and
augments (`train_transform`); ``"test"`` reads ``AVA.TEST_PREDICT_BOX_LISTS`` (scores >=
``AVA.DETECTION_SCORE_THRESH``) and only rescales (`test_transform`). Relative paths in the
``AVA.*_DIR`` keys are under ``DATA.PATH_TO_DATA_DIR``; box lists (and the label map, ground
truth and exclusions) are under ``DATA.PATH_TO_DATA_DIR/AVA.ANNOTATION_DIR``, so
``person_box_67091280_iou90/ava_detection_val_boxes_and_labels.csv`` names a file in a folder
of the annotation dir, as in PySlowFast (``os.path.join(AVA.ANNOTATION_DIR, name)``).

Batches never pad. Training clips are all ``TRAIN_CROP_SIZE`` squares. Test clips keep their
video's aspect ratio, so a batch that mixed two videos would have to zero-pad the smaller clip,
which changes the features near its border (and, through non-local blocks, everywhere); the
test loader therefore batches only consecutive keyframes whose clips have the same size
(`SameSizeBatchSampler`), so scores do not depend on ``TEST.BATCH_SIZE`` or on the number of
processes, as in PySlowFast, whose per-GPU test batch is one clip. `collate` refuses clips of
different sizes. With loader workers, each worker gets one contiguous run of the batches (see
`SameSizeBatchSampler`'s `num_workers`), so its clips follow each other in the video and it
decodes each frame once; batches keep their content, so scores do not depend on the number of
workers either.

Test batches carry the clips' frames scaled to the test size as uint8 (``frames`` [B, T, H, W,
3], written straight into the batch's tensor by `AvaDataset.__getitems__`), with the
`InputFormat` that makes them the model's float32 inputs where the model runs
(`detection.engine.precision.InputStager`: on a GPU after the copy, on the CPU into reused
tensors). A quarter of float32's bytes is what loader workers write, share and send (447 MB
of float32 for 8 32x2 clips at short side 256), and fresh memory's first touch costs about as
much as filling it. The inputs are the same bits as normalizing each clip in the loader.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate
from yacs.config import CfgNode

from detection.config import ConfigError

from .annotations import (
    AnnotationError,
    Keyframe,
    group_keyframes,
    read_box_files,
    read_frame_lists,
)
from .sampling import clip_frame_indices, keyframe_index, pack_pathways
from .transforms import (
    InputFormat,
    prepare_normalization,
    scale_frames,
    short_side_size,
    test_boxes,
    train_transform,
)
from .video import (
    COLORS,
    FRAME_RULES,
    Color,
    FrameRule,
    VideoReader,
    find_video,
    prepare_color,
    read_frame_files,
)

SPLITS = ("train", "test")
BACKENDS = ("video", "frames")
# Open video files kept per worker process; training batches come from many videos, so a few
# suffice. Test clips come video after video, so one reader is in use (its window holds about a
# clip's frames), and the previous video's is kept only for a batch straddling the two.
_MAX_OPEN_VIDEOS = {"train": 8, "test": 2}
# A cap (not measured beyond 2 cores): each frame thread holds a frame in flight and waits on
# its reference frames, so many threads mostly add memory to the short decodes of a clip.
_MAX_DECODING_THREADS = 4
# Video readers a forked loader worker inherited from its parent, kept referenced so that the
# worker never frees them: freeing a codec context that decoded with FFmpeg's frame threads
# waits on condition variables whose threads exist only in the parent (seen: a worker hung in
# avcodec_free_context -> pthread_cond_destroy when its garbage collector freed them).
_INHERITED_READERS: list[dict[str, VideoReader]] = []


def _under(root: Path, path: str) -> Path:
    return Path(path) if os.path.isabs(path) else root / path


class AvaDataset(Dataset):
    """AVA keyframes as model inputs.

    Item ``i`` is a dict: in the training split ``inputs``, the list of pathway clips (each
    float32 [3, T_p, H, W]); in the test split ``frames``, the clip's frames scaled to the
    test size, uint8 RGB [T, H, W, 3], with ``input_format`` (the `InputFormat` that makes them
    the inputs where the model runs: `collate`'s batches keep a quarter of float32's bytes
    until then); ``boxes`` float32 [N, 4] in input pixels, ``labels`` float32
    [N, MODEL.NUM_CLASSES] multi-hot, ``boxes_norm`` float32 [N, 4] as read from the CSV,
    ``video_id``, ``second`` and ``orig_size`` (H, W) of the source frames. A training crop
    can leave N = 0.

    The clip of a keyframe at second ``s`` is centred on frame ``(s - AVA.VIDEO_START_SEC) *
    AVA.FPS`` of the 30 fps layout (`clip_indices`; PySlowFast's ``sec_to_frame``).
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
        self.input_format = InputFormat(
            tuple(cfg.DATA.MEAN),
            tuple(cfg.DATA.STD),
            cfg.AVA.BGR,
            cfg.MODEL.ARCH,
            cfg.SLOWFAST.ALPHA,
        )
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
        # (H, W) of each video's frames: known after opening a video, read from the first
        # frame file on demand for the frames backend.
        self._frame_sizes: dict[str, tuple[int, int]] = {}
        if self.backend == "video":
            self._frame_rule, self._video_color = _video_settings(cfg)
            video_dir = _under(root, cfg.AVA.VIDEO_DIR)
            self._video_paths = {v: find_video(video_dir, v) for v in video_ids}
            self._num_frames = {}
            for video_id, path in self._video_paths.items():
                with VideoReader(path, frame_rule=self._frame_rule) as reader:
                    self._num_frames[video_id] = reader.num_frames_at(cfg.AVA.FPS)
                    width, height = reader.size
                    self._frame_sizes[video_id] = (height, width)
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
        # uint8 [T, H, W, 3] that `__getitem__` decodes each clip into, reused while the clip
        # size stays (a fresh clip-sized array page-faults in on every item: 88 MB at 720p).
        self._clip_buffer: np.ndarray | None = None
        # Test split, video backend: the last clip's frames scaled to the test size (uint8
        # [H', W', 3] by layout frame index) and their video, for the next keyframe's clip,
        # which shares about half of them (`_test_frames`).
        self._scaled_store: np.ndarray | None = None  # uint8 [DATA.NUM_FRAMES, H', W', 3]
        self._scaled: dict[int, int] = {}  # layout frame index -> its slot in the store
        self._scaled_video: str | None = None
        # When set (the trainer sets it each epoch, before the epoch's workers start), item i's
        # augmentation draws from (augmentation_seed, i): the same crops and flips whatever the
        # number of workers or ranks. None: draw from torch's generator as described below.
        self.augmentation_seed: int | None = None

    def __len__(self) -> int:
        return len(self.keyframes)

    def __getstate__(self) -> dict[str, Any]:
        # Open files stay with the process that opened them.
        return {
            **self.__dict__,
            "_readers": {},
            "_clip_buffer": None,
            "_scaled_store": None,
            "_scaled": {},
            "_scaled_video": None,
        }

    def _reader(self, video_id: str) -> VideoReader:
        if self._readers_pid != os.getpid():  # a forked worker must not share the parent's files
            # ... nor free them: see `_INHERITED_READERS` (and the fork hook in `video`).
            _INHERITED_READERS.append(self._readers)
            self._readers, self._readers_pid = {}, os.getpid()
        reader = self._readers.pop(video_id, None)
        if reader is None:
            threads = _decoding_threads()
            reader = VideoReader(
                self._video_paths[video_id],
                frame_rule=self._frame_rule,
                color=self._video_color,
                keep_frames=self.split == "test",
                threads=threads,
                # a process with cores to itself (no workers) converts beside its decoding
                convert_in_thread=threads > 1,
            )
            if len(self._readers) >= _MAX_OPEN_VIDEOS[self.split]:
                self._readers.pop(next(iter(self._readers))).close()
        self._readers[video_id] = reader  # most recently used last
        return reader

    def frame_size(self, video_id: str) -> tuple[int, int]:
        """(H, W) of the frames of `video_id` (displayed orientation)."""
        if video_id not in self._frame_sizes:
            first = read_frame_files([self._frame_paths[video_id][0]])
            self._frame_sizes[video_id] = (first.shape[1], first.shape[2])
        return self._frame_sizes[video_id]

    def input_size(self, index: int) -> tuple[int, int]:
        """(H', W') of item `index`'s test clip: its video's frames with the short side scaled
        to DATA.TEST_CROP_SIZE (`short_side_size`). Only the test split has one size per item."""
        if self.split != "test":
            raise ValueError("only test clips have a size per item (training clips are crops)")
        height, width = self.frame_size(self.keyframes[index].video_id)
        return short_side_size(height, width, self.cfg.DATA.TEST_CROP_SIZE)

    def clip_indices(self, index: int) -> np.ndarray:
        """Frame indices (30 fps layout) of item `index`'s clip: int64 [DATA.NUM_FRAMES],
        centred on the keyframe's frame (see the class docstring)."""
        keyframe = self.keyframes[index]
        ava = self.cfg.AVA
        center = keyframe_index(keyframe.second, fps=ava.FPS, start_second=ava.VIDEO_START_SEC)
        data = self.cfg.DATA
        return clip_frame_indices(
            center, data.NUM_FRAMES, data.SAMPLING_RATE, self._num_frames[keyframe.video_id]
        )

    def read_frames(self, index: int, out: np.ndarray | None = None) -> np.ndarray:
        """The raw clip of item `index`: uint8 RGB [T, H, W, 3]; written into `out` (of that
        shape) and returned when given (video backend; the frames backend ignores it)."""
        video_id = self.keyframes[index].video_id
        indices = self.clip_indices(index)
        if self.backend == "video":
            return self._reader(video_id).read_at_times(
                indices / self.cfg.AVA.FPS, out=out, next_times_s=self._next_clip_times(index)
            )
        paths = self._frame_paths[video_id]
        return read_frame_files([paths[i] for i in indices])

    def _next_clip_times(self, index: int) -> np.ndarray | None:
        """Test split: the times (s) of the next item's clip when it is in the same video (test
        clips are read in keyframe order, so the reader keeps those frames decoded for it);
        None otherwise."""
        following = index + 1 < len(self) and (
            self.keyframes[index + 1].video_id == self.keyframes[index].video_id
        )
        if self.split != "test" or not following:
            return None
        return self.clip_indices(index + 1) / self.cfg.AVA.FPS

    def _reusable_clip(self, index: int, count: int | None = None) -> np.ndarray | None:
        """`_clip_buffer` shaped for `count` raw frames (default: item `index`'s clip) of item
        `index`'s video (video backend; None otherwise). Only `__getitem__` uses it: its
        transforms copy the frames out before it returns."""
        if self.backend != "video":
            return None
        height, width = self.frame_size(self.keyframes[index].video_id)
        count = len(self.clip_indices(index)) if count is None else count
        shape = (count, height, width, 3)
        if self._clip_buffer is None or self._clip_buffer.shape != shape:
            self._clip_buffer = np.empty(shape, np.uint8)
        return self._clip_buffer

    def _test_frames(self, index: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Item `index`'s test frames, `scale_frames(read_frames(index), DATA.TEST_CROP_SIZE)`
        (uint8 [T, H', W', 3], written into `out` when given). Video backend: the frames the
        previous item's clip also had are taken from it already scaled, only the others are
        read and scaled (test items come in keyframe order, so consecutive clips overlap: about
        half of each 32x2 clip at 1 keyframe per second). Scaling works frame by frame, so the
        values are the same. The last clip's scaled frames live in one reused array, a frame
        keeping its slot while consecutive clips share it; new frames are resized straight into
        free slots (memory written for the first time costs about as much again as the writing).
        """
        cfg, video_id = self.cfg, self.keyframes[index].video_id
        if out is None:
            height, width = self.input_size(index)
            out = torch.empty((cfg.DATA.NUM_FRAMES, height, width, 3), dtype=torch.uint8)
        if self.backend != "video":
            scale_frames(self.read_frames(index), cfg.DATA.TEST_CROP_SIZE, out=out.numpy())
            return out
        indices = self.clip_indices(index)
        height, width = out.shape[1:3]
        store = self._scaled_store
        if store is None or store.shape != (len(indices), height, width, 3):
            store = self._scaled_store = np.empty((len(indices), height, width, 3), np.uint8)
            self._scaled_video = None
        kept = self._scaled if self._scaled_video == video_id else {}
        unique = np.unique(indices)
        slots = {int(k): kept[int(k)] for k in unique if int(k) in kept}
        free = iter(sorted(set(range(len(store))) - set(slots.values())))
        new = unique[~np.isin(unique, list(slots))]
        if new.size:
            raw = self._reader(video_id).read_at_times(
                new / cfg.AVA.FPS,
                out=self._reusable_clip(index, new.size),
                next_times_s=self._next_clip_times(index),
            )
            for frame, k in zip(raw, new, strict=True):
                slots[int(k)] = slot = next(free)
                scale_frames(frame[None], cfg.DATA.TEST_CROP_SIZE, out=store[slot : slot + 1])
        self._scaled, self._scaled_video = slots, video_id
        np.take(store, [slots[int(k)] for k in indices], axis=0, out=out.numpy(), mode="clip")
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._item(index)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Items `indices` (a DataLoader's batch), equal to ``[self[i] for i in indices]``.

        Test frames of one size are written straight into one uint8 tensor [B, T, H', W', 3]
        (in shared memory in a loader worker, as `default_collate` would put it), item ``b``'s
        frames being its ``b``-th slice, which `collate` takes whole: the clips are not copied
        into a batch afterwards (fresh memory's first touch costs about as much as filling it).
        """
        sizes = {self.input_size(i) for i in indices} if self.split == "test" else set()
        if len(sizes) != 1:
            return [self[i] for i in indices]
        height, width = sizes.pop()
        frames = _batch_tensor(
            (len(indices), self.cfg.DATA.NUM_FRAMES, height, width, 3), torch.uint8
        )
        return [self._item(i, frames_out=frames[b]) for b, i in enumerate(indices)]

    def _item(self, index: int, frames_out: torch.Tensor | None = None) -> dict[str, Any]:
        """Item `index`; test frames are written into `frames_out` when given."""
        cfg = self.cfg
        keyframe = self.keyframes[index]
        labels = keyframe.multi_hot(cfg.MODEL.NUM_CLASSES)
        boxes_norm = keyframe.boxes
        item: dict[str, Any]
        if self.split == "train":
            frames = self.read_frames(index, out=self._reusable_clip(index))
            orig_size = (frames.shape[1], frames.shape[2])
            if self.augmentation_seed is not None:
                rng = np.random.default_rng([self.augmentation_seed, index])
            else:
                # Drawn from torch's generator, which the DataLoader seeds per worker.
                rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            fmt = self.input_format
            clip, boxes, kept = train_transform(
                frames,
                boxes_norm,
                rng,
                jitter_scales=cfg.DATA.TRAIN_JITTER_SCALES,
                crop_size=cfg.DATA.TRAIN_CROP_SIZE,
                use_color_augmentation=cfg.AVA.TRAIN_USE_COLOR_AUGMENTATION,
                pca_jitter_only=cfg.AVA.TRAIN_PCA_JITTER_ONLY,
                mean=fmt.mean,
                std=fmt.std,
                bgr=fmt.bgr,
            )
            labels, boxes_norm = labels[kept], boxes_norm[kept]
            item = {"inputs": pack_pathways(clip, fmt.arch, fmt.alpha)}
        else:
            orig_size = self.frame_size(keyframe.video_id)
            boxes = test_boxes(boxes_norm, *orig_size, short_side=cfg.DATA.TEST_CROP_SIZE)
            item = {
                "frames": self._test_frames(index, out=frames_out),
                "input_format": self.input_format,
            }
        return {
            **item,
            "boxes": boxes,
            "labels": torch.from_numpy(labels),
            "boxes_norm": torch.from_numpy(boxes_norm.astype(np.float32)),
            "video_id": keyframe.video_id,
            "second": keyframe.second,
            "orig_size": orig_size,
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items with different box counts into the model's contract.

    Returns ``inputs`` (training items: one [B, 3, T_p, H, W] per pathway) or ``frames``
    uint8 [B, T, H, W, 3] and ``input_format`` (test items; `InputFormat.inputs` makes the
    inputs of them where the model runs), ``boxes`` float32 [K, 5]
    (batch index, x1, y1, x2, y2), ``labels`` float32 [K, C], ``boxes_norm`` float32 [K, 4],
    ``metadata`` K (video_id, second) and ``orig_sizes`` B (H, W). The clips of a batch must
    have one size (see the module docstring: nothing is padded).
    """
    sizes = [_clip_size(item) for item in items]
    if len(set(sizes)) > 1:
        raise ValueError(
            f"clips of different sizes {sorted(set(sizes))} in one batch "
            f"({[(item['video_id'], item['second']) for item in items]}); batches are never "
            "padded, batch test clips with SameSizeBatchSampler"
        )
    pixels: dict[str, Any]
    if "frames" in items[0]:
        pixels = {
            "frames": _stacked([item["frames"] for item in items]),
            "input_format": items[0]["input_format"],
        }
    else:
        pixels = {
            "inputs": [
                _stacked([item["inputs"][pathway] for item in items])
                for pathway in range(len(items[0]["inputs"]))
            ]
        }
    batch_index = torch.cat(
        [torch.full((len(item["boxes"]), 1), float(b)) for b, item in enumerate(items)]
    )
    boxes = torch.cat([item["boxes"].float().reshape(-1, 4) for item in items])
    return {
        **pixels,
        "boxes": torch.cat([batch_index, boxes], dim=1),
        "labels": torch.cat([item["labels"] for item in items]),
        "boxes_norm": torch.cat([item["boxes_norm"].float().reshape(-1, 4) for item in items]),
        "metadata": [
            (item["video_id"], item["second"]) for item in items for _ in range(len(item["boxes"]))
        ],
        "orig_sizes": [item["orig_size"] for item in items],
    }


def _clip_size(item: dict[str, Any]) -> tuple[int, int]:
    """(H, W) of an item's clip: its ``frames`` [T, H, W, 3] or its ``inputs`` [.., H, W]."""
    if "frames" in item:
        return tuple(item["frames"].shape[1:3])
    return tuple(item["inputs"][0].shape[-2:])


def _stacked(clips: list[torch.Tensor]) -> torch.Tensor:
    """The clips [..] stacked into [B, ..]: the tensor they are the consecutive slices of when
    `AvaDataset.__getitems__` wrote them into one, else a new one (`default_collate`, which in a
    loader worker stacks straight into shared memory; a plain torch.stack would be copied there
    again when the batch is sent to the main process)."""
    base = clips[0]._base
    if (
        base is not None
        and base.is_contiguous()
        and base.shape == (len(clips), *clips[0].shape)
        and all(
            c._base is base and c.data_ptr() == base[b].data_ptr() and c.is_contiguous()
            for b, c in enumerate(clips)
        )
    ):
        return base
    return default_collate(clips)


def _batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized tensor of `shape`, in shared memory in a loader worker (whose batches
    are sent to the main process) as `default_collate` allocates there."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel * dtype.itemsize)
    strides = torch.empty(shape, dtype=dtype, device="meta").stride()
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape, strides)


class SameSizeBatchSampler(Sampler[list[int]]):
    """Batches of consecutive items of one size, for testing.

    The items ``0 .. len(sizes) - 1`` are split into `num_shards` contiguous shards of sizes
    that differ by at most one, the larger ones first (shard `shard` is this process's); a
    shard is cut into batches of at most `batch_size` consecutive items, a new batch starting
    wherever the size changes. Every item is thus in exactly one batch of one shard, and the
    shards in rank order are the items in order, so predictions gathered in rank order come
    out in dataset order (unlike a DistributedSampler, which deals items out round-robin and
    pads the last ranks with repeats). A shard that would be empty (more processes than items)
    gets the last item again, so that every process has a batch; these copies come after the
    original in rank order, and the tester drops their predictions as duplicates.

    With `num_workers` > 1 (the DataLoader's), the shard's batches are cut into `num_workers`
    contiguous runs of as many batches as can be (differing by at most one, the longer first)
    and yielded interleaved, run 0's first, run 1's first, ..., run 0's second, ...: a
    DataLoader hands batch ``k`` of its sampler to worker ``k % num_workers``, so worker ``w``
    reads run ``w``, consecutive keyframes of a video, and decodes each of their frames once.
    The batches are the same as with no workers, only their order differs (the tester sorts its
    predictions).

    sizes: one hashable per item, e.g. its clip's (H', W').
    """

    def __init__(
        self,
        sizes: Sequence[Any],
        batch_size: int,
        *,
        shard: int = 0,
        num_shards: int = 1,
        num_workers: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= shard < num_shards:
            raise ValueError(f"need 0 <= shard < num_shards, got {shard} of {num_shards}")
        total = len(sizes)
        per_shard, larger = divmod(total, num_shards)
        start = shard * per_shard + min(shard, larger)
        stop = start + per_shard + (shard < larger)
        indices = list(range(start, stop)) if stop > start else [total - 1] if total else []
        self.batches: list[list[int]] = []
        for index in indices:
            last = self.batches[-1] if self.batches else None
            if last is None or len(last) == batch_size or sizes[last[-1]] != sizes[index]:
                self.batches.append([index])
            else:
                last.append(index)
        if num_workers > 1:
            per_run, longer = divmod(len(self.batches), num_workers)
            bounds = [w * per_run + min(w, longer) for w in range(num_workers + 1)]
            runs = [self.batches[a:b] for a, b in itertools.pairwise(bounds)]
            self.batches = [run[k] for k in range(per_run + 1) for run in runs if k < len(run)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(batch) for batch in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


def _decoding_threads() -> int:
    """Decoder threads for a video reader opened in this process: the cores this process may
    use, shared among the DataLoader's worker processes when it is one of them, at most
    `_MAX_DECODING_THREADS`."""
    info = torch.utils.data.get_worker_info()
    workers = info.num_workers if info is not None else 1
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_DECODING_THREADS, cores // workers))


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and `random` in a worker from the seed the DataLoader gave its torch RNG."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    cfg: CfgNode, split: str, *, distributed: bool = False, shuffle: bool | None = None
) -> DataLoader:
    """A DataLoader over `AvaDataset(cfg, split)` that yields `collate` batches.

    Train: ``shuffle`` defaults to True; the last incomplete batch is dropped. With
    `distributed`, a DistributedSampler (seeded with RNG_SEED) splits the items over ranks;
    call ``loader.sampler.set_epoch(epoch)`` each epoch.

    Test: never shuffled; a `SameSizeBatchSampler` makes batches of at most TEST.BATCH_SIZE
    consecutive clips of one size, over the whole split or, with `distributed`, over this
    rank's contiguous share of it (``loader.batch_sampler``), and gives each worker a
    contiguous run of them.

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
    if cfg.DATA_LOADER.NUM_WORKERS > 0:  # compiled kernels: before the workers fork, not in each
        prepare_normalization()
        if dataset.backend == "video":
            prepare_color(dataset._video_color)
    common: dict[str, Any] = {
        "num_workers": cfg.DATA_LOADER.NUM_WORKERS,
        "pin_memory": cfg.DATA_LOADER.PIN_MEMORY,
        "collate_fn": collate,
        "worker_init_fn": _seed_worker,
    }
    if split == "test":
        if shuffle:
            raise ValueError("the test split is never shuffled (shuffle=True was asked for)")
        batch_sampler = SameSizeBatchSampler(
            [dataset.input_size(i) for i in range(len(dataset))],
            cfg.TEST.BATCH_SIZE,
            shard=dist.get_rank() if distributed else 0,
            num_shards=dist.get_world_size() if distributed else 1,
            num_workers=cfg.DATA_LOADER.NUM_WORKERS,
        )
        return DataLoader(dataset, batch_sampler=batch_sampler, **common)
    shuffle = True if shuffle is None else shuffle
    sampler: DistributedSampler | None = (
        DistributedSampler(dataset, shuffle=shuffle, seed=cfg.RNG_SEED) if distributed else None
    )
    return DataLoader(
        dataset,
        batch_size=cfg.TRAIN.BATCH_SIZE,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        drop_last=True,
        **common,
    )


def _video_settings(cfg: CfgNode) -> tuple[FrameRule, Color]:
    """DATA.VIDEO_FRAME_RULE and DATA.VIDEO_COLOR, checked (errors name the key)."""
    frame_rule, color = cfg.DATA.VIDEO_FRAME_RULE, cfg.DATA.VIDEO_COLOR
    if frame_rule not in FRAME_RULES:
        raise ConfigError(f"DATA.VIDEO_FRAME_RULE must be one of {FRAME_RULES}, got {frame_rule!r}")
    if color not in COLORS:
        raise ConfigError(f"DATA.VIDEO_COLOR must be one of {COLORS}, got {color!r}")
    return frame_rule, color
