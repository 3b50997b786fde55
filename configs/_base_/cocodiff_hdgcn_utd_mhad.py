# CoCoDiff on HD-GCN for UTD-MHAD: the UTD-MHAD texts and stages, with the
# chain of cocodiff_hdgcn.py (T=10, start step 4).
_base_ = './cocodiff_utd_mhad.py'
cocodiff_head = dict(
    diffusion=dict(num_steps=10), generation=dict(start_step=4))
