# CTR-GCN on UTD-MHAD Kinect v1 skeletons: 20 joints in the dataset's own
# order (a custom layout; equals cocodiff_mm.datasets.layouts.UTD_MHAD_LAYOUT,
# which a test checks), x-y-z, one person.
model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='CTRGCN',
        graph_cfg=dict(
            layout=dict(
                num_node=20,
                inward=[(1, 2), (3, 2), (0, 1), (4, 1), (5, 4), (6, 5),
                        (7, 6), (8, 1), (9, 8), (10, 9), (11, 10), (12, 3),
                        (13, 12), (14, 13), (15, 14), (16, 3), (17, 16),
                        (18, 17), (19, 18)],
                center=2),
            mode='spatial'),
        in_channels=3,
        num_person=1),
    cls_head=dict(type='GCNHead', num_classes=27, in_channels=256))
