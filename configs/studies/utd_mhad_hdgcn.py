# Does CoCoDiff help HD-GCN on real skeletons?  The protocol, budgets and
# seeds 0-2 of utd_mhad_cocodiff.py (CTR-GCN), with its backbone:
#   python tools/study.py configs/studies/utd_mhad_hdgcn.py --budget cpu
#   python tools/study.py configs/studies/utd_mhad_hdgcn.py --budget cpu --test
_base_ = './utd_mhad_cocodiff.py'
name = 'utd_mhad_hdgcn'
final = ['baseline', 'cocodiff']
seeds = [0, 1, 2]
arms = [
    dict(name='baseline', config='configs/hdgcn_utd_mhad_dev.py',
         description='HD-GCN, the config recipe'),
    dict(name='cocodiff', config='configs/hdgcn_cocodiff_utd_mhad_dev.py',
         init_from='baseline',
         cfg_options=['model.cls_head.text_bank.encoder=minilm'],
         description='the shipped defaults with the paper\'s T=10 for '
         'HD-GCN (start step 4: the noise level of step 10 of 30), MiniLM '
         'encoder'),
]
