# CTR-GCN on 2D Kinetics-Skeleton (OpenPose 18 joints, x-y-score, 2 persons).
model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='CTRGCN',
        graph_cfg=dict(layout='openpose', mode='spatial'),
        in_channels=3,
        num_person=2),
    cls_head=dict(type='GCNHead', num_classes=400, in_channels=256))
