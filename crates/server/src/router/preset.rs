//! llama-server's model preset INI (`--models-preset FILE.ini`) and per-model settings.
//!
//! One section per model (`[name]`), `[*]` for defaults every model inherits; keys are the
//! long flag names without dashes (`model`, `ctx-size`, `n-gpu-layers`, `cache-type-k`,
//! `parallel`, `flash-attn`, ..., plus `load-on-startup`); short names (`c`, `np`, `ngl`,
//! `ctk`, ...) are accepted too. Precedence, lowest first: built-in defaults, `[*]`, the
//! model's section, flags given on the command line.

use std::path::{Path, PathBuf};

use crate::model::ModelSpec;

/// One `key = value` with where it came from, for errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// `file:line`, or `command line`.
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub settings: Vec<Setting>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preset {
    /// `[*]` (and keys before the first section).
    pub defaults: Vec<Setting>,
    pub models: Vec<Section>,
    /// The file's directory: relative model paths are resolved against it.
    pub dir: PathBuf,
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

impl Preset {
    pub fn read(path: &Path) -> Result<Preset, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Preset::parse(&text, &path.display().to_string(), dir)
    }

    pub fn parse(text: &str, file: &str, dir: PathBuf) -> Result<Preset, String> {
        let mut preset = Preset {
            dir,
            ..Preset::default()
        };
        // None: before any section or in [*].
        let mut current: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let origin = format!("{file}:{}", i + 1);
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| format!("{origin}: section header without `]`"))?
                    .trim();
                if name.is_empty() {
                    return Err(format!("{origin}: empty section name"));
                }
                if name == "*" {
                    current = None;
                    continue;
                }
                if preset.models.iter().any(|m| m.name == name) {
                    return Err(format!("{origin}: section [{name}] appears twice"));
                }
                preset.models.push(Section {
                    name: name.to_string(),
                    settings: Vec::new(),
                });
                current = Some(preset.models.len() - 1);
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("{origin}: expected `key = value`, got `{line}`"))?;
            let key = key.trim().trim_start_matches('-').to_string();
            if key.is_empty() {
                return Err(format!("{origin}: empty key"));
            }
            if current.is_none() && key == "version" {
                continue;
            }
            let setting = Setting {
                key,
                value: unquote(value).to_string(),
                origin,
            };
            // Check the key now, so a typo is reported with its line even for models
            // that are never loaded.
            check_key(&setting)?;
            match current {
                None => preset.defaults.push(setting),
                Some(m) => preset.models[m].settings.push(setting),
            }
        }
        Ok(preset)
    }
}

/// Canonical long name of a key (short flag names and aliases mapped).
fn canonical(key: &str) -> &str {
    match key {
        "m" => "model",
        "c" => "ctx-size",
        "b" => "batch-size",
        "ub" => "ubatch-size",
        "np" => "parallel",
        "ctk" => "cache-type-k",
        "ctv" => "cache-type-v",
        "ngl" | "gpu-layers" => "n-gpu-layers",
        "mg" => "main-gpu",
        "fa" => "flash-attn",
        "t" => "threads",
        "temperature" => "temp",
        "a" => "alias",
        "sps" => "slot-prompt-similarity",
        other => other,
    }
}

/// Keys accepted and ignored: llama-server options that change nothing here.
const IGNORED: &[&str] = &[
    "jinja",
    "mmap",
    "no-mmap",
    "no-context-shift",
    "kv-unified",
    "cont-batching",
    "no-webui",
    "metrics",
];

fn check_key(s: &Setting) -> Result<(), String> {
    let key = canonical(&s.key);
    const KNOWN: &[&str] = &[
        "model",
        "ctx-size",
        "batch-size",
        "ubatch-size",
        "parallel",
        "cache-type-k",
        "cache-type-v",
        "n-gpu-layers",
        "main-gpu",
        "flash-attn",
        "threads",
        "mlock",
        "load-on-startup",
        "alias",
        "temp",
        "top-k",
        "top-p",
        "min-p",
        "repeat-penalty",
        "repeat-last-n",
        "presence-penalty",
        "frequency-penalty",
        "seed",
        "context-shift",
        "batching",
        "slot-prompt-similarity",
    ];
    if KNOWN.contains(&key) || IGNORED.contains(&key) {
        Ok(())
    } else {
        Err(format!("{}: unknown key `{}`", s.origin, s.key))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" | "enabled" => Some(true),
        "0" | "false" | "off" | "no" | "disabled" => Some(false),
        _ => None,
    }
}

/// Applies one setting to `spec`; `dir` resolves a relative `model` path.
pub fn apply(spec: &mut ModelSpec, s: &Setting, dir: &Path) -> Result<(), String> {
    let bad = |what: &str| format!("{}: `{}` = `{}`: {what}", s.origin, s.key, s.value);
    let v = s.value.as_str();
    let usize_of = || {
        v.parse::<usize>()
            .map_err(|_| bad("expected a non-negative integer"))
    };
    let f32_of = || v.parse::<f32>().map_err(|_| bad("expected a number"));
    match canonical(&s.key) {
        "model" => {
            let p = PathBuf::from(v);
            spec.path = if p.is_relative() && !p.exists() {
                dir.join(p)
            } else {
                p
            };
        }
        "ctx-size" => spec.n_ctx = usize_of()?,
        "batch-size" => spec.n_batch = usize_of()?,
        "ubatch-size" => spec.n_ubatch = usize_of()?,
        "parallel" => spec.n_parallel = usize_of()?,
        "threads" => {
            // llama.cpp: -1 means all cores.
            spec.threads = match v.parse::<i64>() {
                Ok(n) if n > 0 => n as usize,
                Ok(_) => crate::model::default_threads(),
                Err(_) => return Err(bad("expected an integer")),
            }
        }
        "cache-type-k" => {
            spec.type_k = models::parse_kv_type(v).map_err(|e| bad(&e.to_string()))?
        }
        "cache-type-v" => {
            spec.type_v = models::parse_kv_type(v).map_err(|e| bad(&e.to_string()))?
        }
        "n-gpu-layers" => {
            let n = match v {
                "auto" | "all" => -1,
                _ => v
                    .parse::<i64>()
                    .map_err(|_| bad("expected an integer, `auto` or `all`"))?,
            };
            spec.n_gpu_layers = Some(n);
        }
        "main-gpu" => spec.main_gpu = usize_of()?,
        "flash-attn" => {
            if !matches!(v, "on" | "off" | "auto") && parse_bool(v).is_none() {
                return Err(bad("expected on, off or auto"));
            }
            spec.flash_attn = Some(v.to_string());
        }
        "mlock" => spec.mlock = parse_bool(v).ok_or_else(|| bad("expected true or false"))?,
        "load-on-startup" => {
            spec.load_on_startup = parse_bool(v).ok_or_else(|| bad("expected true or false"))?
        }
        "alias" => spec.name = v.to_string(),
        "temp" => spec.sampling.temp = f32_of()?,
        "top-k" => spec.sampling.top_k = v.parse().map_err(|_| bad("expected an integer"))?,
        "top-p" => spec.sampling.top_p = f32_of()?,
        "min-p" => spec.sampling.min_p = f32_of()?,
        "slot-prompt-similarity" => {
            let x = f32_of()?;
            if !(0.0..=1.0).contains(&x) {
                return Err(bad("expected a fraction from 0 to 1"));
            }
            spec.slot_prompt_similarity = x;
        }
        "repeat-penalty" => spec.sampling.repeat_penalty = f32_of()?,
        "repeat-last-n" => {
            spec.sampling.repeat_last_n = v.parse().map_err(|_| bad("expected an integer"))?
        }
        "presence-penalty" => spec.sampling.presence_penalty = f32_of()?,
        "frequency-penalty" => spec.sampling.frequency_penalty = f32_of()?,
        "seed" => spec.sampling.seed = v.parse().map_err(|_| bad("expected an integer"))?,
        "batching" => {
            spec.batching = match v {
                "auto" => crate::model::Batching::Auto,
                "on" => crate::model::Batching::On,
                "off" => crate::model::Batching::Off,
                _ => return Err(bad("expected auto, on or off")),
            }
        }
        "context-shift" => {
            if parse_bool(v) == Some(true) {
                return Err(bad(
                    "context shift is not supported (generation stops at the end of the context)",
                ));
            }
        }
        k if IGNORED.contains(&k) => {}
        _ => return Err(format!("{}: unknown key `{}`", s.origin, s.key)),
    }
    Ok(())
}

/// The spec of model `name` from its settings, in precedence order (lowest first).
pub fn build_spec<'a>(
    name: &str,
    layers: impl IntoIterator<Item = (&'a [Setting], &'a Path)>,
) -> Result<ModelSpec, String> {
    let mut spec = ModelSpec::new(name, PathBuf::new());
    for (settings, dir) in layers {
        for s in settings {
            apply(&mut spec, s, dir)?;
        }
    }
    if spec.path.as_os_str().is_empty() {
        return Err(format!(
            "model `{name}`: no `model` path in its preset section"
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::GgmlType;

    const INI: &str = "\
version = 1
; comment
[*]
ctx-size = 2048
parallel = 2
cache-type-k = q8_0

[small]
model = /m/small.gguf
c = 1024
load-on-startup = true

[big]
model = big.gguf
ctv = turbo4
n-gpu-layers = 99
flash-attn = on
temp = 0.2
";

    fn preset() -> Preset {
        Preset::parse(INI, "p.ini", PathBuf::from("/presets")).unwrap()
    }

    #[test]
    fn sections_and_defaults() {
        let p = preset();
        assert_eq!(p.defaults.len(), 3);
        assert_eq!(p.models.len(), 2);
        assert_eq!(p.models[0].name, "small");
        assert_eq!(p.models[1].settings[0].origin, "p.ini:14");
    }

    #[test]
    fn specs_follow_precedence() {
        let p = preset();
        let dir = p.dir.as_path();
        let cli = vec![Setting {
            key: "threads".into(),
            value: "3".into(),
            origin: "command line".into(),
        }];
        let small = build_spec(
            "small",
            [
                (p.defaults.as_slice(), dir),
                (p.models[0].settings.as_slice(), dir),
                (cli.as_slice(), dir),
            ],
        )
        .unwrap();
        assert_eq!(small.n_ctx, 1024, "section beats [*]");
        assert_eq!(small.n_parallel, 2);
        assert_eq!(small.type_k, GgmlType::Q8_0);
        assert_eq!(small.threads, 3);
        assert!(small.load_on_startup);
        assert_eq!(small.path, PathBuf::from("/m/small.gguf"));
        let big = build_spec(
            "big",
            [
                (p.defaults.as_slice(), dir),
                (p.models[1].settings.as_slice(), dir),
            ],
        )
        .unwrap();
        assert_eq!(big.n_ctx, 2048);
        assert_eq!(big.type_v, GgmlType::Turbo4);
        assert_eq!(big.n_gpu_layers, Some(99));
        assert_eq!(big.sampling.temp, 0.2);
        assert_eq!(big.path, PathBuf::from("/presets/big.gguf"));
        assert!(!big.load_on_startup);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e =
            Preset::parse("[a]\nmodel = x\nctx-sise = 5\n", "f.ini", PathBuf::new()).unwrap_err();
        assert_eq!(e, "f.ini:3: unknown key `ctx-sise`");
        let e = Preset::parse("[a\n", "f.ini", PathBuf::new()).unwrap_err();
        assert!(e.starts_with("f.ini:1:"));
        let e = Preset::parse("[a]\n[a]\n", "f.ini", PathBuf::new()).unwrap_err();
        assert!(e.contains("twice"));
        let p = Preset::parse("[a]\nmodel = x\nc = lots\n", "f.ini", PathBuf::new()).unwrap();
        let e = build_spec("a", [(p.models[0].settings.as_slice(), Path::new(""))]).unwrap_err();
        assert!(
            e.contains("f.ini:3") && e.contains("ctx-size") || e.contains("`c`"),
            "{e}"
        );
        let p = Preset::parse("[a]\nc = 5\n", "f.ini", PathBuf::new()).unwrap();
        let e = build_spec("a", [(p.models[0].settings.as_slice(), Path::new(""))]).unwrap_err();
        assert!(e.contains("no `model` path"));
        let p = Preset::parse("[a]\nmodel=x\nctk = q9\n", "f.ini", PathBuf::new()).unwrap();
        let e = build_spec("a", [(p.models[0].settings.as_slice(), Path::new(""))]).unwrap_err();
        assert!(e.contains("q9"), "{e}");
    }
}
