# UTD-MHAD, cross-subject, joint stream, with HDGCN: the data, pipelines and
# 30-epoch schedule of ctrgcn_utd_mhad.py, and its layout.
_base_ = './ctrgcn_utd_mhad.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='HDGCN',
        graph_cfg=dict(layout={{_base_.model.backbone.graph_cfg.layout}}),
        in_channels=3,
        num_person=1))
