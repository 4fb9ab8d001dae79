//! The zone-settings part of the Cloudflare emulator: the settings the TLS
//! path depends on (`GET`/`PATCH /zones/{zone_id}/settings/{setting_id}`)
//! and the zone's edge certificates
//! (`GET /zones/{zone_id}/ssl/certificate_packs`).
//!
//! A setting answers `{id, value, editable, modified_on}`; a `PATCH` takes
//! `{"value": …}`. An unknown setting is 400 code 1006 `Unrecognized zone
//! setting name: <id>`, a value the setting does not take is 400 code 1007
//! `Invalid value for zone setting <id>` (both as Cloudflare answers them).
//! Certificate packs are `{id, type, hosts, status, certificate_authority,
//! validation_method, validity_days}`; Universal SSL's pack covers the apex
//! and one level below it (`zone`, `*.zone`), as on the real service.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Inner, check_zone, envelope_error, ok};
use crate::emulators::{lock, rfc3339};

/// The settings the emulator knows and the values each takes.
const SETTINGS: [(&str, &[&str]); 5] = [
    ("ssl", &["off", "flexible", "full", "strict"]),
    ("always_use_https", &["on", "off"]),
    ("websockets", &["on", "off"]),
    ("tls_client_auth", &["on", "off"]),
    ("min_tls_version", &["1.0", "1.1", "1.2", "1.3"]),
];

/// A new zone's settings (a zone added today starts in Flexible mode
/// unless the SSL/TLS Recommender changed it; WebSockets are on).
pub(super) fn defaults() -> Vec<(String, String)> {
    [
        ("ssl", "flexible"),
        ("always_use_https", "off"),
        ("websockets", "on"),
        ("tls_client_auth", "off"),
        ("min_tls_version", "1.0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn setting_json(id: &str, value: &str, modified: Option<time::OffsetDateTime>) -> Value {
    json!({"id": id, "value": value, "editable": true, "modified_on": modified.map(rfc3339)})
}

fn unrecognized(id: &str) -> Response {
    envelope_error(StatusCode::BAD_REQUEST, 1006, &format!("Unrecognized zone setting name: {id}"))
}

/// `GET /zones/{zone_id}/settings/{setting_id}`.
pub(super) async fn get(State(inner): State<Arc<Inner>>, Path((zone, id)): Path<(String, String)>) -> Response {
    if let Err(r) = check_zone(&inner, &zone) {
        return r;
    }
    let value = lock(&inner.config).zone_settings.iter().find(|(k, _)| *k == id).map(|(_, v)| v.clone());
    match value {
        Some(value) => {
            let modified = lock(&inner.state).settings_modified.get(&id).copied();
            ok(setting_json(&id, &value, modified))
        }
        None => unrecognized(&id),
    }
}

#[derive(Deserialize)]
pub(super) struct SettingBody {
    value: Option<Value>,
}

/// `PATCH /zones/{zone_id}/settings/{setting_id}` with `{"value": …}`.
pub(super) async fn patch(
    State(inner): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, String)>,
    body: Result<Json<SettingBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(r) = check_zone(&inner, &zone) {
        return r;
    }
    let Some((_, allowed)) = SETTINGS.iter().find(|(name, _)| *name == id) else {
        return unrecognized(&id);
    };
    let invalid = || envelope_error(StatusCode::BAD_REQUEST, 1007, &format!("Invalid value for zone setting {id}"));
    let value = match body {
        Ok(Json(SettingBody { value: Some(Value::String(v)) })) if allowed.contains(&v.as_str()) => v,
        Ok(_) => return invalid(),
        Err(_) => return envelope_error(StatusCode::BAD_REQUEST, 9207, "Request body is invalid."),
    };
    {
        let mut config = lock(&inner.config);
        match config.zone_settings.iter_mut().find(|(k, _)| *k == id) {
            Some((_, v)) => *v = value.clone(),
            None => config.zone_settings.push((id.clone(), value.clone())),
        }
    }
    let now = time::OffsetDateTime::now_utc();
    lock(&inner.state).settings_modified.insert(id.clone(), now);
    ok(setting_json(&id, &value, Some(now)))
}

/// `GET /zones/{zone_id}/ssl/certificate_packs`: Universal SSL's pack (when
/// on) and the advanced certificates configured.
pub(super) async fn certificate_packs(State(inner): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    let zone_name = match check_zone(&inner, &zone) {
        Ok(z) => z,
        Err(r) => return r,
    };
    let config = lock(&inner.config).clone();
    let mut packs = Vec::new();
    if config.universal_ssl {
        packs.push(json!({"id": "0c1fa000000000000000000000000001", "type": "universal",
            "hosts": [zone_name.clone(), format!("*.{zone_name}")], "status": "active",
            "certificate_authority": "google", "validation_method": "txt", "validity_days": 90}));
    }
    for (n, hosts) in config.advanced_certificates.iter().enumerate() {
        packs.push(json!({"id": format!("0c1fa0000000000000000000000a{n:04x}"), "type": "advanced",
            "hosts": hosts, "status": "active", "certificate_authority": "lets_encrypt",
            "validation_method": "txt", "validity_days": 90}));
    }
    let count = packs.len();
    Json(json!({"success": true, "errors": [], "messages": [], "result": packs,
                "result_info": {"page": 1, "per_page": 20, "count": count, "total_count": count, "total_pages": 1}}))
    .into_response()
}
