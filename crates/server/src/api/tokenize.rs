//! `POST /tokenize` and `POST /detokenize` (llama-server's shapes).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::params::{kind, parse_object, Fields};
use super::{read_body, Shared};
use crate::error::ApiError;

pub async fn tokenize(State(st): State<Shared>, body: Body) -> Response {
    let result = async {
        let bytes = read_body(&st, body).await?;
        let map = parse_object(&bytes)?;
        let f = Fields::new(&map);
        let model = st.registry.get(f.str("model")?).await?;
        let content = f
            .str("content")?
            .ok_or_else(|| ApiError::field("content", "required"))?;
        let add_special = f.bool("add_special")?.unwrap_or(false);
        let parse_special = f.bool("parse_special")?.unwrap_or(true);
        let with_pieces = f.bool("with_pieces")?.unwrap_or(false);
        let tk = &model.tokenizer;
        let ids = tk.encode(content, add_special, parse_special);
        let tokens: Vec<Value> = if with_pieces {
            ids.iter()
                .map(|&id| {
                    let piece = tk.token_to_piece(id, true);
                    let piece = match std::str::from_utf8(piece) {
                        Ok(s) => json!(s),
                        Err(_) => json!(piece),
                    };
                    json!({"id": id, "piece": piece})
                })
                .collect()
        } else {
            ids.iter().map(|&id| json!(id)).collect()
        };
        Ok::<_, ApiError>(json!({"tokens": tokens}))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn detokenize(State(st): State<Shared>, body: Body) -> Response {
    let result = async {
        let bytes = read_body(&st, body).await?;
        let map = parse_object(&bytes)?;
        let f = Fields::new(&map);
        let model = st.registry.get(f.str("model")?).await?;
        let n_vocab = model.meta.n_vocab as u64;
        let ids: Vec<u32> = match f.get("tokens") {
            None => return Err(ApiError::field("tokens", "required")),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, t)| match t.as_u64() {
                    Some(id) if id < n_vocab => Ok(id as u32),
                    _ => Err(ApiError::field(
                        &format!("tokens[{i}]"),
                        format!("{t} is not a token id (vocabulary of {n_vocab})"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(ApiError::field(
                    "tokens",
                    format!("expected an array of token ids, got {}", kind(v)),
                ))
            }
        };
        Ok(json!({"content": model.tokenizer.decode(&ids, true)}))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
