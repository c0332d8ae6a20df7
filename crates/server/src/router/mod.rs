//! The models a server can serve and their state: one fixed model (`-m`), or router mode
//! (started without `-m`) where models from `--models-preset` / `--models-dir` are loaded on
//! demand by a request's `model` field, at most `--models-max` at once, the least recently
//! used unloaded first.

pub mod discover;
pub mod preset;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;

use crate::error::ApiError;
use crate::model::{LoadedModel, ModelSpec};

#[derive(Clone)]
pub enum Status {
    Unloaded,
    Loading,
    Loaded(Arc<LoadedModel>),
    Failed(String),
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Unloaded => "unloaded",
            Status::Loading => "loading",
            Status::Loaded(_) => "loaded",
            Status::Failed(_) => "failed",
        }
    }
}

struct Entry {
    spec: ModelSpec,
    status: Status,
    /// Tick of the last request routed to it (LRU order).
    last_used: u64,
}

struct Inner {
    entries: Vec<Entry>,
    tick: u64,
}

/// A model's row in `GET /models`.
pub struct ModelRow {
    pub spec: ModelSpec,
    pub status: Status,
}

pub struct Registry {
    router: bool,
    /// 0: no limit.
    models_max: usize,
    autoload: bool,
    inner: Mutex<Inner>,
    /// Loads and unloads one at a time, so the limit is never overshot.
    load_lock: tokio::sync::Mutex<()>,
}

/// Memory freed by an unload: the plan of what the model held.
pub struct Unloaded {
    pub name: String,
    pub freed: String,
    pub bytes: u64,
}

impl Registry {
    /// Single-model mode: `model` is already loaded and serves every request.
    pub fn single(model: LoadedModel) -> Registry {
        Registry {
            router: false,
            models_max: 0,
            autoload: false,
            inner: Mutex::new(Inner {
                entries: vec![Entry {
                    spec: model.spec.clone(),
                    status: Status::Loaded(Arc::new(model)),
                    last_used: 0,
                }],
                tick: 0,
            }),
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Router mode over `specs` (none loaded yet).
    pub fn router(specs: Vec<ModelSpec>, models_max: usize, autoload: bool) -> Registry {
        Registry {
            router: true,
            models_max,
            autoload,
            inner: Mutex::new(Inner {
                entries: specs
                    .into_iter()
                    .map(|spec| Entry {
                        spec,
                        status: Status::Unloaded,
                        last_used: 0,
                    })
                    .collect(),
                tick: 0,
            }),
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn is_router(&self) -> bool {
        self.router
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves consistent data (every write is one
        // assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rows(&self) -> Vec<ModelRow> {
        self.lock()
            .entries
            .iter()
            .map(|e| ModelRow {
                spec: e.spec.clone(),
                status: e.status.clone(),
            })
            .collect()
    }

    pub fn loaded(&self) -> Vec<Arc<LoadedModel>> {
        self.lock()
            .entries
            .iter()
            .filter_map(|e| match &e.status {
                Status::Loaded(m) => Some(Arc::clone(m)),
                _ => None,
            })
            .collect()
    }

    fn names(inner: &Inner) -> String {
        inner
            .entries
            .iter()
            .map(|e| e.spec.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Which entry a request's `model` field names.
    fn resolve(&self, inner: &Inner, requested: Option<&str>) -> Result<usize, ApiError> {
        if !self.router {
            // llama-server: a single-model server answers whatever model is named.
            return Ok(0);
        }
        match requested {
            Some(name) => inner
                .entries
                .iter()
                .position(|e| e.spec.name == name)
                .ok_or_else(|| {
                    let mut e = ApiError::not_found(format!(
                        "model `{name}` not found (available: {})",
                        Self::names(inner)
                    ));
                    e.param = Some("model".into());
                    e
                }),
            None if inner.entries.len() == 1 => Ok(0),
            None => Err(ApiError::field(
                "model",
                format!(
                    "required in router mode (available: {})",
                    Self::names(inner)
                ),
            )),
        }
    }

    /// The loaded model for a request, loading it first in router mode (and unloading the
    /// least recently used one if `--models-max` is reached).
    pub async fn get(&self, requested: Option<&str>) -> Result<Arc<LoadedModel>, ApiError> {
        {
            let mut inner = self.lock();
            let i = self.resolve(&inner, requested)?;
            inner.tick += 1;
            let tick = inner.tick;
            let e = &mut inner.entries[i];
            if let Status::Loaded(m) = &e.status {
                e.last_used = tick;
                return Ok(Arc::clone(m));
            }
            if !self.autoload {
                return Err(ApiError::unavailable(format!(
                    "model `{}` is not loaded (POST /models/load)",
                    e.spec.name
                )));
            }
        }
        let name = {
            let inner = self.lock();
            let i = self.resolve(&inner, requested)?;
            inner.entries[i].spec.name.clone()
        };
        self.load(&name).await
    }

    /// Loads `name` (no-op if loaded), unloading least-recently-used models to stay within
    /// `--models-max`.
    pub async fn load(&self, name: &str) -> Result<Arc<LoadedModel>, ApiError> {
        if !self.router {
            return Err(ApiError::bad_request(
                "model loading needs router mode (start without -m)",
            ));
        }
        let _guard = self.load_lock.lock().await;
        let spec = {
            let mut inner = self.lock();
            let i = self.resolve(&inner, Some(name))?;
            inner.tick += 1;
            let tick = inner.tick;
            let e = &mut inner.entries[i];
            if let Status::Loaded(m) = &e.status {
                e.last_used = tick;
                return Ok(Arc::clone(m));
            }
            e.spec.clone()
        };
        if self.models_max > 0 {
            loop {
                let victim = {
                    let inner = self.lock();
                    let loaded: Vec<&Entry> = inner
                        .entries
                        .iter()
                        .filter(|e| matches!(e.status, Status::Loaded(_)))
                        .collect();
                    if loaded.len() < self.models_max {
                        None
                    } else {
                        loaded
                            .iter()
                            .min_by_key(|e| e.last_used)
                            .map(|e| e.spec.name.clone())
                    }
                };
                let Some(victim) = victim else { break };
                eprintln!(
                    "router: --models-max {} reached; unloading `{victim}` (least recently used)",
                    self.models_max
                );
                let why = format!(
                    "model `{victim}` was unloaded to load `{name}` (--models-max {})",
                    self.models_max
                );
                self.unload_locked(&victim, &why).await?;
            }
        }
        self.set_status(name, Status::Loading);
        let spec2 = spec.clone();
        let result = tokio::task::spawn_blocking(move || LoadedModel::load(&spec2))
            .await
            .map_err(|e| ApiError::internal(format!("loading `{name}` panicked: {e}")))?;
        match result {
            Ok(model) => {
                let model = Arc::new(model);
                let mut inner = self.lock();
                inner.tick += 1;
                let tick = inner.tick;
                if let Some(e) = inner.entries.iter_mut().find(|e| e.spec.name == name) {
                    e.status = Status::Loaded(Arc::clone(&model));
                    e.last_used = tick;
                }
                Ok(model)
            }
            Err(err) => {
                let msg = format!("{err:#}");
                self.set_status(name, Status::Failed(msg.clone()));
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot load model `{name}`: {msg}"),
                ))
            }
        }
    }

    fn set_status(&self, name: &str, status: Status) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.iter_mut().find(|e| e.spec.name == name) {
            e.status = status;
        }
    }

    /// Unloads `name`: its running requests end with an error, its memory is freed.
    pub async fn unload(&self, name: &str) -> Result<Unloaded, ApiError> {
        if !self.router {
            return Err(ApiError::bad_request(
                "model unloading needs router mode (start without -m)",
            ));
        }
        let _guard = self.load_lock.lock().await;
        self.unload_locked(name, &format!("model `{name}` was unloaded"))
            .await
    }

    async fn unload_locked(&self, name: &str, why: &str) -> Result<Unloaded, ApiError> {
        let model = {
            let mut inner = self.lock();
            let i = self.resolve(&inner, Some(name))?;
            let e = &mut inner.entries[i];
            match std::mem::replace(&mut e.status, Status::Unloaded) {
                Status::Loaded(m) => m,
                other => {
                    let state = other.name();
                    e.status = other;
                    return Err(ApiError::bad_request(format!(
                        "model `{name}` is not loaded (it is {state})"
                    )));
                }
            }
        };
        let freed = model.own_breakdown();
        let bytes: u64 = model.memory_lines().iter().map(|l| l.bytes).sum();
        let m = Arc::clone(&model);
        let why = why.to_string();
        tokio::task::spawn_blocking(move || m.stop(Duration::ZERO, &why))
            .await
            .map_err(|e| ApiError::internal(format!("unloading `{name}` panicked: {e}")))?;
        drop(model);
        eprintln!("router: unloaded `{name}`: freed {freed}");
        Ok(Unloaded {
            name: name.to_string(),
            freed,
            bytes,
        })
    }

    /// Names of models to load at start (`load-on-startup`).
    pub fn startup_models(&self) -> Vec<String> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.spec.load_on_startup)
            .map(|e| e.spec.name.clone())
            .collect()
    }

    /// Stops every engine: running requests get `grace` to finish.
    pub fn shutdown(&self, grace: Duration) {
        let models = self.loaded();
        for m in &models {
            m.engine.shutdown(grace, "the server is shutting down");
        }
        for m in &models {
            m.engine.join();
        }
    }
}
