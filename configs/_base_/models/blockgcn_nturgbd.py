# BlockGCN on 3D NTU RGB+D skeletons (25 joints, x-y-z, 2 persons), with the
# persistent-homology encoding (model.backbone.topology_encoding=False drops
# it).
model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='BlockGCN',
        graph_cfg=dict(layout='nturgb+d'),
        in_channels=3,
        num_person=2),
    cls_head=dict(type='GCNHead', num_classes=60, in_channels=256))
