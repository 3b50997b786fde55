# CoCoDiff on UTD-MHAD in the paper-literal setting (conv UNet denoiser,
# gradients through all 30 steps), to compare with the fast default.
_base_ = ['./ctrgcn_cocodiff_utd_mhad.py']
model = dict(cls_head={{_base_.cocodiff_paper_literal_head}})
