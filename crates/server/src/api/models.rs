//! `GET /v1/models` and `/models` (with each model's status), `POST /models/load`,
//! `POST /models/unload`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::params::{parse_object, Fields};
use super::{read_body, Shared};
use crate::error::ApiError;
use crate::model::LoadedModel;
use crate::router::Status;

fn memory_json(m: &LoadedModel) -> Value {
    let mut by_device: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    for l in m.memory_lines() {
        by_device
            .entry(l.device)
            .or_default()
            .insert(l.role, l.bytes);
    }
    json!({"breakdown": m.own_breakdown(), "bytes": by_device})
}

pub async fn list(State(st): State<Shared>) -> Response {
    // When the server started, in Unix seconds.
    let created = super::generation::unix_now().saturating_sub(st.started.elapsed().as_secs());
    let data: Vec<Value> = st
        .registry
        .rows()
        .into_iter()
        .map(|row| {
            let mut v = json!({
                "id": row.spec.name,
                "object": "model",
                "created": created,
                "owned_by": "turbine",
                "path": row.spec.path.display().to_string(),
                "status": {"value": row.status.name()},
            });
            match &row.status {
                Status::Loaded(m) => {
                    let shape = m.engine.shape();
                    v["meta"] = json!({
                        "arch": m.meta.arch,
                        "n_params": m.meta.n_params,
                        "size": m.meta.size,
                        "n_vocab": m.meta.n_vocab,
                        "n_ctx_train": m.meta.n_ctx_train,
                        "n_embd": m.meta.n_embd,
                        "n_ctx": m.spec.n_ctx,
                        "n_slots": shape.n_slots,
                        "mlock_bytes": m.locked.as_ref().map(|l| l.bytes),
                    });
                    v["memory"] = memory_json(m);
                }
                Status::Failed(reason) => v["status"]["failed_reason"] = json!(reason),
                _ => {}
            }
            v
        })
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn model_field(st: &Shared, body: Body) -> Result<String, ApiError> {
    let bytes = read_body(st, body).await?;
    let map = parse_object(&bytes)?;
    let f = Fields::new(&map);
    f.str("model")?
        .map(str::to_string)
        .ok_or_else(|| ApiError::field("model", "required"))
}

pub async fn load(State(st): State<Shared>, body: Body) -> Response {
    let result = async {
        let name = model_field(&st, body).await?;
        let m = st.registry.load(&name).await?;
        Ok::<_, ApiError>(json!({"success": true, "model": name, "memory": memory_json(&m)}))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn unload(State(st): State<Shared>, body: Body) -> Response {
    let result = async {
        let name = model_field(&st, body).await?;
        let u = st.registry.unload(&name).await?;
        Ok::<_, ApiError>(json!({
            "success": true,
            "model": u.name,
            "freed": u.freed,
            "freed_bytes": u.bytes,
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
