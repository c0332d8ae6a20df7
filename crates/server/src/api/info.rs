//! `GET /health`, `/props`, `/slots`, `/metrics`.

use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use crate::error::ApiError;
use crate::metrics::Exposition;

#[derive(Deserialize)]
pub struct ModelQuery {
    pub model: Option<String>,
}

pub async fn health(State(st): State<Shared>) -> Response {
    if st.shutting_down.load(Ordering::Acquire) {
        return ApiError::unavailable("the server is shutting down").into_response();
    }
    Json(json!({"status": "ok"})).into_response()
}

pub async fn props(State(st): State<Shared>, Query(q): Query<ModelQuery>) -> Response {
    let model = match st.registry.get(q.model.as_deref()).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let s = &model.spec.sampling;
    let shape = model.engine.shape();
    Json(json!({
        "default_generation_settings": {
            "n_ctx": shape.slot_capacity,
            "params": {
                "temperature": s.temp,
                "top_k": s.top_k,
                "top_p": s.top_p,
                "min_p": s.min_p,
                "repeat_penalty": s.repeat_penalty,
                "repeat_last_n": s.repeat_last_n,
                "presence_penalty": s.presence_penalty,
                "frequency_penalty": s.frequency_penalty,
            },
        },
        "total_slots": shape.n_slots,
        "n_ctx": model.spec.n_ctx,
        "model_alias": model.spec.name,
        "model_path": model.spec.path.display().to_string(),
        "chat_template": model.template.as_ref().map(|t| t.source()),
        "bos_token": model.template.as_ref().map(|t| t.bos_token()),
        "eos_token": model.template.as_ref().map(|t| t.eos_token()),
        "modalities": {"vision": false, "audio": false},
        "build_info": format!("turbine {}", env!("CARGO_PKG_VERSION")),
        "memory": model.own_breakdown(),
    }))
    .into_response()
}

pub async fn slots(State(st): State<Shared>, Query(q): Query<ModelQuery>) -> Response {
    let model = if st.registry.is_router() && q.model.is_none() {
        // Router without a model named: every loaded model's slots, labelled.
        let all: Vec<_> = st
            .registry
            .loaded()
            .iter()
            .map(|m| json!({"model": m.spec.name, "slots": m.engine.slots()}))
            .collect();
        return Json(json!(all)).into_response();
    } else {
        match st.registry.get(q.model.as_deref()).await {
            Ok(m) => m,
            Err(e) => return e.into_response(),
        }
    };
    Json(json!(model.engine.slots())).into_response()
}

pub async fn metrics(State(st): State<Shared>) -> Response {
    let loaded = st.registry.loaded();
    let rows: Vec<_> = loaded
        .iter()
        .map(|m| {
            (
                m.spec.name.clone(),
                &m.engine.shared().metrics,
                m.memory_lines(),
            )
        })
        .collect();
    let text = Exposition::new(&st.metrics).models(&rows).finish();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
