"""The ``--help`` layout of every ``hf-dgm`` command (the top-level commands and the trainers' flags). It imports only
argparse, so ``hf-dgm --help`` stays fast."""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" after each flag's help, shown once and never as "None" or "": a flag whose default is
    None or empty, or whose help already says what its default is ("default: ...", "none: ..."), gets no second
    default (its help says what unset means)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, "") or "default:" in text or "none:" in text:
            return text
        return super()._get_help_string(action)
