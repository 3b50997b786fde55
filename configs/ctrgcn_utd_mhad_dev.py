# UTD-MHAD model selection (tools/study.py): train on subjects 1, 3, 5 and
# validate on subject 7, both carved out of the cross-subject training
# subjects; the test subjects (2, 4, 6, 8: split xsub_val) are evaluated only
# at the end, with
#   --cfg-options test_dataloader.dataset.split=xsub_val
# The recipe's cosine schedule has no end, so a study budget sets the
# epochs alone.
_base_ = './ctrgcn_utd_mhad.py'
train_dataloader = dict(dataset=dict(dataset=dict(split='xsub_dev_train')))
val_dataloader = dict(dataset=dict(split='xsub_dev_val'))
test_dataloader = dict(dataset=dict(split='xsub_dev_val'))
