# Where does CoCoDiff pay?  The smallest training set: subject 1 alone
# (about 4 clips per class) of the development training subjects 1, 3, 5;
# selection on subject 7 and test on subjects 2, 4, 6, 8 as in
# utd_mhad_cocodiff.py, whose budgets this spec keeps. Also the text
# question: MiniLM texts against class codes, shuffled texts and no text.
#   python tools/study.py configs/studies/utd_mhad_size_s1.py --budget cpu
#   python tools/study.py configs/studies/utd_mhad_size_s1.py --budget cpu --test
_base_ = './utd_mhad_cocodiff.py'
name = 'utd_mhad_size_s1'
final = ['baseline', 'cocodiff', 'class_codes', 'shuffled_texts', 'no_text']
seeds = [0, 1, 2, 3, 4]

_cocodiff = 'configs/ctrgcn_cocodiff_utd_mhad_dev.py'
# The clips of one subject, repeated 6 times per epoch: as many iterations
# per epoch (about 650 clips) as the full set's 2 repeats of 323, so every
# size trains the same number of steps.
_size = ['train_dataloader.dataset.dataset.split=xsub_dev_train_s1',
         'train_dataloader.dataset.times=6']
_minilm = 'model.cls_head.text_bank.encoder=minilm'
# A fixed derangement of the 27 classes (numpy.random.default_rng(0)
# permutations until none keeps its own index): class i is described by
# the texts of class _shuffled[i], so the texts are real sentences about
# actions but name the wrong one.
_shuffled = ('model.cls_head.text_bank.classes=[7,19,4,2,3,20,14,11,22,1,'
             '21,18,10,26,23,25,6,13,5,16,17,9,24,0,8,12,15]')
arms = [
    dict(name='baseline', config='configs/ctrgcn_utd_mhad_dev.py',
         cfg_options=_size, description='CTR-GCN, the config recipe'),
    dict(name='cocodiff', config=_cocodiff, init_from='baseline',
         cfg_options=_size + [_minilm],
         description='the shipped defaults, MiniLM texts'),
    dict(name='class_codes', config=_cocodiff, init_from='baseline',
         cfg_options=_size + ['model.cls_head.text_bank.encoder=random'],
         description='an untrained text encoder (random weights): the '
         'texts become fixed per-class codes that keep little of their '
         'meaning'),
    dict(name='shuffled_texts', config=_cocodiff, init_from='baseline',
         cfg_options=_size + [_minilm, _shuffled],
         description='MiniLM texts of another class (a fixed derangement)'),
    dict(name='no_text', config=_cocodiff, init_from='baseline',
         cfg_options=_size + [_minilm, 'model.cls_head.text_mode=none'],
         description='no text: unconditional diffusion, no coarse-text '
         'loss'),
]
# The levers of utd_mhad_cocodiff.py (the same names and values; a base's
# variables cannot be iterated here) at this size, each against `cocodiff`,
# on validation only.
_levers = dict(
    lever_start5=['model.cls_head.generation.start_step=5'],
    lever_start20=['model.cls_head.generation.start_step=20'],
    lever_T10=['model.cls_head.diffusion.num_steps=10',
               'model.cls_head.generation.start_step=4'],
    lever_lambda_half=['model.cls_head.loss_text.loss_weight=0.5'],
    lever_lambda_double=['model.cls_head.loss_text.loss_weight=2.0'],
)
arms += [
    dict(name=_name, config=_cocodiff, init_from='baseline',
         cfg_options=_size + [_minilm, *_options],
         description='lever on cocodiff: ' + ' '.join(_options))
    for _name, _options in _levers.items()
]
