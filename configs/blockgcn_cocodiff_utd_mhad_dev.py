# CoCoDiff with BlockGCN on the UTD-MHAD model-selection splits (see
# blockgcn_utd_mhad_dev.py).
_base_ = ['./blockgcn_utd_mhad_dev.py', './_base_/cocodiff_utd_mhad.py']
model = dict(cls_head={{_base_.cocodiff_head}})
optim_wrapper = {{_base_.cocodiff_optim_wrapper}}
train_cfg = {{_base_.cocodiff_train_cfg}}
