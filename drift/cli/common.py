"""Argument helpers shared by the ``drift`` subcommands."""

from __future__ import annotations

import argparse
import re


def csv_list(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def layer_list(value: str) -> list[int] | None:
    """Parse ``all``, ``0,4,8``, ``-1`` or ``0-11`` (ranges inclusive) into layer indices."""
    if value.strip() == "all":
        return None
    out: list[int] = []
    for part in csv_list(value):
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            out.extend(range(int(m[1]), int(m[2]) + 1))
        elif re.fullmatch(r"-?\d+", part):
            out.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"cannot read layers {value!r}: use 'all', '0,4,8', '-1' or '0-11'")
    return out


def offset_list(value: str) -> list[int]:
    """Parse post-instruction offsets such as ``-1,-2``."""
    out = [int(x) for x in csv_list(value) if re.fullmatch(r"-\d+", x)]
    if len(out) != len(csv_list(value)) or not out:
        raise argparse.ArgumentTypeError(f"cannot read positions {value!r}: give negative offsets such as -1,-2")
    return out


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="hub id, local dir, .gguf file, or 'default' (SmolLM2-135M)")
    p.add_argument("--adapter", help="PEFT adapter directory merged into the model")
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--dtype", default="auto", help="compute dtype: float32, float16, bfloat16, auto")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, auto")
    p.add_argument("--no-chat-template", action="store_true", help="use the plain 'User: ... Assistant:' format")
    p.add_argument("--plain-format", help="format for models without a chat template; must contain {instruction}")
    p.add_argument("--system-prompt", help="system message (default: the template's own)")
    p.add_argument("--thinking", choices=["on", "off"], help="the chat template's thinking switch (Qwen3)")


def chat_options(args: argparse.Namespace):
    from drift.models.chat import PLAIN_FORMAT, ChatOptions

    return ChatOptions(
        use_chat_template=not args.no_chat_template,
        system_prompt=args.system_prompt,
        enable_thinking=None if args.thinking is None else args.thinking == "on",
        plain_format=(args.plain_format or PLAIN_FORMAT).replace("\\n", "\n"),
    )


