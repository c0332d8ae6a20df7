#!/usr/bin/env python3
"""Reference renderer for the chat-template tests.

Renders every `*.jinja` template in a directory for every conversation in
`template_conversations.json`, with add_generation_prompt off and on, the way
Hugging Face transformers renders chat templates:

- ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
  loopcontrols extension and a `{% generation %}` tag that only passes its body
  through (transformers' AssistantTracker when no assistant mask is requested);
- `tojson` replaced by json.dumps(x, ensure_ascii=False, indent, separators, sort_keys);
- globals `raise_exception` (raises TemplateError) and `strftime_now`;
- render(messages=..., tools=None or list, documents=None, add_generation_prompt=...,
  bos_token=..., eos_token=...).

The one deliberate difference: `strftime_now` formats a fixed date taken from the
conversations file instead of datetime.now(), so both sides render the same text.

A conversation's "extra" object is passed as further template variables
(transformers' **kwargs, e.g. enable_thinking).

Usage:
  template_oracle.py TEMPLATE_DIR CONVERSATIONS_JSON
      Prints {"results": [{"template", "conversation", "add_generation_prompt",
      "output" | "error"}]}, one row per *.jinja file, conversation and flag.
  template_oracle.py --gguf MODEL_GGUF CONVERSATIONS_JSON
      Reads tokenizer.chat_template and the BOS/EOS token texts with the `gguf`
      package and renders them the same way: prints {"bos_token", "eos_token",
      "results": [...]}, or {"missing": true} if the model has no template.
  template_oracle.py --snippets SNIPPETS_JSON CONVERSATIONS_JSON
      Renders each {"name", "source", "vars"} snippet with no messages, no tools,
      add_generation_prompt off and its vars as further template variables; prints
      {"results": [{"name", "output" | "error"}]}.
"""

import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationPassThrough(Extension):
    """The `{% generation %}...{% endgeneration %}` tag, rendering its body as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_pass_through")
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _pass_through(self, caller):
        return caller()


def make_environment(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    def strftime_now(format):
        return now.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationPassThrough, loopcontrols],
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_all(env, name, source, spec, bos_token, eos_token):
    """Rows for one template over every conversation, flag off and on."""
    try:
        template = env.from_string(source)
        compile_error = None
    except Exception as e:  # noqa: BLE001 - any failure is a result to report
        compile_error = f"{type(e).__name__}: {e}"
    rows = []
    for conv in spec["conversations"]:
        for agp in (False, True):
            row = {
                "template": name,
                "conversation": conv["name"],
                "add_generation_prompt": agp,
            }
            if compile_error is not None:
                row["error"] = compile_error
            else:
                try:
                    row["output"] = template.render(
                        messages=conv["messages"],
                        tools=spec["tools"] if conv.get("with_tools") else None,
                        documents=None,
                        add_generation_prompt=agp,
                        bos_token=bos_token,
                        eos_token=eos_token,
                        **conv.get("extra", {}),
                    )
                except Exception as e:  # noqa: BLE001
                    row["error"] = f"{type(e).__name__}: {e}"
            rows.append(row)
    return rows


def gguf_template(path):
    """(template source or None, bos text, eos text) as llama.cpp reads them."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields

    def value(key):
        field = fields.get(key)
        return None if field is None else field.contents()

    tokens = value("tokenizer.ggml.tokens") or []

    def token_text(key):
        token_id = value(key)
        if token_id is None or not 0 <= token_id < len(tokens):
            return ""
        return tokens[token_id]

    return (
        value("tokenizer.chat_template"),
        token_text("tokenizer.ggml.bos_token_id"),
        token_text("tokenizer.ggml.eos_token_id"),
    )


def main():
    spec = json.loads(Path(sys.argv[-1]).read_text(encoding="utf-8"))
    env = make_environment(datetime.fromisoformat(spec["now"]))
    if sys.argv[1] == "--snippets":
        snippets = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))["snippets"]
        rows = []
        for snippet in snippets:
            row = {"name": snippet["name"]}
            try:
                row["output"] = env.from_string(snippet["source"]).render(
                    messages=[],
                    tools=None,
                    documents=None,
                    add_generation_prompt=False,
                    bos_token=spec["bos_token"],
                    eos_token=spec["eos_token"],
                    **snippet["vars"],
                )
            except Exception as e:  # noqa: BLE001
                row["error"] = f"{type(e).__name__}: {e}"
            rows.append(row)
        out = {"results": rows}
    elif sys.argv[1] == "--gguf":
        source, bos, eos = gguf_template(sys.argv[2])
        if source is None:
            out = {"missing": True}
        else:
            rows = render_all(env, "tokenizer.chat_template", source, spec, bos, eos)
            out = {"bos_token": bos, "eos_token": eos, "results": rows}
    else:
        rows = []
        for path in sorted(Path(sys.argv[1]).glob("*.jinja")):
            source = path.read_text(encoding="utf-8")
            rows += render_all(
                env, path.stem, source, spec, spec["bos_token"], spec["eos_token"]
            )
        out = {"results": rows}
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
