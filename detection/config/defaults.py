"""Every configuration key, with its default, documented once.

Model keys use PySlowFast's names, and their defaults are PySlowFast's, so that its AVA configs
and checkpoints read the same here. The model classes' constructor defaults equal these
(`SlowFast()` is `build_model(get_cfg())`, asserted by tests/test_models.py); nothing else in
the package chooses a value for a key that lives in this file.
"""

from yacs.config import CfgNode

_C = CfgNode()

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
_C.MODEL = CfgNode()
# "slowfast" (two pathways) or "slow" (Slow pathway only).
_C.MODEL.ARCH = "slowfast"
# Number of action classes scored by the head (80 for AVA v2.x; index i is action id i + 1).
_C.MODEL.NUM_CLASSES = 80
# Dropout before the linear projection of the RoI head.
_C.MODEL.DROPOUT_RATE = 0.5
# Output activation in eval mode: "sigmoid" (multi-label, AVA), "softmax" or "none".
_C.MODEL.HEAD_ACT = "sigmoid"
# Std of the normal init of the projection weights.
_C.MODEL.FC_INIT_STD = 0.01
# Training loss on the head's logits (detection/engine/losses.py), averaged over the global
# batch: "bce" (sigmoid binary cross-entropy, multi-label, AVA's), "focal" (sigmoid focal loss,
# multi-label; FOCAL_ALPHA, FOCAL_GAMMA) or "softmax" (cross-entropy over mutually exclusive
# classes: every training box must have exactly one action). HEAD_ACT must agree: "softmax" with
# "softmax" (or "none"), "bce" and "focal" with "sigmoid" (or "none"); `load_config` checks it.
_C.MODEL.LOSS_FUNC = "bce"
# Focal loss weight of the positive entries (negatives get 1 - alpha; -1 = no weighting) and
# focusing exponent (0 with alpha -1 = "bce"); torchvision's and the RetinaNet paper's defaults.
_C.MODEL.FOCAL_ALPHA = 0.25
_C.MODEL.FOCAL_GAMMA = 2.0
# Path to action-model weights used by test and demo
# ("" = untrained / use TEST.CHECKPOINT_FILE_PATH).
_C.MODEL.WEIGHTS = ""
# What runs the action model in tools/test_net.py, the demo and the streaming engine:
# "torch" (PyTorch; on CPU its optimize_for_inference copy), or the ONNX export of the weights
# (detection/export) on "onnxruntime" or "openvino", or the int8 quantization of that export
# on "onnxruntime_int8" or "openvino_int8" (calibrated on 8 clips of the training split of
# DATA.PATH_TO_DATA_DIR; scores move by the quantization error). The exported runtimes run on
# CPU and need the export extra; the file is exported on first use and cached (MODEL.EXPORT_DIR).
# torch stays the default: at 2 threads none of the fp32 runtimes won clearly
# (benchmarks/model_forward.py).
_C.MODEL.RUNTIME = "torch"
# Folder of the export cache ("" = beside the weights file): one file per config, weights file
# and clip size, named by a hash of the three, reused while they are unchanged.
_C.MODEL.EXPORT_DIR = ""
# An exported file to run as is instead of exporting the weights (.onnx, or OpenVINO .xml; it
# fixes the clip size it was exported for): "" = export into the cache.
_C.MODEL.EXPORT_FILE = ""

# ---------------------------------------------------------------------------------------------
# ResNet-3D backbone
# ---------------------------------------------------------------------------------------------
_C.RESNET = CfgNode()
# 50 or 101.
_C.RESNET.DEPTH = 50
# Groups of the 3x3 convolution (1 = ResNet, >1 = ResNeXt).
_C.RESNET.NUM_GROUPS = 1
# Width of each group in res2; the bottleneck width is NUM_GROUPS * WIDTH_PER_GROUP.
_C.RESNET.WIDTH_PER_GROUP = 64
# Apply the spatial stride in the 1x1 (True) or the 3x3 (False) convolution of a bottleneck.
_C.RESNET.STRIDE_1X1 = False
# Initialize the last BN of each residual branch (and of each non-local block) to zero, so that
# blocks start as identities. PySlowFast's default is False; its AVA configs set True.
_C.RESNET.ZERO_INIT_FINAL_BN = False
# Per stage (conv1, res2..res5) and pathway: temporal kernel size (odd). Empty = the paper's
# (Slow pathway and Slow-only: 1 in conv1-res3, 3 in res4-res5, i.e. [[1, 5], [1, 3], [1, 3],
# [3, 3], [3, 3]] for SlowFast and [[1], [1], [1], [3], [3]] for Slow-only). Published
# checkpoints need the default; the synthetic configs set 3 everywhere in the Slow pathway
# (tiny networks trained from scratch in minutes learn slow motion only with early temporal
# kernels: benchmarks/slowfast_vs_slow.py).
_C.RESNET.TEMPORAL_KERNEL_BASIS = []
# Per stage (res2..res5) and pathway: the first N blocks use the stage's temporal kernel
# (TEMPORAL_KERNEL_BASIS), the rest use 1.
# E.g. R101's 23-block res4 with 6: six blocks of kernel 3, then seventeen of kernel 1.
_C.RESNET.NUM_BLOCK_TEMP_KERNEL = [[3, 3], [4, 4], [6, 6], [3, 3]]
# Per stage and pathway: spatial stride of the stage's first block.
_C.RESNET.SPATIAL_STRIDES = [[1, 1], [2, 2], [2, 2], [1, 1]]
# Per stage and pathway: spatial dilation of the 3x3 convolutions.
_C.RESNET.SPATIAL_DILATIONS = [[1, 1], [1, 1], [1, 1], [2, 2]]

# ---------------------------------------------------------------------------------------------
# Non-local blocks
# ---------------------------------------------------------------------------------------------
_C.NONLOCAL = CfgNode()
# Per stage and pathway: indices of the blocks after which a non-local block is inserted.
_C.NONLOCAL.LOCATION = [[[], []], [[], []], [[], []], [[], []]]
# Per stage and pathway: a non-local block attends within this many consecutive time chunks
# separately (time is folded into the batch); 1 = over the whole clip.
_C.NONLOCAL.GROUP = [[1, 1], [1, 1], [1, 1], [1, 1]]
# "dot_product" or "softmax".
_C.NONLOCAL.INSTANTIATION = "dot_product"
# Per stage and pathway: max-pool kernel (T, H, W) applied to phi and g.
_C.NONLOCAL.POOL = [
    [[1, 2, 2], [1, 2, 2]],
    [[1, 2, 2], [1, 2, 2]],
    [[1, 2, 2], [1, 2, 2]],
    [[1, 2, 2], [1, 2, 2]],
]

# ---------------------------------------------------------------------------------------------
# SlowFast
# ---------------------------------------------------------------------------------------------
_C.SLOWFAST = CfgNode()
# Channel ratio Slow / Fast (beta = 1 / BETA_INV).
_C.SLOWFAST.BETA_INV = 8
# Frame-rate ratio Fast / Slow (PySlowFast's default; its AVA configs set 4).
_C.SLOWFAST.ALPHA = 8
# Output channels of a lateral connection = FUSION_CONV_CHANNEL_RATIO * Fast channels.
_C.SLOWFAST.FUSION_CONV_CHANNEL_RATIO = 2
# Temporal kernel size of the lateral (time-strided) convolution (the AVA R50 config sets 7).
_C.SLOWFAST.FUSION_KERNEL_SZ = 5

# ---------------------------------------------------------------------------------------------
# Batch norm
# ---------------------------------------------------------------------------------------------
_C.BN = CfgNode()
# Epsilon and momentum of every BatchNorm3d in the backbone.
_C.BN.EPSILON = 1e-5
_C.BN.MOMENTUM = 0.1
# Keep BN statistics and affine parameters frozen during training.
_C.BN.FREEZE = False
# Weight decay applied to BN parameters.
_C.BN.WEIGHT_DECAY = 0.0

# ---------------------------------------------------------------------------------------------
# RoI head (detection)
# ---------------------------------------------------------------------------------------------
_C.DETECTION = CfgNode()
# Use the pixel-shift-corrected RoIAlign (torchvision's aligned=True), PySlowFast's default. Its
# published AVA models were trained with False, which configs/AVA/*.yaml set.
_C.DETECTION.ALIGNED = True
# Total spatial stride of the backbone's output features (the RoIAlign scale is its inverse).
_C.DETECTION.SPATIAL_SCALE_FACTOR = 16
# Output size of RoIAlign (square).
_C.DETECTION.ROI_XFORM_RESOLUTION = 7

# ---------------------------------------------------------------------------------------------
# Clip sampling and input normalization
# ---------------------------------------------------------------------------------------------
_C.DATA = CfgNode()
# Root of the dataset (AVA layout, see data/ava/README.md).
_C.DATA.PATH_TO_DATA_DIR = ""
# Frames of the clip: the Fast pathway's for "slowfast" (Slow gets NUM_FRAMES // ALPHA), the
# only pathway's for "slow".
_C.DATA.NUM_FRAMES = 32
# Stride between sampled frames, in frames of the 30 fps source.
_C.DATA.SAMPLING_RATE = 2
# Per-channel mean and std applied after scaling pixels to [0, 1], indexed in BGR order
# (PySlowFast's AVA loader normalizes before its BGR -> RGB switch).
_C.DATA.MEAN = [0.45, 0.45, 0.45]
_C.DATA.STD = [0.225, 0.225, 0.225]
# Channels of each pathway's input.
_C.DATA.INPUT_CHANNEL_NUM = [3, 3]
# Training short-side jitter range and crop size.
_C.DATA.TRAIN_JITTER_SCALES = [256, 320]
_C.DATA.TRAIN_CROP_SIZE = 224
# Test short side (no crop).
_C.DATA.TEST_CROP_SIZE = 256
# Read clips from video files ("video", PyAV) or from extracted frames ("frames").
_C.DATA.DECODING_BACKEND = "video"
# How video pixels become RGB (video backend): "jpeg_bt601" = the colours OpenCV reads from
# ffmpeg's JPEGs (BT.601 whatever the stream's tag: what PySlowFast's weights saw), "stream" =
# the stream's own colour tags (BT.709 for HD), for models trained that way.
_C.DATA.VIDEO_COLOR = "jpeg_bt601"
# Which video frame is layout frame i (video backend): "ffmpeg" = the frame `ffmpeg -r AVA.FPS`
# writes, "nearest" = the decoded frame nearest i / AVA.FPS.
_C.DATA.VIDEO_FRAME_RULE = "ffmpeg"

# ---------------------------------------------------------------------------------------------
# AVA annotations
# ---------------------------------------------------------------------------------------------
_C.AVA = CfgNode()
# Folders under DATA.PATH_TO_DATA_DIR (or absolute paths).
_C.AVA.VIDEO_DIR = "videos"
_C.AVA.FRAME_DIR = "frames"
_C.AVA.FRAME_LIST_DIR = "frame_lists"
_C.AVA.ANNOTATION_DIR = "annotations"
# Frame lists (PySlowFast layout) for the frame backend.
_C.AVA.TRAIN_LISTS = ["train.csv"]
_C.AVA.TEST_LISTS = ["val.csv"]
# Ground-truth and predicted person-box CSVs (under ANNOTATION_DIR).
_C.AVA.TRAIN_GT_BOX_LISTS = ["ava_train_v2.2.csv"]
_C.AVA.TRAIN_PREDICT_BOX_LISTS = []
_C.AVA.TEST_PREDICT_BOX_LISTS = ["ava_val_predicted_boxes.csv"]
# Predicted person boxes below this score are dropped.
_C.AVA.DETECTION_SCORE_THRESH = 0.9
# Feed BGR instead of RGB (Caffe2-trained checkpoints).
_C.AVA.BGR = False
# Colour augmentation during training: PCA lighting, plus colour jitter unless
# TRAIN_PCA_JITTER_ONLY.
_C.AVA.TRAIN_USE_COLOR_AUGMENTATION = False
# PySlowFast: with colour augmentation on, PCA lighting only (False adds brightness, contrast
# and saturation jitter).
_C.AVA.TRAIN_PCA_JITTER_ONLY = True
# Label map, excluded timestamps and evaluation ground truth (under ANNOTATION_DIR).
_C.AVA.LABEL_MAP_FILE = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
_C.AVA.EXCLUSION_FILE = "ava_val_excluded_timestamps_v2.2.csv"
_C.AVA.GROUNDTRUTH_FILE = "ava_val_v2.2.csv"
# Frame rate of the AVA 15-minute cuts and the first/last valid keyframe second.
_C.AVA.FPS = 30
_C.AVA.VALID_FRAMES_START_SEC = 902
_C.AVA.VALID_FRAMES_END_SEC = 1798
# Second that is frame 0 of the 15-minute cut (AVA cuts start at 900 s).
_C.AVA.VIDEO_START_SEC = 900

# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
_C.TRAIN = CfgNode()
# Clips per process per step.
_C.TRAIN.BATCH_SIZE = 16
# Evaluate every this many epochs (0 = only at the end).
_C.TRAIN.EVAL_PERIOD = 1
# Save a checkpoint every this many epochs.
_C.TRAIN.CHECKPOINT_PERIOD = 1
# Resume from the newest checkpoint in OUTPUT_DIR/checkpoints if there is one.
_C.TRAIN.AUTO_RESUME = True
# Initial weights for fine-tuning (any format detection.checkpoint reads), used when OUTPUT_DIR
# has no checkpoint to resume from. Tensors that do not fit the model keep their random
# initialization and are logged; a head of another size is re-initialized
# ("head.projection: checkpoint 80 classes, model 5: re-initialized").
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
# Head rows to keep from CHECKPOINT_FILE_PATH: [[new_id, checkpoint_id], ...] copies the
# checkpoint's weights and bias of action checkpoint_id into the head's row of action new_id
# (ids 1-based: row i is action i + 1), e.g. [[1, 12], [2, 11], [3, 80]] starts classes 1-3
# of a 3-class model from AVA's "stand", "sit" and "watch (a person)". Head rows not named are
# re-initialized. [] = none.
_C.TRAIN.CHECKPOINT_CLASS_MAP = []
# Mixed precision on GPU: "none", "bf16" or "fp16".
_C.TRAIN.MIXED_PRECISION = "none"

# ---------------------------------------------------------------------------------------------
# Testing
# ---------------------------------------------------------------------------------------------
_C.TEST = CfgNode()
# Evaluate the test split at the end of training (tools/train_net.py); TRAIN.EVAL_PERIOD adds
# periodic evaluations.
_C.TEST.ENABLE = True
_C.TEST.BATCH_SIZE = 8
# Weights to test (any format detection.checkpoint reads); "" = last training checkpoint.
_C.TEST.CHECKPOINT_FILE_PATH = ""

# ---------------------------------------------------------------------------------------------
# Optimizer and schedule
# ---------------------------------------------------------------------------------------------
_C.SOLVER = CfgNode()
_C.SOLVER.OPTIMIZING_METHOD = "sgd"
_C.SOLVER.BASE_LR = 0.1
# "cosine" or "steps_with_relative_lrs".
_C.SOLVER.LR_POLICY = "cosine"
_C.SOLVER.COSINE_END_LR = 0.0
# Start the cosine at the end of warm-up (True) or at epoch 0 (False, PySlowFast's default).
_C.SOLVER.COSINE_AFTER_WARMUP = False
# Epochs at which the step policy switches to the next entry of LRS (relative to BASE_LR).
_C.SOLVER.STEPS = []
_C.SOLVER.LRS = []
_C.SOLVER.MAX_EPOCH = 20
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = True
_C.SOLVER.WEIGHT_DECAY = 1e-4
# Linear warm-up from WARMUP_START_LR over WARMUP_EPOCHS (fractional epochs allowed).
_C.SOLVER.WARMUP_EPOCHS = 0.0
_C.SOLVER.WARMUP_START_LR = 0.01
# Clip gradients to this L2 norm (0 = off).
_C.SOLVER.CLIP_GRAD_L2NORM = 0.0

# ---------------------------------------------------------------------------------------------
# Data loading
# ---------------------------------------------------------------------------------------------
_C.DATA_LOADER = CfgNode()
_C.DATA_LOADER.NUM_WORKERS = 2
_C.DATA_LOADER.PIN_MEMORY = False

# ---------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------
_C.DEMO = CfgNode()
# Person detector backend: "hog", "torchvision", "detectron2" or "csv".
_C.DEMO.DETECTOR = "hog"
# Detectron2 model-zoo config and a local weights file.
_C.DEMO.DETECTRON2_CFG = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
_C.DEMO.DETECTRON2_WEIGHTS = ""
# torchvision Faster R-CNN weights file (fasterrcnn_resnet50_fpn or _v2).
_C.DEMO.TORCHVISION_WEIGHTS = ""
# Precomputed AVA-format person boxes for the "csv" detector.
_C.DEMO.PREDICTED_BOXES_CSV = ""
# Person score threshold.
_C.DEMO.PERSON_SCORE_THRESH = 0.8
# Action score threshold and number of labels drawn per person.
_C.DEMO.ACTION_SCORE_THRESH = 0.3
_C.DEMO.TOP_K = 3
# Keyframes per second of video.
_C.DEMO.KEYFRAMES_PER_SEC = 1.0
# Label map naming the model's classes
# ("" = AVA v2.2's 80 classes, shipped in detection/ava/labelmaps/).
_C.DEMO.LABEL_FILE_PATH = ""

# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
# Where checkpoints, logs, detections and metrics are written.
_C.OUTPUT_DIR = "./output"
# Seed of every random generator (Python, NumPy, torch).
_C.RNG_SEED = 0
# Iterations between log lines.
_C.LOG_PERIOD = 10
# Device for single-process runs: "auto" (CUDA if present), "cpu" or "cuda".
_C.DEVICE = "auto"
