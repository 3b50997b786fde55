# NTU RGB+D 60, cross-view. Prepare the annotation file with tools/data (see README,
# "Data").
_base_ = './skeleton_loaders.py'
ann_file = 'data/skeleton/ntu60_3d.pkl'
train_dataloader = dict(
    batch_size=64, dataset=dict(ann_file=ann_file, split='xview_train'))
val_dataloader = dict(
    batch_size=64, dataset=dict(ann_file=ann_file, split='xview_val'))
test_dataloader = dict(dataset=dict(ann_file=ann_file, split='xview_val'))
