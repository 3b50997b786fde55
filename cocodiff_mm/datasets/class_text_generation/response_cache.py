"""The JSON-lines cache of accepted LLM answers, so a run can resume."""
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple, Union


def default_cache_path(out: Union[str, Path]) -> Path:
    """The cache file used for an output file when none is given.

    Args:
        out (str | Path): The class-text file being generated.

    Returns:
        Path: ``<out stem>.cache.jsonl`` beside ``out``.
    """
    out = Path(out)
    return out.with_name(f'{out.stem}.cache.jsonl')


class AnswerCache:
    """Accepted answers in a JSON-lines file, keyed by model, kind, label.

    Every :meth:`put` appends one line and flushes it to disk, so the cache
    survives an interruption; a later line overrides an earlier one with the
    same key. Unreadable lines (e.g. one cut short by a kill) are skipped with
    a warning.

    Args:
        path (str | Path): The cache file; created on the first :meth:`put`.
        log (TextIO, optional): Stream for warnings. Defaults to ``None``
            (``sys.stderr``).
    """

    def __init__(self,
                 path: Union[str, Path],
                 log: Optional[TextIO] = None) -> None:
        self.path = Path(path)
        self.log = log
        self._entries: Dict[Tuple[str, str, str], List[str]] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        """Read the file's entries; later lines override earlier ones."""
        lines = self.path.read_text(encoding='utf-8').splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = (record['model'], record['kind'], record['label'])
                texts = record['texts']
                if not (all(isinstance(k, str) for k in key)
                        and isinstance(texts, list)
                        and all(isinstance(t, str) for t in texts)):
                    raise TypeError('wrong field types')
            except (ValueError, KeyError, TypeError) as exc:
                print(f'warning: {self.path}:{number}: skipping an unreadable '
                      f'cache line ({exc})', file=self.log or sys.stderr)
                continue
            self._entries[key] = texts

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model: str, kind: str, label: str) -> Optional[List[str]]:
        """The cached texts, or ``None``.

        Args:
            model (str): Model name.
            kind (str): Prompt kind, ``'fine'`` or ``'coarse'``.
            label (str): Class label.

        Returns:
            list[str] | None: A copy of the cached texts.
        """
        texts = self._entries.get((model, kind, label))
        return None if texts is None else list(texts)

    def put(self, model: str, kind: str, label: str,
            texts: Sequence[str]) -> None:
        """Store texts and append them to the file at once.

        Args:
            model (str): Model name.
            kind (str): Prompt kind, ``'fine'`` or ``'coarse'``.
            label (str): Class label.
            texts (Sequence[str]): The accepted texts.
        """
        self._entries[(model, kind, label)] = list(texts)
        record = {'model': model, 'kind': kind, 'label': label,
                  'texts': list(texts)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Start on a fresh line if an interrupted write left half a line.
        needs_newline = False
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, 'rb') as handle:
                handle.seek(-1, os.SEEK_END)
                needs_newline = handle.read(1) != b'\n'
        with open(self.path, 'a', encoding='utf-8') as handle:
            if needs_newline:
                handle.write('\n')
            handle.write(json.dumps(record, ensure_ascii=False) + '\n')
            handle.flush()
            os.fsync(handle.fileno())
