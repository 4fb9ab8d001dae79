//! The zones part of the Cloudflare emulator: `GET /zones` (filters `name`,
//! `status`, `match`; `order`, `direction`; `page`, `per_page` 5..=50,
//! default 20) and `GET /zones/{zone_id}`, with the reference's zone shape.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CloudflareEmulatorConfig, Inner, check_zone, envelope_error, ok};
use crate::emulators::lock;

fn zone_json(config: &CloudflareEmulatorConfig) -> Value {
    json!({"id": config.zone_id, "name": config.zone_name, "status": "active", "paused": false, "type": "full",
           "development_mode": 0,
           "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
           "original_name_servers": null, "original_registrar": null, "original_dnshost": null,
           "owner": {"id": "0c1fa00000000000000000000000use1", "name": "octocat@example.com", "type": "user"},
           "account": {"id": "0c1fa00000000000000000000000acc1", "name": "SAM emulator account"},
           "meta": {"cdn_only": false, "custom_certificate_quota": 0, "dns_only": false, "foundation_dns": false,
                    "page_rule_quota": 3, "phishing_detected": false, "step": 2},
           "created_on": "2024-01-01T00:00:00Z", "modified_on": "2024-01-01T00:00:00Z",
           "activated_on": "2024-01-01T00:00:00Z"})
}

#[derive(Deserialize)]
pub(super) struct ZonesQuery {
    name: Option<String>,
    status: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    order: Option<String>,
    direction: Option<String>,
    #[serde(rename = "match")]
    match_: Option<String>,
}

/// `page` (from 1) and `per_page` (`min..=max`, else `default`); a bad value
/// is 400 code 1004 in the envelope.
pub(super) fn page_params(
    page: Option<&str>,
    per_page: Option<&str>,
    default: usize,
    (min, max): (usize, usize),
) -> Result<(usize, usize), Response> {
    let page = match page.map(str::parse::<usize>) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return Err(envelope_error(StatusCode::BAD_REQUEST, 1004, "page must be a positive integer")),
    };
    let per_page = match per_page.map(str::parse::<usize>) {
        None => default,
        Some(Ok(p)) if (min..=max).contains(&p) => p,
        Some(_) => {
            return Err(envelope_error(StatusCode::BAD_REQUEST, 1004, &format!("per_page must be {min}..={max}")));
        }
    };
    Ok((page, per_page))
}

/// One page of `items` in the envelope, with `result_info`.
pub(super) fn paged(items: Vec<Value>, page: usize, per_page: usize) -> Response {
    let total = items.len();
    let result: Vec<Value> = items.into_iter().skip((page - 1).saturating_mul(per_page)).take(per_page).collect();
    let count = result.len();
    Json(json!({"success": true, "errors": [], "messages": [], "result": result,
                "result_info": {"page": page, "per_page": per_page, "count": count, "total_count": total,
                                "total_pages": total.div_ceil(per_page)}}))
    .into_response()
}

pub(super) async fn list(
    State(inner): State<Arc<Inner>>,
    q: Result<Query<ZonesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return envelope_error(StatusCode::BAD_REQUEST, 1004, "invalid query");
    };
    let (page, per_page) = match page_params(q.page.as_deref(), q.per_page.as_deref(), 20, (5, 50)) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if q.order.as_deref().is_some_and(|o| !["name", "status", "account.id", "account.name"].contains(&o))
        || q.direction.as_deref().is_some_and(|d| !["asc", "desc"].contains(&d))
        || q.match_.as_deref().is_some_and(|m| !["any", "all"].contains(&m))
    {
        return envelope_error(StatusCode::BAD_REQUEST, 1004, "invalid order, direction or match");
    }
    let config = lock(&inner.config).clone();
    // One zone: the filters keep it or not (with match=any, one is enough).
    let tests = [q.name.as_ref().map(|n| *n == config.zone_name), q.status.as_ref().map(|s| s == "active")];
    let given: Vec<bool> = tests.into_iter().flatten().collect();
    let keep = if q.match_.as_deref() == Some("any") {
        given.is_empty() || given.iter().any(|t| *t)
    } else {
        given.iter().all(|t| *t)
    };
    paged(if keep { vec![zone_json(&config)] } else { vec![] }, page, per_page)
}

pub(super) async fn get(State(inner): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    match check_zone(&inner, &zone) {
        Ok(_) => ok(zone_json(&lock(&inner.config))),
        Err(r) => r,
    }
}
