# CoCoDiff stage lengths for mmaction2's ST-GCN recipe (16 epochs over a x5
# repeated dataset).
_base_ = './cocodiff.py'
cocodiff_train_cfg = dict(
    stage0=dict(epochs=16), stage1=dict(epochs=5), stage2=dict(epochs=16))
