"""Generate the coarse and fine class texts of a dataset with an LLM.

CoCoDiff guides its latent diffusion with two kinds of text per class, written
by a large language model (paper Section IV-C, Figure 4):

* *fine* texts: detailed descriptions of the body movement of the action;
* *coarse* texts: the action label and its synonyms.

This tool asks any OpenAI-compatible chat endpoint (``POST
<base-url>/chat/completions``) for both, validates the answers and writes a
class-text file in the schema of ``cocodiff_mm/texts/<name>.json``::

    {"name": ..., "source": ...,
     "classes": [{"label": ..., "coarse": [label, ...], "fine": [...]}, ...]}

Every accepted answer is appended to a JSON-lines cache (keyed by model,
prompt kind and label), so an interrupted run resumes without asking again.
The output is written only once ``load_class_texts`` accepts it, and texts
longer than the CLIP text encoder's context are asked for again. The API key
is read from an environment variable, never from the command line.

The logic lives in :mod:`cocodiff_mm.datasets.class_text_generation`; this
file is only the command line.

Examples::

    export OPENAI_API_KEY=...
    python tools/generate_texts.py --labels labels.txt --out my_texts.json \\
        --model gpt-3.5-turbo
    # regenerate the texts of a packaged file with a local server
    python tools/generate_texts.py \\
        --from-json cocodiff_mm/texts/utd_mhad.json --out /tmp/utd_mhad.json \\
        --base-url http://127.0.0.1:8000/v1 --model my-model
"""
import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` when
            ``None``. Defaults to ``None``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    # No abbreviations: a mistyped '--api-key SECRET' must fail, not be read
    # as '--api-key-env SECRET'.
    parser = argparse.ArgumentParser(
        description='Generate CoCoDiff coarse and fine class texts with an '
        'OpenAI-compatible chat endpoint.',
        allow_abbrev=False)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--labels', help='text file, one class label a line')
    source.add_argument(
        '--from-json', help='existing class-text JSON whose labels (and name) '
        'to use')
    parser.add_argument('--out', required=True, help='output JSON file')
    parser.add_argument(
        '--name', help='name field of the output (default: the name in '
        '--from-json, else the stem of --out)')
    parser.add_argument(
        '--cache', help='JSON-lines answer cache (default: <out stem>'
        '.cache.jsonl beside --out)')
    parser.add_argument(
        '--base-url', default='https://api.openai.com/v1',
        help='endpoint URL without /chat/completions '
        '(default: %(default)s)')
    parser.add_argument('--model', default='gpt-3.5-turbo',
                        help='model name (default: %(default)s)')
    parser.add_argument(
        '--api-key-env', default='OPENAI_API_KEY',
        help='environment variable holding the API key (default: '
        '%(default)s)')
    parser.add_argument('--num-fine', type=int, default=3,
                        help='fine texts per class (default: %(default)s)')
    parser.add_argument(
        '--num-coarse', type=int, default=6,
        help='coarse texts per class, the label included (default: '
        '%(default)s)')
    parser.add_argument(
        '--retries', type=int, default=5,
        help='retries of a failed request (default: %(default)s)')
    parser.add_argument(
        '--backoff', type=float, default=1.0,
        help='seconds before the first retry, doubled each time (default: '
        '%(default)s)')
    parser.add_argument(
        '--max-backoff', type=float, default=60.0,
        help='longest wait between retries in seconds (default: '
        '%(default)s)')
    parser.add_argument('--timeout', type=float, default=60.0,
                        help='seconds per request (default: %(default)s)')
    parser.add_argument(
        '--max-asks', type=int, default=3,
        help='prompts per class and kind before giving up on bad answers '
        '(default: %(default)s)')
    parser.add_argument('--temperature', type=float, default=0.7,
                        help='sampling temperature (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the tool.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` when
            ``None``. Defaults to ``None``.

    Returns:
        int: ``0`` on success, ``1`` when the texts could not be generated
        or written (the reason is printed to stderr; finished classes stay
        cached).
    """
    args = parse_args(argv)
    # Imported after parsing, so that --help and usage errors stay fast.
    from cocodiff_mm.datasets.class_text_generation import (
        AnswerCache, ChatClient, GenerationError, TextGenerator,
        default_cache_path, generate_text_file, read_labels_file,
        read_labels_json)

    out = Path(args.out)
    try:
        if args.labels:
            labels, name = read_labels_file(args.labels), out.stem
        else:
            labels, name = read_labels_json(args.from_json)
        name = args.name or name
        api_key = os.environ.get(args.api_key_env, '')
        if not api_key:
            print(f'warning: ${args.api_key_env} is not set; sending requests '
                  f'without an API key', file=sys.stderr)
        client = ChatClient(
            args.base_url, args.model, api_key=api_key,
            timeout=args.timeout, retries=args.retries,
            backoff=args.backoff, max_backoff=args.max_backoff,
            temperature=args.temperature)
        cache = AnswerCache(args.cache or default_cache_path(out))
        generator = TextGenerator(
            client, cache, num_fine=args.num_fine,
            num_coarse=args.num_coarse, max_asks=args.max_asks)
        texts = generate_text_file(labels, out, generator, name)
    except (GenerationError, ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {texts.num_classes} classes to {out} '
          f'({client.num_requests} request(s))', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
