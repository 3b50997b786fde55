# CTR-GCN on 3D NTU RGB+D skeletons (25 joints, x-y-z, 2 persons).
model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='CTRGCN',
        graph_cfg=dict(layout='nturgb+d', mode='spatial'),
        in_channels=3,
        num_person=2),
    cls_head=dict(type='GCNHead', num_classes=60, in_channels=256))
