_base_ = [
    './_base_/blockgcn_runtime.py', './_base_/models/blockgcn_nturgbd.py',
    './_base_/datasets/ntu60_xview.py', './_base_/streams/ntu3d_joint.py'
]
model = dict(cls_head=dict(num_classes=60))
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.val_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline}}))
