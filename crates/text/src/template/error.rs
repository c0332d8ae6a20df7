//! Errors from compiling or rendering a chat template; each names the template.

use std::fmt;

/// Why a chat template could not be loaded or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The GGUF file has no template under the requested key.
    #[error("no chat template '{key}' in the GGUF metadata (available: {available})")]
    NotFound { key: String, available: String },
    /// The template source is not valid Jinja.
    #[error("chat template '{template}' does not parse: {reason}")]
    Syntax { template: String, reason: String },
    /// The template called `raise_exception(message)`.
    #[error("chat template '{template}' raised an exception{}: {message}", at_line(*.line))]
    Raised {
        template: String,
        message: String,
        line: Option<usize>,
    },
    /// Rendering failed for another reason (undefined attribute, type error, ...).
    #[error("chat template '{template}' failed to render: {reason}")]
    Render { template: String, reason: String },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

/// Attached as the source of the minijinja error `raise_exception` returns, so the
/// renderer can tell a template's own exception from an engine failure.
#[derive(Debug)]
pub(crate) struct RaisedByTemplate(pub(crate) String);

impl fmt::Display for RaisedByTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedByTemplate {}

impl TemplateError {
    pub(crate) fn from_render(template: &str, err: &minijinja::Error) -> TemplateError {
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            if let Some(raised) = s.downcast_ref::<RaisedByTemplate>() {
                return TemplateError::Raised {
                    template: template.to_string(),
                    message: raised.0.clone(),
                    line: err.line(),
                };
            }
            source = s.source();
        }
        TemplateError::Render {
            template: template.to_string(),
            reason: one_line(err),
        }
    }

    pub(crate) fn from_syntax(template: &str, err: &minijinja::Error) -> TemplateError {
        TemplateError::Syntax {
            template: template.to_string(),
            reason: one_line(err),
        }
    }
}

/// minijinja's message plus its location, plus the causes it wraps, on one line.
fn one_line(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.replace('\n', " ")
}
