# CoCoDiff with the UTD-MHAD class texts and a schedule for its 431 clips.
# Stage 1 runs on cached features, so its 30 epochs are cheap next to the
# GCN's: long enough for the frozen classifier to recognise most generated
# features (docs/results.md).
_base_ = './cocodiff.py'
cocodiff_head = dict(text_bank=dict(texts='utd_mhad'))
cocodiff_train_cfg = dict(
    stage0=dict(epochs=30), stage1=dict(epochs=30), stage2=dict(epochs=30))
