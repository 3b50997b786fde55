# The embedded demo: procedural 3D skeletons in the NTU layout (8 actions,
# one person, split by performer), small enough to train on 2 CPU cores in
# minutes. `make demo` generates the data with
#   python tools/data/make_demo_data.py --out data/skeleton/demo_3d.pkl
_base_ = [
    './_base_/ctrgcn_runtime.py', './_base_/models/ctrgcn_nturgbd.py',
    './_base_/streams/ntu3d_joint.py'
]
model = dict(
    backbone=dict(num_person=1, base_channels=32),
    cls_head=dict(num_classes=8, in_channels=128))
dataset_type = 'PoseDataset'
ann_file = 'data/skeleton/demo_3d.pkl'
clip_len = 32
train_pipeline = [
    dict(type='PreNormalize3D'),
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=clip_len),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='PreNormalize3D'),
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(
        type='UniformSampleFrames',
        clip_len=clip_len,
        num_clips=1,
        test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=train_pipeline,
        split='xsub_train'))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=test_pipeline,
        split='xsub_val',
        test_mode=True))
test_dataloader = val_dataloader

max_epochs = 12
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        eta_min=1e-3,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
    logger=dict(interval=5))
