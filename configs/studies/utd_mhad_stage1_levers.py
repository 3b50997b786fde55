# Which settings make the diffusion learn in stage 1? The levers of the
# shipped defaults, one at a time, judged by the diagnostics at the end of
# stage 1 (gen acc s1: the frozen classifier's accuracy on generated
# validation features) on seed 0. Stage 2 runs 1 epoch only: the accuracy
# columns of this table mean nothing. Runs beside the main study's baseline:
#   mkdir -p work_dirs/study_levers
#   ln -s ../studies/utd_mhad_cocodiff_cpu/baseline work_dirs/study_levers/baseline
#   python tools/study.py configs/studies/utd_mhad_stage1_levers.py \
#       --budget cpu --work-root work_dirs/study_levers
_base_ = './utd_mhad_cocodiff.py'
name = 'utd_mhad_stage1_levers'
final = []
seeds = [0]

_cocodiff = 'configs/ctrgcn_cocodiff_utd_mhad_dev.py'
_stage1_only = ['model.cls_head.text_bank.encoder=minilm',
                'train_cfg.stage2.epochs=1']
_gcn_sgd = 'optim_wrapper.diffusion=None'
_from_T = 'model.cls_head.generation.start_step=None'
arms = [
    dict(name='baseline', config='configs/ctrgcn_utd_mhad_dev.py',
         description='CTR-GCN (the main study\'s runs)'),
    dict(name='shipped', config=_cocodiff, init_from='baseline',
         cfg_options=_stage1_only,
         description='AdamW for the diffusion, chain from step 10 of 30'),
    dict(name='from_T', config=_cocodiff, init_from='baseline',
         cfg_options=_stage1_only + [_from_T],
         description='AdamW, the full chain from T (the paper read '
         'literally)'),
    dict(name='gcn_sgd', config=_cocodiff, init_from='baseline',
         cfg_options=_stage1_only + [_gcn_sgd],
         description='the GCN\'s SGD (lr 0.1) for the diffusion too, '
         'chain from step 10'),
    dict(name='gcn_sgd_from_T', config=_cocodiff, init_from='baseline',
         cfg_options=_stage1_only + [_gcn_sgd, _from_T],
         description='both: the GCN\'s SGD and the full chain (close to the '
         'previous defaults, which had SGD at lr x0.1)'),
]
