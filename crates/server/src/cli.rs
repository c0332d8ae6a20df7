//! `turbine serve` flags, named as llama-server names them, and the server's start-up and
//! shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::api::{router, AppState, HttpConfig};
use crate::metrics::HttpMetrics;
use crate::model::{LoadedModel, ModelSpec};
use crate::router::preset::{build_spec, Preset, Setting};
use crate::router::{discover, Registry};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// Model file (GGUF). Without it the server runs in router mode.
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// Name clients use for the model (default: the file name without `.gguf`).
    #[arg(short = 'a', long = "alias")]
    pub alias: Option<String>,
    /// Context size in tokens, shared by all slots (each gets -c / -np).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Logical batch size.
    #[arg(short = 'b', long = "batch-size")]
    pub batch_size: Option<usize>,
    /// Physical batch size: most prompt tokens one step prefills (`-ub`).
    #[arg(long = "ubatch-size", visible_alias = "ub")]
    pub ubatch_size: Option<usize>,
    /// Parallel slots (`-np`).
    #[arg(long = "parallel", visible_alias = "np")]
    pub parallel: Option<usize>,
    /// CPU threads per model.
    #[arg(short = 't', long = "threads")]
    pub threads: Option<i64>,
    /// K cache type (`-ctk`): f16, q8_0, turbo4, ...
    #[arg(long = "cache-type-k", visible_alias = "ctk")]
    pub cache_type_k: Option<String>,
    /// V cache type (`-ctv`).
    #[arg(long = "cache-type-v", visible_alias = "ctv")]
    pub cache_type_v: Option<String>,
    /// Layers to offload (`-ngl`): 0 runs on the CPU, `all` (or the layer count) on the GPU
    /// `--main-gpu` (needs a turbine built with `--features cuda`).
    #[arg(long = "n-gpu-layers", visible_aliases = ["ngl", "gpu-layers"], allow_hyphen_values = true)]
    pub n_gpu_layers: Option<String>,
    /// CUDA device used with -ngl.
    #[arg(long = "main-gpu", visible_alias = "mg")]
    pub main_gpu: Option<usize>,
    /// Flash attention (`-fa`): on, off, auto; accepted for compatibility.
    #[arg(long = "flash-attn", visible_alias = "fa")]
    pub flash_attn: Option<String>,
    /// Lock model weights in RAM.
    #[arg(long)]
    pub mlock: bool,
    /// The default (and only) behaviour: generation stops at the end of the context.
    #[arg(long = "no-context-shift")]
    pub no_context_shift: bool,
    /// Run all sequences of a step in one forward pass: `auto` does when the batched pass
    /// gives each sequence exactly the logits it gets alone (checked at load), so outputs
    /// never depend on concurrency; `on` batches regardless; `off` never.
    #[arg(long, value_parser = ["auto", "on", "off"])]
    pub batching: Option<String>,
    /// Default sampling temperature.
    #[arg(long = "temp")]
    pub temp: Option<f32>,
    #[arg(long = "top-k")]
    pub top_k: Option<i32>,
    #[arg(long = "top-p")]
    pub top_p: Option<f32>,
    #[arg(long = "min-p")]
    pub min_p: Option<f32>,
    /// A request goes to the idle slot whose cached tokens share the longest prefix with its
    /// prompt if that prefix is more than this fraction of the prompt, else to the least
    /// recently used slot (0: always the least recently used). Default 0.1.
    #[arg(long = "slot-prompt-similarity", visible_alias = "sps")]
    pub slot_prompt_similarity: Option<f32>,

    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long = "api-key")]
    pub api_key: Option<String>,
    /// Seconds a request may go without progress (reading its body, waiting for a token).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Largest request body in bytes.
    #[arg(long = "request-size-limit", default_value_t = 16 << 20)]
    pub request_size_limit: usize,
    /// Seconds in-flight requests get to finish after SIGTERM before they are cancelled.
    #[arg(long = "shutdown-timeout", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Router mode: model presets (llama-server INI).
    #[arg(long = "models-preset")]
    pub models_preset: Option<PathBuf>,
    /// Router mode: serve every GGUF model in this directory.
    #[arg(long = "models-dir")]
    pub models_dir: Option<PathBuf>,
    /// Router mode: most models loaded at once (0: no limit); the least recently used is
    /// unloaded first.
    #[arg(long = "models-max", default_value_t = 4)]
    pub models_max: usize,
    /// Router mode: do not load models on demand.
    #[arg(long = "no-models-autoload")]
    pub no_models_autoload: bool,
}

impl Args {
    /// Per-model flags given on the command line, as preset settings (they win over the
    /// preset's sections).
    pub fn settings(&self) -> Vec<Setting> {
        let mut out = Vec::new();
        let mut add = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                out.push(Setting {
                    key: key.to_string(),
                    value,
                    origin: "command line".into(),
                });
            }
        };
        add("ctx-size", self.ctx_size.map(|v| v.to_string()));
        add("batch-size", self.batch_size.map(|v| v.to_string()));
        add("ubatch-size", self.ubatch_size.map(|v| v.to_string()));
        add("parallel", self.parallel.map(|v| v.to_string()));
        add("threads", self.threads.map(|v| v.to_string()));
        add("cache-type-k", self.cache_type_k.clone());
        add("cache-type-v", self.cache_type_v.clone());
        add("n-gpu-layers", self.n_gpu_layers.clone());
        add("main-gpu", self.main_gpu.map(|v| v.to_string()));
        add("flash-attn", self.flash_attn.clone());
        add("mlock", self.mlock.then(|| "true".to_string()));
        add("batching", self.batching.clone());
        add("temp", self.temp.map(|v| v.to_string()));
        add("top-k", self.top_k.map(|v| v.to_string()));
        add("top-p", self.top_p.map(|v| v.to_string()));
        add("min-p", self.min_p.map(|v| v.to_string()));
        add(
            "slot-prompt-similarity",
            self.slot_prompt_similarity.map(|v| v.to_string()),
        );
        out
    }

    fn http(&self) -> HttpConfig {
        HttpConfig {
            api_key: self.api_key.clone().filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(self.timeout.max(1)),
            body_limit: self.request_size_limit,
        }
    }

    /// The single model's spec (`-m`).
    fn single_spec(&self, path: &std::path::Path) -> anyhow::Result<ModelSpec> {
        let name = match &self.alias {
            Some(a) => a.clone(),
            None => path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("model")
                .to_string(),
        };
        let mut settings = vec![Setting {
            key: "model".into(),
            value: path.display().to_string(),
            origin: "command line".into(),
        }];
        settings.extend(self.settings());
        build_spec(&name, [(settings.as_slice(), std::path::Path::new(""))])
            .map_err(anyhow::Error::msg)
    }

    /// Router-mode specs from `--models-preset` and `--models-dir`.
    fn router_specs(&self) -> anyhow::Result<Vec<ModelSpec>> {
        let cli = self.settings();
        let cwd = std::path::Path::new("");
        let preset = match &self.models_preset {
            Some(p) => Preset::read(p).map_err(anyhow::Error::msg)?,
            None => Preset::default(),
        };
        let mut specs: Vec<ModelSpec> = Vec::new();
        for section in &preset.models {
            let spec = build_spec(
                &section.name,
                [
                    (preset.defaults.as_slice(), preset.dir.as_path()),
                    (section.settings.as_slice(), preset.dir.as_path()),
                    (cli.as_slice(), cwd),
                ],
            )
            .map_err(anyhow::Error::msg)?;
            specs.push(spec);
        }
        if let Some(dir) = &self.models_dir {
            for (name, path) in discover::models_in(dir).map_err(anyhow::Error::msg)? {
                if specs.iter().any(|s| s.name == name) {
                    continue; // a preset section of the same name wins
                }
                let model = [Setting {
                    key: "model".into(),
                    value: path.display().to_string(),
                    origin: format!("--models-dir {}", dir.display()),
                }];
                let spec = build_spec(
                    &name,
                    [
                        (preset.defaults.as_slice(), preset.dir.as_path()),
                        (model.as_slice(), cwd),
                        (cli.as_slice(), cwd),
                    ],
                )
                .map_err(anyhow::Error::msg)?;
                specs.push(spec);
            }
        }
        if specs.is_empty() {
            bail!("no models: pass -m FILE, or --models-preset FILE / --models-dir DIR with at least one model");
        }
        for s in &specs {
            if specs.iter().filter(|o| o.name == s.name).count() > 1 {
                bail!("two models are named `{}`", s.name);
            }
        }
        Ok(specs)
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Few HTTP workers: the cores belong to the engine threads.
        .worker_threads(2)
        .thread_name("http")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let registry = match &args.model {
        Some(path) => {
            let spec = args.single_spec(path)?;
            let loaded = tokio::task::spawn_blocking(move || LoadedModel::load(&spec))
                .await
                .context("model loading panicked")??;
            Registry::single(loaded)
        }
        None => Registry::router(
            args.router_specs()?,
            args.models_max,
            !args.no_models_autoload,
        ),
    };
    let state = Arc::new(AppState {
        http: args.http(),
        registry,
        metrics: HttpMetrics::default(),
        started: Instant::now(),
        shutting_down: false.into(),
    });
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(&(args.host.as_str(), args.port))
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|_| anyhow::anyhow!("--host {}: not an address", args.host))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!("turbine serve: listening on http://{local}");

    for name in state.registry.startup_models() {
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            if let Err(e) = st.registry.load(&name).await {
                eprintln!("router: load-on-startup `{name}` failed: {}", e.message);
            }
        });
    }

    let grace = Duration::from_secs(args.shutdown_timeout);
    let st = Arc::clone(&state);
    let (engines_done_tx, engines_done_rx) = tokio::sync::oneshot::channel();
    let on_signal = async move {
        wait_for_signal().await;
        eprintln!(
            "turbine serve: shutting down; in-flight requests have {} s to finish",
            grace.as_secs()
        );
        st.shutting_down.store(true, Ordering::Release);
        let st2 = Arc::clone(&st);
        tokio::task::spawn_blocking(move || {
            st2.registry.shutdown(grace);
            let _ = engines_done_tx.send(());
        });
    };
    let server =
        axum::serve(listener, router(Arc::clone(&state))).with_graceful_shutdown(on_signal);
    server.await.context("HTTP server failed")?;
    // Connections are closed; wait for the engines (bounded: they end their requests at the
    // grace deadline).
    let _ = tokio::time::timeout(grace + Duration::from_secs(5), engines_done_rx).await;
    eprintln!("turbine serve: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// As the binary sees them: `turbine`'s main rewrites `-np` to `--np` and so on.
    fn parse(argv: &[&str]) -> Args {
        let argv = std::iter::once("serve").chain(argv.iter().copied());
        Cli::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn llama_server_flags_parse() {
        let a = parse(&[
            "-m",
            "x.gguf",
            "-c",
            "2048",
            "--np",
            "4",
            "--ub",
            "128",
            "-b",
            "256",
            "-t",
            "2",
            "--ctk",
            "q8_0",
            "--ctv=turbo4",
            "--ngl",
            "99",
            "--fa",
            "on",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--api-key",
            "k",
            "--timeout",
            "30",
            "--mlock",
            "--no-context-shift",
        ]);
        assert_eq!(a.model, Some(PathBuf::from("x.gguf")));
        assert_eq!(
            (a.ctx_size, a.parallel, a.ubatch_size, a.batch_size),
            (Some(2048), Some(4), Some(128), Some(256))
        );
        assert_eq!(a.cache_type_v.as_deref(), Some("turbo4"));
        assert_eq!(a.n_gpu_layers.as_deref(), Some("99"));
        assert_eq!((a.port, a.timeout, a.mlock), (9000, 30, true));
        let spec = a.single_spec(a.model.as_deref().unwrap()).unwrap();
        assert_eq!(spec.name, "x");
        assert_eq!(
            (spec.n_ctx, spec.n_parallel, spec.n_ubatch, spec.threads),
            (2048, 4, 128, 2)
        );
        assert_eq!(spec.type_k, formats::GgmlType::Q8_0);
        assert!(spec.mlock);
        assert_eq!((spec.n_gpu_layers, spec.main_gpu), (Some(99), 0));
    }

    #[test]
    fn gpu_placement_flags_reach_the_spec() {
        let a = parse(&["-m", "x.gguf", "--ngl", "all", "--mg", "1"]);
        let spec = a.single_spec(a.model.as_deref().unwrap()).unwrap();
        assert_eq!((spec.n_gpu_layers, spec.main_gpu), (Some(-1), 1));
        let a = parse(&["-m", "x.gguf", "--ngl", "-1"]);
        let spec = a.single_spec(a.model.as_deref().unwrap()).unwrap();
        assert_eq!(spec.n_gpu_layers, Some(-1));
    }

    #[test]
    fn router_without_models_is_an_error() {
        let a = parse(&[]);
        assert!(a
            .router_specs()
            .unwrap_err()
            .to_string()
            .contains("no models"));
    }

    #[test]
    fn command_line_beats_the_preset() {
        let dir = std::env::temp_dir().join(format!("turbine-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ini = dir.join("p.ini");
        std::fs::write(
            &ini,
            "[*]\nc = 512\nnp = 3\n[a]\nmodel = a.gguf\nc = 1024\n[b]\nmodel = /abs/b.gguf\n",
        )
        .unwrap();
        let a = parse(&["--models-preset", ini.to_str().unwrap(), "--np", "2"]);
        let specs = a.router_specs().unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            (specs[0].name.as_str(), specs[0].n_ctx, specs[0].n_parallel),
            ("a", 1024, 2)
        );
        assert_eq!(specs[0].path, dir.join("a.gguf"));
        assert_eq!((specs[1].n_ctx, specs[1].n_parallel), (512, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
