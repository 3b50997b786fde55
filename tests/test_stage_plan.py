"""Stage bookkeeping of TwoStageLoop: which stages run, where they sit on
the epoch axis, and how their schedules are shifted."""
import pytest

from cocodiff_mm.engine.stage_plan import (plan_stages, shift_schedulers,
                                           stage_at)

WARMUP = dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
              end=5, convert_to_iter_based=True)
STEPS = dict(type='MultiStepLR', by_epoch=True, begin=0, end=90,
             milestones=[70, 80], gamma=0.1)


def plan(source='pretrained', pretrained=False, e0=90, e1=30, e2=90,
         **stage1):
    return plan_stages(
        dict(epochs=e0), dict(epochs=e1, **stage1), dict(epochs=e2), source,
        has_pretrained=pretrained, default_scheduler=[WARMUP, STEPS])


def test_from_scratch_runs_stage0_then_1_then_2():
    stages = plan()
    assert [(s.index, s.begin, s.end) for s in stages] == [(0, 0, 90),
                                                          (1, 90, 120),
                                                          (2, 120, 210)]
    assert [stage_at(stages, e).index for e in (0, 89, 90, 119, 120, 209)
            ] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize('source, pretrained, expected', [
    ('pretrained', True, [1, 2]),
    ('untrained', False, [1, 2]),
    ('untrained', True, [1, 2]),
    ('none', False, [2]),
])
def test_table_v_sources(source, pretrained, expected):
    stages = plan(source, pretrained)
    assert [s.index for s in stages] == expected
    assert stages[0].begin == 0


def test_schedules_are_shifted_and_clipped_to_their_stage():
    shifted = shift_schedulers(plan())
    # Stage 0: as configured.
    assert shifted[0]['begin'] == 0 and shifted[0]['end'] == 5
    assert shifted[1]['begin'] == 0 and shifted[1]['end'] == 90
    # Stage 1 (30 epochs): warm-up from its own start, steps clipped.
    assert (shifted[2]['begin'], shifted[2]['end']) == (90, 95)
    assert (shifted[3]['begin'], shifted[3]['end']) == (90, 120)
    # Milestones stay relative to begin (mmengine counts from begin).
    assert shifted[3]['milestones'] == [70, 80]
    assert (shifted[4]['begin'], shifted[4]['end']) == (120, 125)
    assert (shifted[5]['begin'], shifted[5]['end']) == (120, 210)


def test_a_stage_can_have_its_own_schedule():
    own = [dict(type='CosineAnnealingLR', by_epoch=True, eta_min=0)]
    shifted = shift_schedulers(plan(param_scheduler=own))
    cosine = [s for s in shifted if s['type'] == 'CosineAnnealingLR']
    assert cosine == [dict(type='CosineAnnealingLR', by_epoch=True,
                           eta_min=0, begin=90, end=120, T_max=30)]


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match='stage1_source'):
        plan('maybe')
    with pytest.raises(ValueError, match='stage2.epochs must be > 0'):
        plan(e2=0)
    with pytest.raises(ValueError, match='stage1.epochs'):
        plan(e1=-1)
    with pytest.raises(ValueError, match='by_epoch=True'):
        shift_schedulers(plan(param_scheduler=[dict(type='LinearLR',
                                                    by_epoch=False)]))
    with pytest.raises(ValueError, match='begin=40'):
        shift_schedulers(plan(param_scheduler=[dict(type='LinearLR',
                                                    begin=40, end=50)]))
