"""Training cost of CoCoDiff against the baseline GCN, measured side by side.

Every arm is one real optimisation step of the config's model, built with
the config's optimizer wrapper, on the same random batch of the config's
input shape:

* ``baseline``: the head's ``classify`` objective, which is exactly
  ``GCNHead.loss`` (stage 0, and what the baseline config trains);
* ``stage1_cached``: the stage-1 step on pooled features cached from the
  frozen GCN (``L_rec + λ·L_con``, no backbone);
* ``extract``: one no-grad backbone pass, which stage 1 pays once per
  training clip to fill its cache;
* ``stage2``: the full stage-2 objective;
* ``stage2_literal`` (optional): stage 2 in the paper-literal setting given
  by extra config options (by default the 1-D conv UNet with gradients
  through every step of the chain), as a second model.

The arms run in turns, one call of each per round, so a slow minute of the
machine slows every arm alike. An arm's time is its median over the
measured rounds, and its ratio to the baseline is the median of the
per-round ratios (each against the baseline step of the same round), which
cancels the drift of a shared machine better than a ratio of medians. Memory is the peak CUDA allocation of each step on a GPU;
on the CPU, where torch keeps no such counter, it is the size of the
tensors autograd saves for the backward pass (the part that grows with the
chain).
"""
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample

#: The arms, in the order they run in each round.
ARMS = ('baseline', 'stage1_cached', 'extract', 'stage2', 'stage2_literal')

#: Extra options of the paper-literal arm: the paper's UNet over the 1-D
#: feature, and gradients through every step of the chain.
LITERAL_OPTIONS = {
    'model.cls_head.denoiser': dict(
        _delete_=True, type='ConditionalUNet1D', base_channels=32),
    'model.cls_head.generation.grad_steps': None,
}


def clip_len_of(cfg: Config, default: int = 64) -> int:
    """Frames per clip of the config's training pipeline."""
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get(
        'pipeline', [])
    for transform in pipeline:
        if transform.get('type') == 'UniformSampleFrames':
            return int(transform.get('clip_len', default))
    return default


def random_batch(cfg: Config, batch_size: int, frames: int,
                 num_classes: int, seed: int = 0) -> Dict:
    """Random skeletons shaped like the config's input, as a data batch."""
    from mmaction.models.utils import Graph
    backbone = cfg.model.backbone
    joints = Graph(**backbone.graph_cfg).num_node
    persons = backbone.get('num_person', 2)
    channels = backbone.get('in_channels', 3)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 1, persons, frames, joints, channels,
                         generator=generator)
    samples = []
    for index in range(batch_size):
        sample = ActionDataSample()
        sample.set_gt_label(index % num_classes)
        samples.append(sample)
    return dict(inputs=list(inputs), data_samples=samples)


def saved_tensor_bytes(step: Callable[[], None]) -> int:
    """Bytes of the tensors autograd saves for backward during ``step``."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total


class _Arm:
    """One timed kind of step and its measurements."""

    def __init__(self, name: str, step: Callable[[], None]) -> None:
        self.name = name
        self.step = step
        self.seconds: List[float] = []
        self.memory_bytes = 0


class TrainingCostBenchmark:
    """Times the arms of one CoCoDiff config in turns (see module doc).

    Args:
        cfg (Config): A CoCoDiff config (``DiffusionAugmentedHead``).
        device (str): ``'cpu'`` or ``'cuda'``.
        batch_size (int): Clips per step.
        frames (int, optional): Frames per clip. Defaults to ``None`` (the
            training pipeline's ``clip_len``).
        amp (bool): Mixed precision through ``AmpOptimWrapper`` (CUDA).
            Defaults to ``False``.
        literal_options (dict, optional): Config options of the
            paper-literal stage-2 arm; ``None`` leaves the arm out.
            Defaults to ``None``.
    """

    def __init__(self,
                 cfg: Config,
                 device: str,
                 batch_size: int,
                 frames: Optional[int] = None,
                 amp: bool = False,
                 literal_options: Optional[Dict] = None) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.frames = frames or clip_len_of(cfg)
        self.amp = amp
        self.model, self.wrapper = self._build(cfg)
        head = self.model.cls_head
        self.batch = random_batch(cfg, batch_size, self.frames,
                                  head.num_classes)
        self.arms = [
            _Arm('baseline', self._train_step(self.model, self.wrapper,
                                              'classify')),
            _Arm('stage1_cached', self._cached_stage1_step()),
            _Arm('extract', self._extract_step()),
            _Arm('stage2', self._train_step(self.model, self.wrapper,
                                            'joint')),
        ]
        if literal_options is not None:
            literal_cfg = Config(cfg.to_dict())
            literal_cfg.merge_from_dict(literal_options)
            literal, literal_wrapper = self._build(literal_cfg)
            self.arms.append(
                _Arm('stage2_literal',
                     self._train_step(literal, literal_wrapper, 'joint')))

    def _build(self, cfg: Config):
        """The model (train mode, text bank built) and its optim wrapper."""
        model = MODELS.build(cfg.model).to(self.device)
        model.init_weights()
        model.train()
        model.cls_head.text_bank.build()
        model.cls_head.text_bank.to(self.device)
        wrapper_cfg = dict(cfg.optim_wrapper)
        if self.amp:
            wrapper_cfg['type'] = 'AmpOptimWrapper'
        return model, build_optim_wrapper(model, wrapper_cfg)

    def _train_step(self, model: nn.Module, wrapper,
                    objective: str) -> Callable[[], None]:
        """A full ``train_step`` of ``model`` under ``objective``."""

        def step() -> None:
            model.cls_head.set_objective(objective)
            model.train_step(self.batch, optim_wrapper=wrapper)

        return step

    def _cached_stage1_step(self) -> Callable[[], None]:
        """A stage-1 step on pooled features, as ``TwoStageLoop`` runs it."""
        model, wrapper = self.model, self.wrapper
        head = model.cls_head
        with torch.no_grad():
            data = model.data_preprocessor(self.batch, training=False)
            pooled = head.pool_features(model.extract_feat(data['inputs'])[0])
            labels = head.labels_of(data['data_samples'], self.device)

        def step() -> None:
            head.set_objective('diffusion')
            with wrapper.optim_context(model):
                losses = head.loss_from_pooled(pooled, labels)
            parsed, _ = model.parse_losses(losses)
            wrapper.update_params(parsed)

        return step

    def _extract_step(self) -> Callable[[], None]:
        """One batch of the stage-1 feature extraction (no grad, eval)."""
        model = self.model

        def step() -> None:
            model.eval()
            with torch.no_grad():
                data = model.data_preprocessor(self.batch, training=False)
                feats, _ = model.extract_feat(data['inputs'])
                model.cls_head.pool_features(feats)
            model.train()

        return step

    def _synchronize(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def _measure_memory(self, arm: _Arm) -> None:
        if self.device.type == 'cuda':
            self._synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            arm.step()
            self._synchronize()
            arm.memory_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            arm.memory_bytes = saved_tensor_bytes(arm.step)

    def run(self, rounds: int, warmup: int,
            progress: Optional[Callable[[str], None]] = None) -> Dict:
        """Warm up, measure memory once per arm, then time ``rounds`` turns.

        Args:
            rounds (int): Measured rounds (one call of every arm each).
            warmup (int): Unmeasured rounds first.
            progress (Callable, optional): Called with a line per round.

        Returns:
            dict: ``arms`` (name -> median seconds, all seconds, memory
            bytes) and the settings.
        """
        for index in range(warmup):
            for arm in self.arms:
                arm.step()
            if progress:
                progress(f'warm-up round {index + 1}/{warmup}')
        for arm in self.arms:
            self._measure_memory(arm)
        for index in range(rounds):
            for arm in self.arms:
                self._synchronize()
                start = time.perf_counter()
                arm.step()
                self._synchronize()
                arm.seconds.append(time.perf_counter() - start)
            if progress:
                progress(f'round {index + 1}/{rounds}: ' + ', '.join(
                    f'{arm.name} {arm.seconds[-1]:.3f} s'
                    for arm in self.arms))
        head = self.model.cls_head
        return dict(
            device=str(self.device),
            device_name=(torch.cuda.get_device_name(self.device)
                         if self.device.type == 'cuda' else 'cpu'),
            threads=torch.get_num_threads(),
            batch_size=self.batch_size,
            frames=self.frames,
            amp=self.amp,
            num_steps=head.diffusion.num_steps,
            denoiser=type(head.denoiser).__name__,
            generation=dict(head.generation),
            memory_kind=('peak CUDA allocation' if self.device.type == 'cuda'
                         else 'autograd saved tensors'),
            rounds=rounds,
            arms={
                arm.name: dict(
                    seconds=statistics.median(arm.seconds),
                    ratio=statistics.median(
                        mine / base for mine, base in zip(
                            arm.seconds, self.arms[0].seconds)),
                    all_seconds=arm.seconds,
                    memory_bytes=arm.memory_bytes)
                for arm in self.arms
            })


def whole_run_estimate(arms: Dict[str, Dict], train_cfg: Dict) -> Dict:
    """The config's whole two-stage run in baseline epochs.

    An epoch has the same number of iterations in every stage, so an epoch
    ratio is a step ratio. Stage 1 on cached features pays one extraction
    pass (one ``extract`` step per batch) once, then its cached steps.

    Args:
        arms (dict): ``arms`` of :meth:`TrainingCostBenchmark.run`.
        train_cfg (dict): The config's ``train_cfg`` (``TwoStageLoop``).

    Returns:
        dict: Step ratios to the baseline, the stage epochs, the run's
        cost against the baseline's run of the stage-2 epochs
        (``whole_run``), the paper's Table VI measure (one epoch of each
        stage against one baseline epoch, ``per_epoch_both_stages``), and
        the run from scratch with stage 0 (``with_stage0``).
    """
    ratio = {name: arm['ratio'] for name, arm in arms.items()}
    source = train_cfg.get('stage1_source', 'pretrained')
    stage1 = 0 if source == 'none' else train_cfg.get('stage1', {}).get(
        'epochs', 0)
    stage2 = train_cfg.get('stage2', {}).get('epochs', 0)
    stage0 = (train_cfg.get('stage0', {}).get('epochs', 0)
              if source == 'pretrained' and not train_cfg.get('pretrained')
              else 0)
    cached = train_cfg.get('cache_features', True)
    stage1_epoch = ratio['stage1_cached'] if cached else None
    extraction = ratio['extract'] if stage1 and cached else 0.0
    result = dict(
        ratios=ratio,
        stage_epochs=dict(stage0=stage0, stage1=stage1, stage2=stage2),
        stage1_epoch=stage1_epoch,
        extraction_epochs=extraction)
    if stage2 and stage1_epoch is not None:
        run = stage1 * stage1_epoch + extraction + stage2 * ratio['stage2']
        result['whole_run'] = run / stage2
        result['per_epoch_both_stages'] = (
            (stage1_epoch if stage1 else 0.0) + ratio['stage2'])
        result['with_stage0'] = (stage0 + run) / stage2
    return result


def format_report(config: str, result: Dict, estimate: Dict) -> str:
    """The benchmark's printed table."""
    arms = result['arms']
    base = arms['baseline']
    gib = 2**30 if result['device'].startswith('cuda') else 2**20
    unit = 'GiB' if gib == 2**30 else 'MiB'
    lines = [
        f'{config} on {result["device_name"]} ({result["threads"]} threads, '
        f'batch {result["batch_size"]}, {result["frames"]} frames, '
        f'T={result["num_steps"]}, {result["denoiser"]}, grad_steps='
        f'{result["generation"]["grad_steps"]}'
        f'{", AMP" if result["amp"] else ""}; median of '
        f'{result["rounds"]} rounds)',
        f'{"step":<34} {"s/step":>8} {"x base":>7} '
        f'{unit + " *":>10} {"x base":>7}',
    ]
    names = dict(
        baseline='baseline (GCNHead loss)',
        stage1_cached='stage 1, cached features',
        extract='stage-1 feature extraction',
        stage2='stage 2 (full objective)',
        stage2_literal='stage 2, paper-literal')
    for name, arm in arms.items():
        memory = arm['memory_bytes']
        memory_ratio = memory / base['memory_bytes'] \
            if base['memory_bytes'] else float('nan')
        lines.append(
            f'{names[name]:<34} {arm["seconds"]:8.3f} '
            f'{arm["ratio"]:7.3f} '
            f'{memory / gib:10.1f} {memory_ratio:7.2f}')
    lines.append(f'* {result["memory_kind"]}')
    epochs = estimate['stage_epochs']
    if 'whole_run' in estimate:
        lines += [
            '',
            f'stage-1 epoch on cached features / baseline epoch: '
            f'{estimate["stage1_epoch"]:.3f}',
            f'whole run: {epochs["stage1"]} stage-1 + {epochs["stage2"]} '
            f'stage-2 epochs (+ one extraction pass) = '
            f'{estimate["whole_run"]:.3f} x the baseline\'s '
            f'{epochs["stage2"]} epochs',
            f'one epoch of each stage / baseline epoch (paper Table VI: '
            f'1.37): {estimate["per_epoch_both_stages"]:.3f}',
        ]
        if epochs['stage0']:
            lines.append(
                f'from scratch (+ {epochs["stage0"]} stage-0 epochs, no '
                f'train_cfg.pretrained): {estimate["with_stage0"]:.3f} x')
    return '\n'.join(lines)
