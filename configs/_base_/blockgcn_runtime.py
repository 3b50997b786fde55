# BlockGCN's recipe: CTR-GCN's (SGD, Nesterov momentum 0.9, weight decay
# 4e-4, lr 0.1 with 5 warm-up epochs) over 140 epochs, x0.1 at epochs 110
# and 120.
_base_ = './ctrgcn_runtime.py'

max_epochs = 140
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
        milestones=[110, 120],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs)
