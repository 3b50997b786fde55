# HD-GCN on 3D NTU RGB+D skeletons (25 joints, x-y-z, 2 persons). The joint
# sets are derived from the layout around its centre, the spine-shoulder
# (the paper's CoM 21); model.backbone.center=0 or =1 gives its CoM 1 or 2.
model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='HDGCN',
        graph_cfg=dict(layout='nturgb+d'),
        in_channels=3,
        num_person=2),
    cls_head=dict(type='GCNHead', num_classes=60, in_channels=256))
