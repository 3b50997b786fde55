"""A lazily built, cached bank of class-text embeddings.

:class:`TextEmbeddingBank` holds the embeddings of every coarse and fine text
of every class and hands out one embedding per sample (``embed``). It is
built on first use: the class texts are read, the bank file in ``cache_dir``
is loaded when its metadata matches the texts and the encoder, and otherwise
every text is encoded once and the bank file is written (safetensors, no
pickle). Inference never builds it, so a trained checkpoint needs neither
texts nor a text encoder.
"""
import hashlib
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import nn

from ...utils.atomic_write import atomic_path
from ...utils.checks import check_choice, check_int
from .class_texts import (ClassChoice, ClassTexts, check_class_choice,
                          load_class_texts)
from .encoders import (TextEncoder, as_encoder_cfg, build_text_encoder,
                       text_encoder_dim)
from .registry import TEXT_ENCODERS, registered_name

#: Version of the bank file layout; a change invalidates cached files.
BANK_FORMAT_VERSION = '1'

#: Kinds of text in a bank.
KINDS = ('fine', 'coarse')

#: Ways of turning a class's texts into one embedding per sample.
SAMPLE_MODES = ('random', 'mean')

#: Tensors stored in a bank file.
BANK_TENSORS = ('fine_embeds', 'fine_counts', 'coarse_embeds',
                'coarse_counts')

#: Metadata a cached bank must match to be reused.
MATCHED_METADATA = ('format_version', 'texts_name', 'texts_digest',
                    'num_classes', 'encoder', 'model_name', 'weights_id',
                    'untrained', 'dim')

UNTRAINED_MESSAGE = ('text encoder is UNTRAINED (random weights) — testing '
                     'only')


def bank_key(texts_digest: str, encoder: str, model_name: str,
             weights_id: str) -> str:
    """Short hash naming a bank file for one texts/encoder combination.

    Args:
        texts_digest (str): :meth:`ClassTexts.digest` of the texts.
        encoder (str): Encoder name.
        model_name (str): Encoder architecture.
        weights_id (str): Identity of the encoder weights.

    Returns:
        str: 12 hexadecimal digits.
    """
    content = json.dumps([BANK_FORMAT_VERSION, texts_digest, encoder,
                          model_name, weights_id])
    return hashlib.sha256(content.encode('utf-8')).hexdigest()[:12]


def _safe(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', text).strip('_') or 'x'


def bank_file_name(texts: ClassTexts, encoder: TextEncoder) -> str:
    """File name of the bank of ``texts`` encoded by ``encoder``.

    Args:
        texts (ClassTexts): The class texts.
        encoder (TextEncoder): The encoder.

    Returns:
        str: e.g. ``'ntu120-120c-clip-ViT-B-32-0123456789ab.safetensors'``.
    """
    key = bank_key(texts.digest(), encoder.name, encoder.model_name,
                   encoder.weights_id)
    return (f'{_safe(texts.name)}-{texts.num_classes}c-{_safe(encoder.name)}'
            f'-{_safe(encoder.model_name)}-{key}.safetensors')


def save_bank_file(path: Union[str, Path], tensors: Mapping[str, torch.Tensor],
                   metadata: Mapping[str, str]) -> Path:
    """Write a bank file atomically (safetensors; no pickle).

    Args:
        path (str | Path): Destination; its folder is created.
        tensors (Mapping[str, torch.Tensor]): ``fine_embeds``,
            ``coarse_embeds`` (float32 ``(n, dim)``) and ``fine_counts``,
            ``coarse_counts`` (int64 ``(num_classes,)``, texts per class).
        metadata (Mapping[str, str]): String metadata stored in the header.

    Returns:
        Path: ``path``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    _check_bank_tensors(path, tensors)
    payload = {
        name: tensors[name].detach().to('cpu').contiguous()
        for name in BANK_TENSORS
    }
    with atomic_path(path) as tmp_name:
        save_file(payload, tmp_name,
                  metadata={str(k): str(v) for k, v in metadata.items()})
    return path


def load_bank_file(path: Union[str, Path]
                   ) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Read a bank file written by :func:`save_bank_file`.

    Args:
        path (str | Path): The file.

    Returns:
        tuple[dict, dict]: The tensors (on the CPU) and the metadata.

    Raises:
        ValueError: If the file is not a valid bank file.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework='pt') as file:
            metadata = dict(file.metadata() or {})
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f'{path}: not a readable safetensors bank file: '
                         f'{exc}') from exc
    _check_bank_tensors(path, tensors)
    return tensors, metadata


def _check_bank_tensors(path: Path, tensors: Mapping[str,
                                                     torch.Tensor]) -> None:
    """Check the names, shapes and dtypes of a bank's tensors."""
    missing = [name for name in BANK_TENSORS if name not in tensors]
    if missing:
        raise ValueError(f'{path}: bank tensors missing: {missing}')
    dims = set()
    num_classes = set()
    for kind in KINDS:
        embeds = tensors[f'{kind}_embeds']
        counts = tensors[f'{kind}_counts']
        if embeds.dim() != 2 or not embeds.is_floating_point():
            raise ValueError(f'{path}: {kind}_embeds must be a 2-D float '
                             f'tensor, got {tuple(embeds.shape)} '
                             f'{embeds.dtype}')
        if counts.dim() != 1 or counts.dtype != torch.int64:
            raise ValueError(f'{path}: {kind}_counts must be a 1-D int64 '
                             f'tensor, got {tuple(counts.shape)} '
                             f'{counts.dtype}')
        if counts.numel() == 0 or int(counts.min()) < 1:
            raise ValueError(f'{path}: every class needs at least one '
                             f'{kind} text')
        if int(counts.sum()) != embeds.shape[0]:
            raise ValueError(f'{path}: {kind}_counts sum to '
                             f'{int(counts.sum())} but {kind}_embeds has '
                             f'{embeds.shape[0]} rows')
        dims.add(embeds.shape[1])
        num_classes.add(counts.numel())
    if len(dims) != 1 or len(num_classes) != 1:
        raise ValueError(f'{path}: fine and coarse parts disagree on dim '
                         f'{sorted(dims)} or class count '
                         f'{sorted(num_classes)}')


def encode_class_texts(encoder: TextEncoder,
                       texts: ClassTexts,
                       batch_size: int = 64) -> Dict[str, torch.Tensor]:
    """Encode every distinct coarse and fine text once.

    Args:
        encoder (TextEncoder): The encoder.
        texts (ClassTexts): The class texts.
        batch_size (int): Texts per forward pass. Defaults to ``64``.

    Returns:
        dict[str, torch.Tensor]: The tensors of :data:`BANK_TENSORS`,
        embeddings grouped by class in class order.
    """
    per_kind = {'fine': texts.fine, 'coarse': texts.coarse}
    flat = {kind: [t for group in groups for t in group]
            for kind, groups in per_kind.items()}
    unique = list(dict.fromkeys(flat['fine'] + flat['coarse']))
    row = {text: index for index, text in enumerate(unique)}
    embeddings = torch.from_numpy(
        encoder.encode(unique, batch_size=batch_size))
    tensors = {}
    for kind, groups in per_kind.items():
        index = torch.tensor([row[t] for t in flat[kind]], dtype=torch.long)
        tensors[f'{kind}_embeds'] = embeddings[index].contiguous()
        tensors[f'{kind}_counts'] = torch.tensor(
            [len(group) for group in groups], dtype=torch.int64)
    return tensors


class TextEmbeddingBank(nn.Module):
    """Embeddings of every class's coarse and fine texts, built on demand.

    Constructing the bank reads nothing and encodes nothing; :meth:`build`
    (called by :meth:`embed` when needed) does, once. The embeddings are
    non-persistent buffers, so they follow ``.to(device)`` but never enter a
    checkpoint: a trained model loads into the stock recognizer.

    Args:
        texts (str): Class-text name in ``cocodiff_mm/texts`` or a JSON path.
            Defaults to ``'ntu120'``.
        encoder (str | dict): A name registered in ``TEXT_ENCODERS``:
            ``'clip'``, ``'minilm'``, ``'random'`` (untrained, testing only)
            or one added through ``custom_imports``; or
            ``dict(type=name, **arguments)`` with more arguments of the
            encoder. Defaults to ``'clip'``.
        model_name (str): open_clip architecture for ``'clip'`` and
            ``'random'``; passed to the encoders that list it in their
            ``bank_arguments``. Defaults to ``'ViT-B-32'``.
        pretrained (str, optional): open_clip tag or local weights file for
            ``'clip'``; passed to the encoders that list it in their
            ``bank_arguments``. Defaults to ``'openai'``.
        num_classes (int, optional): Number of classes of the bank; the
            head sets its own. The texts must have exactly this many
            classes unless ``classes`` says which to take; ``None`` takes
            what ``classes`` says. Defaults to ``None``.
        classes (int | list[int], optional): Which classes of the texts the
            bank takes: ``n`` for the first ``n`` (NTU-60 is ``'ntu120'``
            with ``classes=60``) or a list of class indices of the file, in
            the head's class order. ``None`` takes all of them, and a file
            with more classes than ``num_classes`` is refused. Defaults to
            ``None``.
        sample_mode (str): ``'random'``: each sample gets one of its class's
            texts, drawn uniformly; ``'mean'``: the L2-normalised mean of the
            class's text embeddings. Defaults to ``'random'``.
        cache_dir (str, optional): Folder of the bank files; ``None``
            encodes on every build and writes nothing. Defaults to
            ``'data/text_banks'``.
        encode_device (str, optional): Device the encoder runs on when
            encoding; ``None`` picks CUDA when available. Defaults to
            ``None``.
        batch_size (int): Texts per encoder forward pass. Defaults to ``64``.
    """

    def __init__(self,
                 texts: str = 'ntu120',
                 encoder: Union[str, Mapping[str, Any]] = 'clip',
                 model_name: str = 'ViT-B-32',
                 pretrained: Optional[str] = 'openai',
                 num_classes: Optional[int] = None,
                 classes: ClassChoice = None,
                 sample_mode: str = 'random',
                 cache_dir: Optional[str] = 'data/text_banks',
                 encode_device: Optional[str] = None,
                 batch_size: int = 64) -> None:
        super().__init__()
        if not isinstance(texts, (str, os.PathLike)) or not str(texts):
            raise ValueError(f'texts must be a name or a path, got {texts!r}')
        encoder_cfg = as_encoder_cfg(encoder)
        if not isinstance(encoder_cfg['type'], str):
            raise TypeError(
                'text_bank.encoder must be a registered name or '
                f"dict(type=<registered name>, ...), got {encoder!r}")
        # An unknown name raises here, listing the registered ones.
        encoder_name = registered_name(TEXT_ENCODERS, encoder_cfg.pop('type'))
        check_choice(sample_mode, SAMPLE_MODES, 'text_bank.sample_mode')
        check_int(num_classes, 'text_bank.num_classes', minimum=1,
                  allow_none=True)
        classes = check_class_choice(classes)
        check_int(batch_size, 'text_bank.batch_size', minimum=1)
        self.texts = str(texts)
        self.encoder_name = encoder_name
        #: The encoder class registered as :attr:`encoder_name`.
        self.encoder_cls = TEXT_ENCODERS.module_dict[encoder_name]
        #: Encoder arguments of the dict form of ``encoder``.
        self.encoder_args = encoder_cfg
        self.model_name = model_name
        self.pretrained = pretrained
        self.requested_num_classes = num_classes
        #: Which classes of the texts the bank takes (``None``: all).
        self.classes = classes
        self.sample_mode = sample_mode
        self.cache_dir = cache_dir
        self.encode_device = encode_device
        self.batch_size = batch_size

        self._class_texts: Optional[ClassTexts] = None
        self._encoder: Optional[TextEncoder] = None
        self._built = False
        self._dim: Optional[int] = None
        self._untrained: Optional[bool] = None
        #: Bank file used by the last build (``None`` without a cache).
        self.bank_path: Optional[Path] = None
        #: Whether the last build read the bank file instead of encoding.
        self.loaded_from_cache = False
        #: Metadata of the built bank.
        self.metadata: Dict[str, str] = {}
        for kind in KINDS:
            self.register_buffer(f'{kind}_embeds', torch.zeros(0, 0),
                                 persistent=False)
            self.register_buffer(f'{kind}_means', torch.zeros(0, 0),
                                 persistent=False)
            self.register_buffer(f'{kind}_offsets',
                                 torch.zeros(0, dtype=torch.long),
                                 persistent=False)
            self.register_buffer(f'{kind}_counts',
                                 torch.zeros(0, dtype=torch.long),
                                 persistent=False)

    # ------------------------------------------------------------------
    # Cheap properties (no encoding)
    # ------------------------------------------------------------------
    @property
    def is_built(self) -> bool:
        """bool: Whether the embeddings are in place."""
        return self._built

    def load_texts(self) -> ClassTexts:
        """Read the class texts (cached): the ``classes`` of the file.

        Returns:
            ClassTexts: The texts of the bank's classes.

        Raises:
            ValueError: If the file's classes do not fit ``num_classes`` and
                ``classes`` (:meth:`ClassTexts.select`).
        """
        if self._class_texts is None:
            self._class_texts = load_class_texts(
                self.texts, self.requested_num_classes, self.classes)
        return self._class_texts

    @property
    def num_classes(self) -> int:
        """int: Number of classes (reads the texts if not given or built)."""
        if self._built:
            return int(self.fine_counts.numel())
        if self.requested_num_classes is not None:
            return self.requested_num_classes
        if self.classes is not None:
            return self.classes if isinstance(self.classes, int) \
                else len(self.classes)
        return self.load_texts().num_classes

    def encoder_kwargs(self) -> Dict[str, Any]:
        """Arguments the encoder is built with.

        Returns:
            dict: ``device`` (:attr:`encode_device`), the bank arguments the
            encoder class lists in ``bank_arguments`` (``model_name``,
            ``pretrained``), then the arguments of the dict form of
            ``encoder``.
        """
        kwargs = dict(device=self.encode_device)
        for name in self.encoder_cls.bank_arguments:
            kwargs[name] = getattr(self, name)
        kwargs.update(self.encoder_args)
        return kwargs

    @property
    def encoder(self) -> TextEncoder:
        """TextEncoder: The encoder (constructed, weights not loaded)."""
        if self._encoder is None:
            self._encoder = build_text_encoder(self.encoder_name,
                                               **self.encoder_kwargs())
        return self._encoder

    @property
    def dim(self) -> int:
        """int: Embedding size; known from the encoder and its arguments
        alone, so reading it needs neither texts nor encoder weights."""
        if self._dim is None:
            self._dim = text_encoder_dim(self.encoder_name,
                                         **self.encoder_kwargs())
        return self._dim

    @property
    def untrained(self) -> bool:
        """bool: Whether the encoder has random weights (testing only)."""
        if self._untrained is None:
            self._untrained = bool(self.encoder_cls.untrained)
        return self._untrained

    # ------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------
    def expected_metadata(self) -> Dict[str, str]:
        """Metadata a bank file must carry to be reused for this bank.

        Returns:
            dict[str, str]: The :data:`MATCHED_METADATA` values, plus the
            texts file and source (informative).
        """
        texts = self.load_texts()
        encoder = self.encoder
        return dict(
            format_version=BANK_FORMAT_VERSION,
            texts_name=texts.name,
            texts_digest=texts.digest(),
            num_classes=str(texts.num_classes),
            encoder=encoder.name,
            model_name=encoder.model_name,
            weights_id=encoder.weights_id,
            untrained=str(bool(encoder.untrained)).lower(),
            dim=str(int(encoder.dim)),
            texts_path=texts.path,
            texts_source=texts.source)

    def build(self, rebuild: bool = False) -> 'TextEmbeddingBank':
        """Load or compute the embeddings (idempotent).

        Args:
            rebuild (bool): Encode again even if a matching bank file
                exists. Defaults to ``False``.

        Returns:
            TextEmbeddingBank: ``self``.
        """
        if self._built and not rebuild:
            return self
        texts = self.load_texts()
        encoder = self.encoder
        metadata = self.expected_metadata()
        path = None
        if self.cache_dir is not None:
            path = Path(self.cache_dir) / bank_file_name(texts, encoder)
        tensors = None
        if path is not None and path.is_file() and not rebuild:
            tensors = self._read_matching(path, metadata)
        self.loaded_from_cache = tensors is not None
        if tensors is None:
            print_log(
                f'text bank {self.texts!r}: encoding {texts.num_classes} '
                f'classes with {encoder.name} {encoder.model_name} '
                f'(weights {encoder.weights_id})', logger='current')
            tensors = encode_class_texts(encoder, texts, self.batch_size)
            if path is not None:
                save_bank_file(path, tensors, metadata)
        built_dim = int(tensors['fine_embeds'].shape[1])
        if self._dim is not None and built_dim != self._dim:
            raise RuntimeError(
                f'text bank {self.texts!r}: the {encoder.name} encoder gives '
                f'{built_dim}-d embeddings but {self._dim} was reported '
                'before building')
        self._set_tensors(tensors)
        self.metadata = metadata
        self.bank_path = path
        self._dim = built_dim
        self._untrained = bool(encoder.untrained)
        self._built = True
        self._encoder = None  # frees the encoder weights
        print_log(
            f'text bank {self.texts!r}: {texts.num_classes} classes, '
            f'{int(self.fine_counts.sum())} fine / '
            f'{int(self.coarse_counts.sum())} coarse texts, dim {self._dim}, '
            f'{"loaded from" if self.loaded_from_cache else "saved to"} '
            f'{path if path is not None else "(no cache)"}',
            logger='current')
        if self._untrained:
            warnings.warn(UNTRAINED_MESSAGE, UserWarning, stacklevel=2)
            print_log(UNTRAINED_MESSAGE, logger='current',
                      level=logging.WARNING)
        return self

    def _read_matching(self, path: Path, metadata: Mapping[str, str]
                       ) -> Optional[Dict[str, torch.Tensor]]:
        """The tensors of ``path`` if its metadata matches, else ``None``."""
        try:
            tensors, stored = load_bank_file(path)
        except ValueError as exc:
            print_log(f'text bank: ignoring unreadable {path}: {exc}',
                      logger='current', level=logging.WARNING)
            return None
        stale = [key for key in MATCHED_METADATA
                 if stored.get(key) != metadata[key]]
        if not stale and (tensors['fine_embeds'].shape[1] !=
                          int(metadata['dim'])):
            stale = ['dim']
        if stale:
            print_log(f'text bank: {path} does not match ({stale}); '
                      'encoding again', logger='current',
                      level=logging.WARNING)
            return None
        return tensors

    def _set_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Install the bank tensors as buffers on the bank's device."""
        device = self.fine_embeds.device
        for kind in KINDS:
            embeds = tensors[f'{kind}_embeds'].to(torch.float32)
            counts = tensors[f'{kind}_counts'].to(torch.long)
            offsets = torch.cumsum(counts, 0) - counts
            owner = torch.repeat_interleave(
                torch.arange(counts.numel()), counts)
            sums = torch.zeros(counts.numel(), embeds.shape[1]).index_add_(
                0, owner, embeds)
            means = F.normalize(sums / counts[:, None].to(sums.dtype),
                                dim=-1)
            setattr(self, f'{kind}_embeds', embeds.to(device))
            setattr(self, f'{kind}_means', means.to(device))
            setattr(self, f'{kind}_offsets', offsets.to(device))
            setattr(self, f'{kind}_counts', counts.to(device))

    # ------------------------------------------------------------------
    # Use
    # ------------------------------------------------------------------
    def embed(self,
              labels: torch.Tensor,
              kind: str,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One text embedding per sample of its class.

        Args:
            labels (torch.Tensor): Integer class indices, shape ``(N,)``.
            kind (str): ``'fine'`` or ``'coarse'``.
            generator (torch.Generator, optional): RNG of the draws in
                ``'random'`` sample mode; ``None`` uses torch's default RNG.
                Defaults to ``None``.

        Returns:
            torch.Tensor: ``(N, dim)`` unit-norm embeddings on
            ``labels.device``.

        Raises:
            ValueError: For an unknown ``kind``, a label tensor that is not a
                1-D integer tensor, or labels outside ``0 .. num_classes-1``.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be 'fine' or 'coarse', got {kind!r}")
        if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or \
                labels.is_floating_point() or labels.is_complex() or \
                labels.dtype == torch.bool:
            raise ValueError('labels must be a 1-D integer tensor, got '
                             f'{getattr(labels, "shape", type(labels))} '
                             f'{getattr(labels, "dtype", "")}')
        self.build()
        num_classes = self.num_classes
        # Checked on the CPU only: on a GPU it would cost a host sync every
        # training step, and an out-of-range index fails there anyway.
        if labels.numel() and labels.device.type == 'cpu' and (
                int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(
                f'labels must lie in 0..{num_classes - 1} (text bank '
                f'{self.texts!r} has {num_classes} classes), got '
                f'min {int(labels.min())}, max {int(labels.max())}')
        if self.fine_embeds.device != labels.device:
            self._move_buffers(labels.device)
        labels = labels.long()
        if self.sample_mode == 'mean':
            return getattr(self, f'{kind}_means')[labels]
        counts = getattr(self, f'{kind}_counts')[labels]
        offsets = getattr(self, f'{kind}_offsets')[labels]
        draw_device = generator.device if generator is not None \
            else labels.device
        uniform = torch.rand(labels.shape, generator=generator,
                             device=draw_device).to(labels.device)
        picks = torch.minimum((uniform * counts).long(), counts - 1)
        return getattr(self, f'{kind}_embeds')[offsets + picks]

    def _move_buffers(self, device: torch.device) -> None:
        for name, buffer in list(self._buffers.items()):
            if buffer is not None:
                self._buffers[name] = buffer.to(device)

    def extra_repr(self) -> str:
        encoder = (dict(type=self.encoder_name, **self.encoder_args)
                   if self.encoder_args else self.encoder_name)
        return (f'texts={self.texts!r}, encoder={encoder!r}, '
                f'model_name={self.model_name!r}, '
                f'pretrained={self.pretrained!r}, '
                f'num_classes={self.requested_num_classes}, '
                f'classes={self.classes!r}, '
                f'sample_mode={self.sample_mode!r}, built={self._built}')
