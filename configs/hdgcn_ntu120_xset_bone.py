_base_ = [
    './_base_/ctrgcn_runtime.py', './_base_/models/hdgcn_nturgbd.py',
    './_base_/datasets/ntu120_xset.py', './_base_/streams/ntu3d_bone.py'
]
model = dict(cls_head=dict(num_classes=120))
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.val_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline}}))
