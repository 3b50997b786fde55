# Kinetics-Skeleton (ST-GCN release, OpenPose 18 joints). Prepare the annotation file with tools/data (see README,
# "Data").
_base_ = './skeleton_loaders.py'
ann_file = 'data/skeleton/kinetics_skeleton_2d.pkl'
train_dataloader = dict(
    batch_size=128, dataset=dict(ann_file=ann_file, split='train'))
val_dataloader = dict(
    batch_size=128, dataset=dict(ann_file=ann_file, split='val'))
test_dataloader = dict(dataset=dict(ann_file=ann_file, split='val'))
