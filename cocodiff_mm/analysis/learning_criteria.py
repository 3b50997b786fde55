"""Does a CoCoDiff run's diffusion learn? Read off its work dir.

Four engineering checks of a two-stage run (issue 10's acceptance), from
the files every run writes:

* ``loss_con`` falls during stage 1: the mean of the last stage-1 epoch's
  logged windows against the first's (``vis_data/scalars.json``);
* class faithfulness at the end of stage 1: the frozen classifier's
  accuracy on generated validation features, the last stage-1 line of
  ``generation_diagnostics.jsonl``;
* ``acc_generated`` in stage 2: per epoch, the mean of the logged training
  windows (the classifier being trained, on the features it is fed);
* ``ce_generated`` in stage 2: the largest logged window, against chance
  level ``ln(num_classes)``.

Stage-1 windows are those with ``loss_rec`` and without ``loss_cls`` (the
frozen GCN trains nothing), stage-2 windows those with both. A resumed run
has one ``<timestamp>/vis_data/scalars.json`` per start; later starts
replace the windows of the same step.
"""
import glob
import json
import math
import os.path as osp
from typing import Dict, List, Optional

#: Targets of issue 10: the fall of loss_con, the faithfulness at the end of
#: stage 1, and acc_generated in stage 2 (CE must stay below ln C).
LOSS_CON_FALL = 0.30
FAITHFULNESS = 0.70
STAGE2_ACC_GENERATED = 0.50


def read_scalars(train_dir: str) -> List[Dict]:
    """The logged training windows of a work dir, in step order.

    Args:
        train_dir (str): The run's work dir (``tools/train.py
            --work-dir``).

    Returns:
        list[dict]: One dict per logged window (``epoch``, ``step`` and the
        logged values), later starts of a resumed run replacing earlier
        windows of the same step.
    """
    by_step: Dict[int, Dict] = {}
    for path in sorted(glob.glob(
            osp.join(train_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as file:
            for line in file:
                if not line.strip():
                    continue
                window = json.loads(line)
                if 'step' in window and 'epoch' in window:  # not val lines
                    by_step[window['step']] = window
    return [by_step[step] for step in sorted(by_step)]


def _epoch_means(windows: List[Dict], key: str) -> Dict[int, float]:
    """Mean of ``key`` over the windows of each epoch."""
    sums: Dict[int, List[float]] = {}
    for window in windows:
        if key in window:
            sums.setdefault(window['epoch'], []).append(window[key])
    return {epoch: sum(v) / len(v) for epoch, v in sorted(sums.items())}


def learning_criteria(train_dir: str, num_classes: int) -> Optional[Dict]:
    """The four checks of a two-stage run, or None without its logs.

    Args:
        train_dir (str): The run's work dir.
        num_classes (int): Classes of the dataset (chance CE is
            ``ln(num_classes)``).

    Returns:
        dict | None: ``loss_con_first``/``loss_con_last``/``loss_con_fall``
        (None without the coarse text), ``faithfulness`` (end of stage 1),
        ``acc_generated_by_epoch`` (stage-2 epoch, counted from 1, to its
        mean), ``acc_generated_first_epoch`` and ``acc_generated_later_min``
        (the lowest epoch from the second on: in the first the classifier
        starts from random weights and is as often wrong on real features),
        ``ce_generated_max`` (None in logs that predate it) and
        ``chance_ce``; None when the dir has no stage-2 windows.
    """
    windows = read_scalars(train_dir)
    stage1 = [w for w in windows if 'loss_rec' in w and 'loss_cls' not in w]
    stage2 = [w for w in windows if 'loss_rec' in w and 'loss_cls' in w]
    if not stage2:
        return None
    con = _epoch_means(stage1, 'loss_con')
    first = con[min(con)] if con else None
    last = con[max(con)] if con else None
    acc = _epoch_means(stage2, 'acc_generated')
    start = min(acc) if acc else 0
    by_epoch = {epoch - start + 1: value for epoch, value in acc.items()}
    later = [value for epoch, value in by_epoch.items() if epoch >= 2]
    ce = [w['ce_generated'] for w in stage2 if 'ce_generated' in w]
    return dict(
        loss_con_first=first,
        loss_con_last=last,
        loss_con_fall=None if first is None else 1 - last / first,
        faithfulness=_stage1_faithfulness(train_dir),
        acc_generated_by_epoch=by_epoch,
        acc_generated_first_epoch=by_epoch.get(1),
        acc_generated_later_min=min(later) if later else None,
        ce_generated_max=max(ce) if ce else None,
        chance_ce=math.log(num_classes))


def _stage1_faithfulness(train_dir: str) -> Optional[float]:
    """``gen_acc`` of the last stage-1 diagnostics line."""
    path = osp.join(train_dir, 'generation_diagnostics.jsonl')
    found = None
    if osp.isfile(path):
        with open(path) as file:
            for line in file:
                if line.strip():
                    values = json.loads(line)
                    if values['objective'] == 'diffusion':
                        found = values['gen_acc']
    return found
