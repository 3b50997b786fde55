_base_ = ['./ctrgcn_ntu60_xview.py', './_base_/cocodiff_ntu60.py']
model = dict(cls_head={{_base_.cocodiff_head}})
optim_wrapper = {{_base_.cocodiff_optim_wrapper}}
train_cfg = {{_base_.cocodiff_train_cfg}}
