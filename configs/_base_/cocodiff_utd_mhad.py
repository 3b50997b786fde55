# CoCoDiff with the UTD-MHAD class texts and a schedule for its 431 clips.
_base_ = './cocodiff.py'
cocodiff_head = dict(text_bank=dict(texts='utd_mhad'))
cocodiff_train_cfg = dict(
    stage0=dict(epochs=30), stage1=dict(epochs=10), stage2=dict(epochs=30))
