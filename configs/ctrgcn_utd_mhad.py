# UTD-MHAD, cross-subject (subjects 1,3,5,7 train; 2,4,6,8 test), joint
# stream: our real development data. Prepare it with
#   python tools/data/utd_mhad_to_pkl.py --mat-dir ../shared/data/utd_mhad/skeleton \
#       --out data/skeleton/utd_mhad_3d.pkl
# mmaction2's GenSkeFeat has no UTD-MHAD bone pairs, so only the joint and
# joint-motion streams apply here.
_base_ = [
    './_base_/ctrgcn_runtime.py', './_base_/models/ctrgcn_utd_mhad.py'
]
dataset_type = 'PoseDataset'
ann_file = 'data/skeleton/utd_mhad_3d.pkl'
# Spine alignment with UTD-MHAD's joint indices (hip centre 3 -> spine 2;
# right shoulder 8 -> left shoulder 4).
normalize = dict(type='PreNormalize3D', zaxis=[3, 2], xaxis=[8, 4])
train_pipeline = [
    normalize,
    dict(type='UniformSampleFrames', clip_len=64),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
    dict(type='PackActionInputs')
]
val_pipeline = [
    normalize,
    dict(type='UniformSampleFrames', clip_len=64, num_clips=1,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
    dict(type='PackActionInputs')
]
test_pipeline = [
    normalize,
    dict(type='UniformSampleFrames', clip_len=64, num_clips=10,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='RepeatDataset',
        times=5,
        dataset=dict(
            type=dataset_type,
            ann_file=ann_file,
            pipeline=train_pipeline,
            split='xsub_train')))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=val_pipeline,
        split='xsub_val',
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=test_pipeline,
        split='xsub_val',
        test_mode=True))
# 431 training clips: a shorter schedule (x5 repeats per epoch).
max_epochs = 30
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True),
    # No end: the decay spans train_cfg.max_epochs, or each stage's epochs
    # under TwoStageLoop, so a budget override sets the epochs alone.
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        eta_min=1e-4,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
