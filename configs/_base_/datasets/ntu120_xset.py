# NTU RGB+D 120, cross-setup. Prepare the annotation file with tools/data (see README,
# "Data").
_base_ = './skeleton_loaders.py'
ann_file = 'data/skeleton/ntu120_3d.pkl'
train_dataloader = dict(
    batch_size=64, dataset=dict(ann_file=ann_file, split='xset_train'))
val_dataloader = dict(
    batch_size=64, dataset=dict(ann_file=ann_file, split='xset_val'))
test_dataloader = dict(dataset=dict(ann_file=ann_file, split='xset_val'))
