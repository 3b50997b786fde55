_base_ = [
    './_base_/ctrgcn_runtime.py', './_base_/models/ctrgcn_openpose.py',
    './_base_/datasets/kinetics.py', './_base_/streams/openpose2d_bone.py'
]
model = dict(cls_head=dict(num_classes=400))
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.val_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.test_pipeline}}))
