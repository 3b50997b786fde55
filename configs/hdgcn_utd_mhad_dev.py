# UTD-MHAD model selection with HD-GCN: the splits of ctrgcn_utd_mhad_dev.py
# (train on subjects 1, 3, 5, validate on subject 7; the test subjects are
# evaluated only at the end, --cfg-options
# test_dataloader.dataset.split=xsub_val).
_base_ = './hdgcn_utd_mhad.py'
train_dataloader = dict(dataset=dict(dataset=dict(split='xsub_dev_train')))
val_dataloader = dict(dataset=dict(split='xsub_dev_val'))
test_dataloader = dict(dataset=dict(split='xsub_dev_val'))
