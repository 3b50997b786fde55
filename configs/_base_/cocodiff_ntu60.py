# CoCoDiff for NTU RGB+D 60, whose 60 classes are NTU-120's first 60 in the
# same order: the head takes the first 60 classes of the NTU-120 texts.
_base_ = './cocodiff.py'
cocodiff_head = dict(text_bank=dict(texts='ntu120', classes=60))
