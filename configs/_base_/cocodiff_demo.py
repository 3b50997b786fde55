# CoCoDiff on the demo: the demo's class texts, the offline pretrained
# MiniLM text encoder, and short stages. `make demo` passes the baseline
# checkpoint as train_cfg.pretrained, so stage 0 is skipped.
_base_ = './cocodiff.py'
cocodiff_head = dict(text_bank=dict(texts='demo', encoder='minilm'))
cocodiff_train_cfg = dict(
    stage0=dict(epochs=12),
    stage1=dict(epochs=3),
    stage2=dict(epochs=12),
    val_interval=12)
