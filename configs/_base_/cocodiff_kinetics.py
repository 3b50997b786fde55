# CoCoDiff with the Kinetics-400 class texts.
_base_ = './cocodiff.py'
cocodiff_head = dict(text_bank=dict(texts='kinetics400'))
