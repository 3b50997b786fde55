# The paper-literal setting (conv UNet, gradients through all 30 steps) on
# the UTD-MHAD model-selection splits, against the fast default in
# configs/studies/utd_mhad_cocodiff.py.
_base_ = ['./ctrgcn_cocodiff_utd_mhad_dev.py']
model = dict(cls_head={{_base_.cocodiff_paper_literal_head}})
