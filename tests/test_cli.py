"""The drift command: a working extract/info, and one-line errors with exit code 2 for bad input."""

import json
import os
import subprocess
import sys

import pytest

from drift.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_extract_and_info(tiny_llama, tmp_path, capsys):
    out = tmp_path / "x.h5"
    code, stdout, _ = _run(capsys, "extract", "--model", str(tiny_llama), "--prompts", "builtin:prompts",
                           "--langs", "en,de", "--labels", "harmful", "--out", str(out), "--sites", "resid_post",
                           "--positions", "last,post_instruction", "--layers", "0,2", "--quiet")
    assert code == 0 and "wrote" in stdout and out.exists()
    code, stdout, _ = _run(capsys, "info", str(out))
    assert code == 0 and "de:100, en:100" in stdout and "layers     [0, 2]" in stdout
    code, stdout, _ = _run(capsys, "info", str(out), "--json")
    assert json.loads(stdout)["capture"]["positions"] == ["last", "post_instruction"]


def _jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


GOOD = '{"id": "a", "lang": "en", "label": "harmful", "text": "hello"}'


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_file", "prompt file not found"),
        ("malformed", "line 2"),
        ("bad_lang", "unknown language code 'xx'"),
        ("empty_prompt", "empty prompt text"),
        ("too_long", "more than the model's context"),
        ("bad_site", "unknown site"),
        ("bad_layer", "layer 40 does not exist"),
        ("bad_position", "unknown position"),
        ("existing_output", "already exists"),
        ("unknown_family", "unsupported model family 'opt'"),
        ("missing_model", "model directory not found"),
        ("bad_layers_syntax", "cannot read layers"),
        ("nothing_to_resume", "nothing to resume"),
    ],
)
def test_user_errors_are_one_line(case, message, tiny_llama, tmp_path, capsys):
    out = tmp_path / "out.h5"
    model, prompts, extra = str(tiny_llama), _jsonl(tmp_path / "p.jsonl", [GOOD]), []
    if case == "missing_file":
        prompts = str(tmp_path / "nope.jsonl")
    elif case == "malformed":
        prompts = _jsonl(tmp_path / "m.jsonl", [GOOD, '{"id": "b", "lang": '])
    elif case == "bad_lang":
        prompts = _jsonl(tmp_path / "l.jsonl", [GOOD.replace('"en"', '"xx"')])
    elif case == "empty_prompt":
        prompts = _jsonl(tmp_path / "e.jsonl", [GOOD.replace("hello", " ")])
    elif case == "too_long":
        prompts = _jsonl(tmp_path / "t.jsonl", [GOOD.replace("hello", "word " * 400)])
    elif case == "bad_site":
        extra = ["--sites", "resid_foo"]
    elif case == "bad_layer":
        extra = ["--layers", "40"]
    elif case == "bad_position":
        extra = ["--positions", "first"]
    elif case == "existing_output":
        out.write_bytes(b"precious")
    elif case == "unknown_family":
        import transformers

        cfg = transformers.OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                     num_attention_heads=2, word_embed_proj_dim=16)
        transformers.OPTForCausalLM(cfg).save_pretrained(tmp_path / "opt")
        (tmp_path / "opt" / "tokenizer_config.json").write_text("{}")
        for f in tiny_llama.iterdir():
            if f.name.startswith(("tokenizer", "special_tokens")):
                (tmp_path / "opt" / f.name).write_bytes(f.read_bytes())
        model = str(tmp_path / "opt")
    elif case == "missing_model":
        model = str(tmp_path / "no-model")
    elif case == "bad_layers_syntax":
        extra = ["--layers", "one"]
    elif case == "nothing_to_resume":
        extra = ["--resume"]
    argv = ["extract", "--model", model, "--prompts", prompts, "--out", str(out), "--quiet", *extra]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    _, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    if case == "existing_output":
        assert out.read_bytes() == b"precious"
    else:
        assert not out.exists()


def test_console_script_exit_code(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "drift.cli", "info", str(tmp_path / "none.h5")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("drift: error: activation store not found")


def test_output_into_a_closed_pipe_is_not_an_error(tiny_llama, tmp_path):
    import drift

    store = drift.extract(drift.load_model(str(tiny_llama), device="cpu", dtype="float32"),
                          drift.load_prompts("builtin:prompts?lang=en")[:3], tmp_path / "s.h5", progress=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} -m drift.cli info {store} | head -1"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("store") and "Traceback" not in proc.stderr
