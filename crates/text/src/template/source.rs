//! Template source adjustments before compiling.
//!
//! Jinja2's lexer turns every `\r\n` and `\r` of the template text (data and string
//! literals alike) into `\n`; minijinja keeps them, so the source is normalized first.
//!
//! transformers registers a `{% generation %}...{% endgeneration %}` tag (its
//! AssistantTracker extension) that renders its body unchanged unless assistant masks
//! are requested. minijinja has no custom tags, so the pair is rewritten to
//! `{% with %}...{% endwith %}`: same whitespace control, same output, and — like
//! the call block transformers compiles it to — variables set inside stay inside.

/// The source as Jinja2 sees it: newlines normalized, generation tags rewritten.
pub(crate) fn prepare(source: &str) -> String {
    rewrite_generation_tags(&source.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Rewrites `{% generation %}` / `{% endgeneration %}` tags (with any `-`/`+`
/// whitespace markers) and leaves everything else untouched.
pub(crate) fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        match rewrite_tag(tag) {
            Some((replacement, consumed)) => {
                out.push_str(&replacement);
                rest = &tag[consumed..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// If `tag` (starting at `{%`) is a generation tag, returns its replacement and length.
fn rewrite_tag(tag: &str) -> Option<(String, usize)> {
    let mut pos = 2;
    let open_marker = marker(&tag[pos..]);
    pos += open_marker.len();
    let lead_ws = leading_ws(&tag[pos..]);
    pos += lead_ws;
    let (word, replacement) = if tag[pos..].starts_with("endgeneration") {
        ("endgeneration", "endwith")
    } else if tag[pos..].starts_with("generation") {
        ("generation", "with")
    } else {
        return None;
    };
    pos += word.len();
    let trail_ws = leading_ws(&tag[pos..]);
    if trail_ws == 0 && !tag[pos..].starts_with(['-', '+', '%']) {
        return None; // e.g. `{% generation_x %}`
    }
    pos += trail_ws;
    let close_marker = marker(&tag[pos..]);
    pos += close_marker.len();
    if !tag[pos..].starts_with("%}") {
        return None;
    }
    pos += 2;
    let rewritten = format!(
        "{{%{open_marker}{}{replacement}{}{close_marker}%}}",
        &tag[2 + open_marker.len()..2 + open_marker.len() + lead_ws],
        " ".repeat(trail_ws.max(1))
    );
    Some((rewritten, pos))
}

fn marker(s: &str) -> &'static str {
    if s.starts_with('-') {
        "-"
    } else if s.starts_with('+') {
        "+"
    } else {
        ""
    }
}

fn leading_ws(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_generation_tags() {
        let src = "a{%- generation -%}b{% endgeneration %}c{% if x %}{% generations %}";
        assert_eq!(
            rewrite_generation_tags(src),
            "a{%- with -%}b{% endwith %}c{% if x %}{% generations %}"
        );
        assert_eq!(rewrite_generation_tags("{%generation%}"), "{%with %}");
        assert_eq!(rewrite_generation_tags("x {% y"), "x {% y");
        assert_eq!(prepare("a\r\nb\rc{%generation%}"), "a\nb\nc{%with %}");
    }
}
