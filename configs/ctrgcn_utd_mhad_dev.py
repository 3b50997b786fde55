# UTD-MHAD model selection (tools/study.py): train on subjects 1, 3, 5 and
# validate on subject 7, both carved out of the cross-subject training
# subjects; the test subjects (2, 4, 6, 8: split xsub_val) are evaluated only
# at the end, with
#   --cfg-options test_dataloader.dataset.split=xsub_val
# The cosine schedule has no end: it spans train_cfg.max_epochs (or each
# stage's epochs under TwoStageLoop), so a study budget sets the epochs alone.
_base_ = './ctrgcn_utd_mhad.py'
train_dataloader = dict(dataset=dict(dataset=dict(split='xsub_dev_train')))
val_dataloader = dict(dataset=dict(split='xsub_dev_val'))
test_dataloader = dict(dataset=dict(split='xsub_dev_val'))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        eta_min=1e-4,
        convert_to_iter_based=True)
]
