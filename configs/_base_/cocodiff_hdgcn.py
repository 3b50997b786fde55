# CoCoDiff on HD-GCN: the paper's chain of T=10 steps, noised to and
# denoised from step 4 (alpha_bar 0.24, the noise level of the default's
# step 10 of 30).
_base_ = './cocodiff.py'
cocodiff_head = dict(
    diffusion=dict(num_steps=10), generation=dict(start_step=4))
