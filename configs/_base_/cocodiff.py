# CoCoDiff on top of a baseline config. A CoCoDiff config inherits its
# baseline and this file, then applies the three pieces below:
#   model = dict(cls_head={{_base_.cocodiff_head}})
#   optim_wrapper = {{_base_.cocodiff_optim_wrapper}}
#   train_cfg = {{_base_.cocodiff_train_cfg}}
# Every hyper-parameter the paper studies is an option here, overridable by
# --cfg-options, e.g.
#   model.cls_head.diffusion.num_steps=10        (T, Table IV; with
#       model.cls_head.generation.start_step=4, the same noise level)
#   optim_wrapper.diffusion.optimizer.lr=3e-4    (the diffusion's AdamW)
#   model.cls_head.loss_text.loss_weight=0.5     (lambda, Table III)
#   model.cls_head.text_mode=fine                (both|fine|coarse|none, II)
#   train_cfg.stage1_source=untrained            (pretrained|untrained|none, V)
#   train_cfg.stage1.faithfulness_target=0.8     (end stage 1 once the frozen
#       classifier recognises 80 % of generated validation features;
#       stage1.epochs is then the cap)
#   train_cfg.pretrained=work_dirs/ctrgcn_ntu60_xsub/best_acc_top1_epoch_88.pth
#   model.cls_head.text_bank.encoder=minilm      (offline; or random: tests)
cocodiff_head = dict(
    type='DiffusionAugmentedHead',
    text_bank=dict(
        texts='ntu120',
        encoder='clip',
        model_name='ViT-B-32',
        pretrained='openai',
        sample_mode='random',
        cache_dir='data/text_banks'),
    diffusion=dict(
        type='GaussianDiffusion',
        num_steps=30,
        beta_schedule='linear',
        clip_denoised=5.0),
    denoiser=dict(type='ConditionalMLPUNet', widths=(256, )),
    loss_text=dict(
        type='TextGuidanceLoss',
        loss_weight=1.0,
        temperature=0.07,
        learnable_temperature=True),
    text_mode='both',
    # Real features are noised to step 10 of 30 (alpha_bar 0.24) and
    # denoised from there; losses on the generated features backpropagate
    # through the last 3 denoiser calls (None: all of them). From step 10
    # the frozen classifier recognises far more generated features after
    # stage 1 than from the last step T (start_step=None, the paper read
    # literally): chosen on validation, docs/results.md.
    generation=dict(sampler='ddpm', start_step=10, grad_steps=3),
    loss_rec_weight=1.0,
    loss_gen_weight=1.0,
    # CE on generated features trains the classifier only (stable stage 2).
    gen_cls_trains_diffusion=False)

# The diffusion parts (denoiser, g, temperature) get their own AdamW; the
# GCN keeps the baseline's optimizer. Both follow the config's
# param_scheduler. With the GCN's SGD (any lr) the frozen classifier
# recognises fewer generated features after stage 1 (docs/results.md).
cocodiff_optim_wrapper = dict(
    constructor='DiffusionOptimWrapperConstructor',
    diffusion=dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0),
        paramwise_cfg=dict(custom_keys={'loss_text': dict(decay_mult=0.0)})))

# Stage epochs; each stage's lr schedule defaults to the config's
# param_scheduler (the baseline recipe), counted from the stage's start.
cocodiff_train_cfg = dict(
    _delete_=True,
    type='TwoStageLoop',
    pretrained=None,
    stage1_source='pretrained',
    cache_features=True,
    stage0=dict(epochs=90),
    stage1=dict(epochs=30),
    stage2=dict(epochs=90),
    val_interval=1)

# The loop's per-iteration and per-epoch jobs, as hooks:
# - the weight of CE on generated features: 1 from stage 2's first
#   iteration. It can rise from 0 to 1 over stage 2's first epochs
#   (--cfg-options custom_hooks.0.warmup_epochs=5), or start only once the
#   fresh classifier recognises half the generated features of an epoch
#   (custom_hooks.0.start_acc=0.5). On
#   UTD-MHAD validation both scored lower, and without the generated CE the
#   fresh classifier recognises far fewer generated features in its first
#   epochs (docs/results.md, "Stage-2 levers");
# - stage_times.json, the wall time of each stage (kept across --resume);
# - each stage starts with fresh smoothed loss logs;
# - class faithfulness, diversity (DIV) and class-mean distances of the
#   generated features after every stage-1/2 epoch, on up to 512 validation
#   clips: generation_diagnostics.jsonl in the work dir.
custom_hooks = [
    dict(type='GeneratedLossRampHook', warmup_epochs=0),
    dict(type='StageTimerHook'),
    dict(type='StageLogResetHook'),
    dict(type='GenerationDiagnosticsHook', interval=1),
]

# Stage 0 leaves the diffusion unused and stage 1 the frozen GCN.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)

# The paper read literally (a variant: `model = dict(cls_head={{_base_.
# cocodiff_paper_literal_head}})`): the 1-D convolutional UNet over the
# feature, and losses on generated features backpropagated through every
# step of the chain (the truncation changes the gradients only, not the
# generated features). It costs more per step (docs/results.md;
# tools/benchmark_training.py, row "paper-literal").
cocodiff_paper_literal_head = dict(
    denoiser=dict(_delete_=True, type='ConditionalUNet1D', base_channels=32),
    generation=dict(grad_steps=None))
