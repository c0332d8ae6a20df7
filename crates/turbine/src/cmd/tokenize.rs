//! `turbine tokenize`: the ids (or pieces) of a text under a model's tokenizer, like
//! llama.cpp's `llama-tokenize`. BOS/EOS are added as the model asks and special-token texts
//! are parsed, unless `--no-bos` / `--no-parse-special`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use text::tokenizer::Tokenizer;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF); only its metadata is read.
    #[arg(
        short = 'm',
        long = "model",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: PathBuf,
    /// Text to tokenize.
    pub text: Option<String>,
    /// Text to tokenize (as llama-tokenize's -p).
    #[arg(short = 'p', long = "prompt", conflicts_with = "text")]
    pub prompt: Option<String>,
    /// Read the text from a file.
    #[arg(short = 'f', long = "file", conflicts_with_all = ["text", "prompt"])]
    pub file: Option<PathBuf>,
    /// Read the text from standard input.
    #[arg(long, conflicts_with_all = ["text", "prompt", "file"])]
    pub stdin: bool,
    /// Print one token per line with its piece: `   504 -> 'The'`.
    #[arg(long)]
    pub pieces: bool,
    /// Print only the id list (the default; accepted for llama-tokenize compatibility).
    #[arg(long, conflicts_with = "pieces")]
    pub ids: bool,
    /// Do not add the BOS/EOS tokens the model adds by default.
    #[arg(long)]
    pub no_bos: bool,
    /// Tokenize special-token texts such as `<|im_start|>` as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Also print the number of tokens.
    #[arg(long)]
    pub show_count: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = match (&args.text, &args.prompt, &args.file, args.stdin) {
        (Some(t), _, _, _) | (None, Some(t), _, _) => t.clone(),
        (None, None, Some(path), _) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None, None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s
        }
        (None, None, None, false) => {
            bail!("no text: give it as an argument, -p TEXT, -f FILE or --stdin")
        }
    };
    let file = gguf::GgufFile::open(&args.model)
        .with_context(|| format!("opening {}", args.model.display()))?;
    let tok = Tokenizer::from_gguf(&file)
        .with_context(|| format!("tokenizer of {}", args.model.display()))?;
    for w in tok.warnings() {
        eprintln!("warning: {w}");
    }
    let ids = tok.encode(&text, !args.no_bos, !args.no_parse_special);

    let mut out = std::io::stdout().lock();
    if args.pieces {
        for &id in &ids {
            writeln!(
                out,
                "{id:6} -> '{}'",
                show_piece(tok.token_to_piece(id, true))
            )?;
        }
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "[{}]", list.join(", "))?;
    }
    if args.show_count {
        writeln!(out, "Total number of tokens: {}", ids.len())?;
    }
    Ok(())
}

/// A piece for the terminal: valid UTF-8 as is (control characters escaped), other bytes (a
/// token that holds part of a character) as `\xNN`.
fn show_piece(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::show_piece;

    #[test]
    fn pieces_are_printable() {
        assert_eq!(show_piece(b" Paris"), " Paris");
        assert_eq!(show_piece(b"\n\t"), "\\n\\t");
        assert_eq!(show_piece(&[b' ', 0xF0, 0x9F]), " \\xf0\\x9f");
        assert_eq!(show_piece("🦙".as_bytes()), "🦙");
    }
}
