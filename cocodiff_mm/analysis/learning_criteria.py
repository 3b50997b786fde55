"""Does a CoCoDiff run's diffusion learn? Read off its diagnostics.

Four engineering checks of a two-stage run (issue 10's acceptance), from
the ``generation_diagnostics.jsonl`` that
:class:`~cocodiff_mm.engine.hooks.GenerationDiagnosticsHook` writes after
every stage-1 (``objective`` "diffusion") and stage-2 ("joint") epoch:

* ``loss_con`` falls during stage 1: ``train_loss_con`` of the last
  stage-1 line against the first (epoch means of the training outputs);
* class faithfulness at the end of stage 1: ``gen_acc`` of the last
  stage-1 line, the frozen classifier on generated validation features;
* ``acc_generated`` in stage 2: ``train_acc_generated`` of each stage-2
  epoch (the classifier being trained, on the features it is fed);
* ``ce_generated`` in stage 2: the largest ``train_ce_generated`` (CE on
  generated features before its weight and ramp) against chance level
  ``ln(num_classes)``.

Beside them, one relative check: in every stage-2 epoch, how much more
often the classifier recognises the generated validation features than
the real ones (``gen_acc - real_acc``). A freshly initialised classifier
cannot recognise half the generated features in its first epochs; it
should not recognise them less often than real clips.

Lines written before the hook recorded the training means lack the
``train_*`` values; their checks read None.
"""
import json
import math
import os.path as osp
from typing import Dict, List, Optional

#: Targets of issue 10: the fall of loss_con, the faithfulness at the end of
#: stage 1, and acc_generated in stage 2 (CE must stay below ln C).
LOSS_CON_FALL = 0.30
FAITHFULNESS = 0.70
STAGE2_ACC_GENERATED = 0.50


def read_diagnostics(train_dir: str) -> List[Dict]:
    """The diagnostics lines of a work dir, one per measured epoch (a
    resumed run's repeated epochs: the later line)."""
    path = osp.join(train_dir, 'generation_diagnostics.jsonl')
    by_epoch: Dict[int, Dict] = {}
    if osp.isfile(path):
        with open(path) as file:
            for line in file:
                if line.strip():
                    values = json.loads(line)
                    by_epoch[values['epoch']] = values
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def learning_criteria(train_dir: str, num_classes: int) -> Optional[Dict]:
    """The four checks of a two-stage run, or None before its stage 2.

    Args:
        train_dir (str): The run's work dir (``tools/train.py
            --work-dir``).
        num_classes (int): Classes of the dataset (chance CE is
            ``ln(num_classes)``).

    Returns:
        dict | None: ``loss_con_first``, ``loss_con_last`` and
        ``loss_con_fall`` (None without the coarse text), ``faithfulness``
        (end of stage 1), ``acc_generated_by_epoch`` (stage-2 epoch,
        counted from 1, to its mean), ``acc_generated_first_epoch`` and
        ``acc_generated_later_min`` (the lowest epoch from the second on:
        in the first the classifier starts from random weights and is as
        often wrong on real features), ``ce_generated_max`` and
        ``chance_ce``.
    """
    lines = read_diagnostics(train_dir)
    stage1 = [line for line in lines if line['objective'] == 'diffusion']
    stage2 = [line for line in lines if line['objective'] == 'joint']
    if not stage2:
        return None
    con = [line['train_loss_con'] for line in stage1
           if 'train_loss_con' in line]
    by_epoch = {number: line['train_acc_generated']
                for number, line in enumerate(stage2, 1)
                if 'train_acc_generated' in line}
    later = [value for number, value in by_epoch.items() if number >= 2]
    ce = [line['train_ce_generated'] for line in stage2
          if 'train_ce_generated' in line]
    return dict(
        loss_con_first=con[0] if con else None,
        loss_con_last=con[-1] if con else None,
        loss_con_fall=1 - con[-1] / con[0] if con else None,
        faithfulness=stage1[-1]['gen_acc'] if stage1 else None,
        acc_generated_by_epoch=by_epoch,
        acc_generated_first_epoch=by_epoch.get(1),
        acc_generated_later_min=min(later) if later else None,
        ce_generated_max=max(ce) if ce else None,
        chance_ce=math.log(num_classes),
        gen_over_real_min=min(line['gen_acc'] - line['real_acc']
                              for line in stage2))
