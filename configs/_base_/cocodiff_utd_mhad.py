# CoCoDiff with the UTD-MHAD class texts and a schedule for its 431 clips.
# Stage 1 runs on cached features (about 1 s an epoch on 2 CPU cores): 30
# epochs, until the frozen classifier recognises most generated features.
_base_ = './cocodiff.py'
cocodiff_head = dict(text_bank=dict(texts='utd_mhad'))
cocodiff_train_cfg = dict(
    stage0=dict(epochs=30), stage1=dict(epochs=30), stage2=dict(epochs=30))
