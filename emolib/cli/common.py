"""What every `emolib` command shares: the usage error (exit status 2), stderr messages, the recognizer."""
from __future__ import annotations

from emolib.core.quiet import print_stderr


class UsageError(Exception):
    """Bad option values found after parsing (unknown model, ...): exit status 2."""


def err(msg: str) -> None:
    print_stderr(f"emolib: {msg}")    # not into a worker thread's capture of a decoder's messages


def recognizer_from_args(args, **kw):
    from emolib.inference.recognizer import EmotionRecognizer
    try:
        # --model's default is the recognizer's (DEFAULT_MODEL), not a copy: None lets it choose.
        model = {} if args.model is None else {"model": args.model}
        return EmotionRecognizer(detector=args.detector, **model, **kw)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise UsageError(str(e).strip("'\"")) from None
