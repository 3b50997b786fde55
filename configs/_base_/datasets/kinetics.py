# Kinetics-Skeleton (ST-GCN release, OpenPose 18 joints). Pipelines come from a stream file (_base_/streams).
# Prepare the annotation file with tools/data (see README, "Data").
dataset_type = 'PoseDataset'
ann_file = 'data/skeleton/kinetics_skeleton_2d.pkl'
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, ann_file=ann_file, pipeline=[], split='train'))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=[],
        split='val',
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=[],
        split='val',
        test_mode=True))
