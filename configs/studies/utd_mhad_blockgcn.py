# Does CoCoDiff help BlockGCN on real skeletons?  The protocol, budgets and
# seeds 0-2 of utd_mhad_cocodiff.py (CTR-GCN), with its backbone:
#   python tools/study.py configs/studies/utd_mhad_blockgcn.py --budget cpu
#   python tools/study.py configs/studies/utd_mhad_blockgcn.py --budget cpu --test
_base_ = './utd_mhad_cocodiff.py'
name = 'utd_mhad_blockgcn'
final = ['baseline', 'cocodiff']
seeds = [0, 1, 2]
# BlockGCN's features have 2x its base channels, CTR-GCN's 4x: 64 base
# channels give the budget's 128-wide pooled feature (model.cls_head.
# in_channels=128), as 128 do the 256 of both full models.
_width = 'model.backbone.base_channels=64'
arms = [
    dict(name='baseline', config='configs/blockgcn_utd_mhad_dev.py',
         cfg_options=[_width],
         description='BlockGCN, the config recipe'),
    dict(name='cocodiff', config='configs/blockgcn_cocodiff_utd_mhad_dev.py',
         init_from='baseline',
         cfg_options=[_width, 'model.cls_head.text_bank.encoder=minilm'],
         description='the shipped defaults, MiniLM encoder'),
]
