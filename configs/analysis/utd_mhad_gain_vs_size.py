# Where does CoCoDiff pay? The test gain over the baseline against the
# training clips per class of UTD-MHAD (subject 1, subjects 1 and 3, and the
# full development set 1, 3, 5), with paired per-seed differences. Each
# size's study must have been run and tested first (tools/study.py SPEC
# --budget cpu, then --test). Regenerate docs/gain_vs_size.md and
# docs/gain_vs_size.png with
#   python tools/analysis/gain_vs_size.py configs/analysis/utd_mhad_gain_vs_size.py --budget cpu --out-dir docs
# Roles: baseline (CTR-GCN), cocodiff (the shipped defaults, MiniLM texts),
# class_codes (an untrained text encoder: fixed per-class codes). Clips per
# class are computed from each baseline's training split, not listed here.
_roles = dict(baseline='baseline', cocodiff='cocodiff',
              class_codes='class_codes')
sizes = [
    dict(spec='configs/studies/utd_mhad_size_s1.py', arms=_roles),
    dict(spec='configs/studies/utd_mhad_size_s13.py', arms=_roles),
    # The full set: the same roles under the main study's arm names.
    dict(spec='configs/studies/utd_mhad_cocodiff.py',
         arms=dict(baseline='baseline', cocodiff='gen_no_ramp',
                   class_codes='random_encoder_no_ramp')),
]
