# CoCoDiff on mmaction2's NTU RGB+D 60 recipes (ST-GCN, ST-GCN++, 2s-AGCN):
# NTU-60's 60 classes are NTU-120's first 60 in the same order, so the head
# takes the first 60 classes of the NTU-120 texts.
_base_ = './cocodiff_stgcn.py'
cocodiff_head = dict(text_bank=dict(texts='ntu120', classes=60))
