# CoCoDiff on mmaction2's stock 2s-AGCN (its AAGCN backbone without the
# attention; NTU-60 X-Sub, joint): the stock config with only the head, the
# diffusion learning rates and the loop changed. The full AAGCN:
# --cfg-options model.backbone.gcn_attention=True.
_base_ = [
    'mmaction::skeleton/2s-agcn/'
    '2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-3d.py',
    './_base_/cocodiff_stgcn_ntu60.py'
]
custom_imports = dict(imports=['cocodiff_mm'], allow_failed_imports=False)
model = dict(cls_head={{_base_.cocodiff_head}})
optim_wrapper = {{_base_.cocodiff_optim_wrapper}}
train_cfg = {{_base_.cocodiff_train_cfg}}
