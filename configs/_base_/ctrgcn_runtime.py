# Runtime and training recipe of the paper (Sec. IV-B): SGD, momentum 0.9,
# weight decay 4e-4, lr 0.1 with 5 warm-up epochs, x0.1 at epochs 70 and 80,
# 90 epochs.
_base_ = 'mmaction::_base_/default_runtime.py'

custom_imports = dict(imports=['cocodiff_mm'], allow_failed_imports=False)

max_epochs = 90
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, weight_decay=4e-4, nesterov=True))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[70, 80],
        gamma=0.1)
]
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='acc/top1',
        rule='greater'),
    logger=dict(type='LoggerHook', interval=50, ignore_last=False))

# tools/train.py picks NCCL with CUDA and gloo without it when this is None.
env_cfg = dict(dist_cfg=dict(backend=None))
auto_scale_lr = dict(enable=False, base_batch_size=64)
