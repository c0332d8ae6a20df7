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

Usage: template_oracle.py TEMPLATE_DIR CONVERSATIONS_JSON
Prints one JSON object: {"results": [{"template", "conversation",
"add_generation_prompt", "output" | "error"}]}.
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


def main():
    template_dir = Path(sys.argv[1])
    spec = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    env = make_environment(datetime.fromisoformat(spec["now"]))
    results = []
    for path in sorted(template_dir.glob("*.jinja")):
        source = path.read_text(encoding="utf-8")
        try:
            template = env.from_string(source)
            compile_error = None
        except Exception as e:  # noqa: BLE001 - any failure is a result to report
            compile_error = f"{type(e).__name__}: {e}"
        for conv in spec["conversations"]:
            for agp in (False, True):
                row = {
                    "template": path.stem,
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
                            bos_token=spec["bos_token"],
                            eos_token=spec["eos_token"],
                        )
                    except Exception as e:  # noqa: BLE001
                        row["error"] = f"{type(e).__name__}: {e}"
                results.append(row)
    json.dump({"results": results}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
