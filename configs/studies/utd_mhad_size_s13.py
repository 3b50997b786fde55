# Where does CoCoDiff pay?  The middle training set: subjects 1 and 3
# (about 8 clips per class) of the development training subjects 1, 3, 5;
# otherwise as utd_mhad_size_s1.py. The full set (12 per class) is
# utd_mhad_cocodiff.py's arms baseline, gen_no_ramp and
# random_encoder_no_ramp.
#   python tools/study.py configs/studies/utd_mhad_size_s13.py --budget cpu
#   python tools/study.py configs/studies/utd_mhad_size_s13.py --budget cpu --test
_base_ = './utd_mhad_cocodiff.py'
name = 'utd_mhad_size_s13'
final = ['baseline', 'cocodiff', 'class_codes']
seeds = [0, 1, 2, 3, 4]

_cocodiff = 'configs/ctrgcn_cocodiff_utd_mhad_dev.py'
# Two subjects repeated 3 times per epoch: as many iterations per epoch as
# the full set's 2 repeats of 323 clips.
_size = ['train_dataloader.dataset.dataset.split=xsub_dev_train_s13',
         'train_dataloader.dataset.times=3']
arms = [
    dict(name='baseline', config='configs/ctrgcn_utd_mhad_dev.py',
         cfg_options=_size, description='CTR-GCN, the config recipe'),
    dict(name='cocodiff', config=_cocodiff, init_from='baseline',
         cfg_options=_size + ['model.cls_head.text_bank.encoder=minilm'],
         description='the shipped defaults, MiniLM texts'),
    dict(name='class_codes', config=_cocodiff, init_from='baseline',
         cfg_options=_size + ['model.cls_head.text_bank.encoder=random'],
         description='an untrained text encoder (random weights): the '
         'texts become fixed per-class codes that keep little of their '
         'meaning'),
]
