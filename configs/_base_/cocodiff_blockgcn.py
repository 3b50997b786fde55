# CoCoDiff on BlockGCN: stages 0 and 2 as long as its 140-epoch recipe, so
# each runs the whole lr schedule.
_base_ = './cocodiff.py'
cocodiff_train_cfg = dict(stage0=dict(epochs=140), stage2=dict(epochs=140))
