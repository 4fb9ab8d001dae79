//! `/firewalls` of the Hetzner emulator, after the Hetzner Cloud API
//! reference (Firewalls, Firewall Actions):
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `GET /firewalls` | `name`, `label_selector`, `page`, `per_page`; `{firewalls, meta}` |
//! | `POST /firewalls` | 201 `{firewall, actions}`; `name` required, ≤ 128, unique (409 `uniqueness_error`); rules checked (400 `invalid_input`); `apply_to` servers must exist (404 `firewall_resource_not_found`), once each (422 `server_already_added`) |
//! | `GET /firewalls/{id}` | 404 `not_found` when absent |
//! | `PUT /firewalls/{id}` | `name`, `labels` (the whole set is replaced) |
//! | `DELETE /firewalls/{id}` | 204; 422 `resource_in_use` while applied to anything |
//! | `POST /firewalls/{id}/actions/set_rules` | 201 `{actions}`: `set_firewall_rules`, then `apply_firewall` per resource |
//! | `POST /firewalls/{id}/actions/apply_to_resources` | 201 `{actions}`; 422 `firewall_already_applied`, 404 `firewall_resource_not_found` |
//! | `POST /firewalls/{id}/actions/remove_from_resources` | 201 `{actions}`; 422 `firewall_already_removed`; a server covered through a label selector: 422 `firewall_managed_by_label_selector` |
//!
//! A rule: `direction` `in` (with `source_ips`) or `out` (with
//! `destination_ips`), `protocol` `tcp`/`udp` (with `port`: `80`, `80-85` or
//! `any`) or `icmp`/`esp`/`gre` (without), addresses in CIDR notation,
//! `description` ≤ 255. A server gets firewalls at creation
//! (`firewalls: [{firewall: id}]`) and lists those that apply to it, directly
//! or through a label selector, in `public_net.firewalls`; deleting a server
//! takes it off every firewall.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    HState, PageQuery, Project, check_labels, error, invalid_field, lock, new_action_on, paginate, parse_id,
    parse_selector, rfc3339, selector_matches,
};

/// A firewall rule as the emulator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmulatedFirewallRule {
    /// `in` or `out`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp`, `esp` or `gre`.
    pub protocol: String,
    /// Port or range (TCP and UDP).
    pub port: Option<String>,
    /// Sources (inbound).
    pub source_ips: Vec<String>,
    /// Destinations (outbound).
    pub destination_ips: Vec<String>,
    /// Description.
    pub description: Option<String>,
}

/// What a firewall is applied to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum FirewallTarget {
    /// One server, by id.
    Server(u64),
    /// Every server whose labels match.
    LabelSelector(String),
}

/// A firewall as the emulator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmulatedFirewall {
    /// Id.
    pub id: u64,
    /// Name (unique in the project).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Rules.
    pub rules: Vec<EmulatedFirewallRule>,
    /// What it is applied to, in order.
    pub applied_to: Vec<FirewallTarget>,
    /// Creation time.
    pub created: time::OffsetDateTime,
}

impl EmulatedFirewall {
    /// Whether it applies to the server `id` with `labels`.
    pub fn covers(&self, id: u64, labels: &BTreeMap<String, String>) -> bool {
        self.applied_to.iter().any(|t| match t {
            FirewallTarget::Server(s) => *s == id,
            FirewallTarget::LabelSelector(sel) => {
                parse_selector(sel).is_ok_and(|terms| selector_matches(&terms, labels))
            }
        })
    }
}

/// The ids of the firewalls applying to the server `id`.
pub(super) fn firewalls_of(state: &HState, id: u64, labels: &BTreeMap<String, String>) -> Vec<u64> {
    state.firewalls.values().filter(|f| f.covers(id, labels)).map(|f| f.id).collect()
}

fn firewall_json(state: &HState, f: &EmulatedFirewall) -> Value {
    let rules: Vec<Value> = f
        .rules
        .iter()
        .map(|r| {
            json!({"direction": r.direction, "protocol": r.protocol, "port": r.port,
                   "source_ips": r.source_ips, "destination_ips": r.destination_ips,
                   "description": r.description})
        })
        .collect();
    let applied: Vec<Value> = f
        .applied_to
        .iter()
        .map(|t| match t {
            FirewallTarget::Server(id) => json!({"type": "server", "server": {"id": id}}),
            FirewallTarget::LabelSelector(sel) => {
                let resources: Vec<Value> = target_resources(state, t)
                    .into_iter()
                    .map(|(id, _)| json!({"type": "server", "server": {"id": id}}))
                    .collect();
                json!({"type": "label_selector", "label_selector": {"selector": sel},
                       "applied_to_resources": resources})
            }
        })
        .collect();
    json!({"id": f.id, "name": f.name, "labels": f.labels, "created": rfc3339(f.created),
           "rules": rules, "applied_to": applied})
}

#[derive(Deserialize, Clone)]
pub(super) struct RuleBody {
    direction: Option<String>,
    protocol: Option<String>,
    port: Option<String>,
    source_ips: Option<Vec<String>>,
    destination_ips: Option<Vec<String>>,
    description: Option<String>,
}

#[derive(Deserialize, Clone)]
pub(super) struct ResourceBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    server: Option<ServerRef>,
    label_selector: Option<SelectorRef>,
}

#[derive(Deserialize, Clone)]
pub(super) struct ServerRef {
    id: Option<u64>,
}

#[derive(Deserialize, Clone)]
pub(super) struct SelectorRef {
    selector: Option<String>,
}

fn port_ok(port: &str) -> bool {
    let one = |p: &str| p.parse::<u16>().ok().filter(|p| *p >= 1);
    port == "any"
        || one(port).is_some()
        || port.split_once('-').is_some_and(|(a, b)| matches!((one(a), one(b)), (Some(a), Some(b)) if a <= b))
}

fn check_rules(rules: &[RuleBody]) -> Result<Vec<EmulatedFirewallRule>, Response> {
    let bad = |message: String| invalid_field("rules", &message);
    if rules.len() > 50 {
        return Err(bad("at most 50 rules".into()));
    }
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let direction = r.direction.clone().filter(|d| d == "in" || d == "out");
            let Some(direction) = direction else { return Err(bad(format!("rule {i}: direction must be in or out"))) };
            let protocol = r.protocol.clone().filter(|p| ["tcp", "udp", "icmp", "esp", "gre"].contains(&p.as_str()));
            let Some(protocol) = protocol else {
                return Err(bad(format!("rule {i}: protocol must be tcp, udp, icmp, esp or gre")));
            };
            let ported = protocol == "tcp" || protocol == "udp";
            match (&r.port, ported) {
                (Some(p), true) if port_ok(p) => {}
                (None, false) => {}
                (_, true) => return Err(bad(format!("rule {i}: port is required for {protocol} (80, 80-85 or any)"))),
                (Some(_), false) => return Err(bad(format!("rule {i}: port is not allowed for {protocol}"))),
            }
            let sources = r.source_ips.clone().unwrap_or_default();
            let destinations = r.destination_ips.clone().unwrap_or_default();
            let (needed, unwanted, name) = if direction == "in" {
                (&sources, &destinations, "source_ips")
            } else {
                (&destinations, &sources, "destination_ips")
            };
            if needed.is_empty() || !unwanted.is_empty() {
                return Err(bad(format!("rule {i}: a rule with direction {direction} needs {name}, and only those")));
            }
            if let Some(ip) = needed.iter().find(|ip| !sam_core::ports::is_cidr(ip)) {
                return Err(bad(format!("rule {i}: {ip:?} is not in CIDR notation")));
            }
            if r.description.as_ref().is_some_and(|d| d.chars().count() > 255) {
                return Err(bad(format!("rule {i}: description longer than 255 characters")));
            }
            Ok(EmulatedFirewallRule {
                direction,
                protocol,
                port: r.port.clone(),
                source_ips: sources,
                destination_ips: destinations,
                description: r.description.clone(),
            })
        })
        .collect()
}

/// The targets of `resources`, checked against the servers there are.
fn targets(state: &HState, resources: &[ResourceBody], field: &str) -> Result<Vec<FirewallTarget>, Response> {
    let mut out = Vec::new();
    for r in resources {
        let target = match (r.kind.as_deref(), &r.server, &r.label_selector) {
            (Some("server"), Some(ServerRef { id: Some(id) }), None) => {
                if !state.servers.contains_key(id) {
                    return Err(error(
                        StatusCode::NOT_FOUND,
                        "firewall_resource_not_found",
                        &format!("server with ID '{id}' not found"),
                    ));
                }
                FirewallTarget::Server(*id)
            }
            (Some("label_selector"), None, Some(SelectorRef { selector: Some(sel) })) => {
                if let Err(message) = parse_selector(sel) {
                    return Err(invalid_field(field, &message));
                }
                FirewallTarget::LabelSelector(sel.clone())
            }
            _ => {
                return Err(invalid_field(
                    field,
                    "each entry needs type server with server.id, or type label_selector with label_selector.selector",
                ));
            }
        };
        if out.contains(&target) {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_already_added",
                "the same resource was given more than once",
            ));
        }
        out.push(target);
    }
    Ok(out)
}

fn target_resources(state: &HState, target: &FirewallTarget) -> Vec<(u64, &'static str)> {
    match target {
        FirewallTarget::Server(id) => vec![(*id, "server")],
        FirewallTarget::LabelSelector(sel) => {
            let terms = parse_selector(sel).unwrap_or_default();
            state
                .servers
                .values()
                .filter(|r| selector_matches(&terms, &r.server.labels))
                .map(|r| (r.server.id, "server"))
                .collect()
        }
    }
}

/// One action per target, on its servers and the firewall.
fn actions_for(state: &mut HState, command: &str, firewall: u64, targets: &[FirewallTarget]) -> Vec<Value> {
    targets
        .iter()
        .map(|t| {
            let mut resources = target_resources(state, t);
            resources.push((firewall, "firewall"));
            super::action_json(&new_action_on(state, command, resources))
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    name: Option<String>,
    label_selector: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

pub(super) async fn list(Extension(Project(project)): Extension<Project>, Query(q): Query<ListQuery>) -> Response {
    let terms = match q.label_selector.as_deref().map(parse_selector).transpose() {
        Ok(t) => t.unwrap_or_default(),
        Err(message) => return invalid_field("label_selector", &message),
    };
    let matching: Vec<Value> = {
        let state = lock(&project);
        state
            .firewalls
            .values()
            .filter(|f| q.name.as_ref().is_none_or(|n| &f.name == n))
            .filter(|f| selector_matches(&terms, &f.labels))
            .map(|f| firewall_json(&state, f))
            .collect()
    };
    match paginate(&matching, &q.page, 25, 50) {
        Ok((items, meta)) => Json(json!({"firewalls": items, "meta": meta})).into_response(),
        Err((field, message)) => invalid_field(field, message),
    }
}

#[derive(Deserialize)]
pub(super) struct CreateBody {
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RuleBody>,
    #[serde(default)]
    apply_to: Vec<ResourceBody>,
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn json_body<T>(body: JsonBody<T>) -> Result<T, Response> {
    body.map(|Json(b)| b).map_err(|_| error(StatusCode::BAD_REQUEST, "json_error", "invalid JSON in request body"))
}

pub(super) async fn create(Extension(Project(project)): Extension<Project>, body: JsonBody<CreateBody>) -> Response {
    let body = match json_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(name) = body.name.filter(|n| !n.is_empty() && n.chars().count() <= 128) else {
        return invalid_field("name", "must be 1 to 128 characters");
    };
    if let Err(response) = check_labels(&body.labels) {
        return response;
    }
    let rules = match check_rules(&body.rules) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let mut state = lock(&project);
    if state.firewalls.values().any(|f| f.name == name) {
        return error(StatusCode::CONFLICT, "uniqueness_error", "firewall name is already used");
    }
    let applied_to = match targets(&state, &body.apply_to, "apply_to") {
        Ok(t) => t,
        Err(response) => return response,
    };
    state.next_id += 1;
    let firewall = EmulatedFirewall {
        id: state.next_id,
        name,
        labels: body.labels,
        rules,
        applied_to,
        created: time::OffsetDateTime::now_utc(),
    };
    let actions = actions_for(&mut state, "apply_firewall", firewall.id, &firewall.applied_to);
    let value = firewall_json(&state, &firewall);
    state.firewalls.insert(firewall.id, firewall);
    (StatusCode::CREATED, Json(json!({"firewall": value, "actions": actions}))).into_response()
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", &format!("firewall with ID '{id}' not found"))
}

pub(super) async fn get_one(Extension(Project(project)): Extension<Project>, Path(id): Path<String>) -> Response {
    let state = lock(&project);
    match parse_id(&id).and_then(|n| state.firewalls.get(&n)) {
        Some(f) => Json(json!({"firewall": firewall_json(&state, f)})).into_response(),
        None => not_found(&id),
    }
}

#[derive(Deserialize)]
pub(super) struct UpdateBody {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

pub(super) async fn update(
    Extension(Project(project)): Extension<Project>,
    Path(id): Path<String>,
    body: JsonBody<UpdateBody>,
) -> Response {
    let body = match json_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.name.as_ref().is_some_and(|n| n.is_empty() || n.chars().count() > 128) {
        return invalid_field("name", "must be 1 to 128 characters");
    }
    if let Some(labels) = &body.labels
        && let Err(response) = check_labels(labels)
    {
        return response;
    }
    let mut state = lock(&project);
    let Some(n) = parse_id(&id).filter(|n| state.firewalls.contains_key(n)) else { return not_found(&id) };
    if let Some(name) = &body.name
        && state.firewalls.values().any(|f| f.name == *name && f.id != n)
    {
        return error(StatusCode::CONFLICT, "uniqueness_error", "firewall name is already used");
    }
    let Some(firewall) = state.firewalls.get_mut(&n) else { return not_found(&id) };
    if let Some(name) = body.name {
        firewall.name = name;
    }
    if let Some(labels) = body.labels {
        firewall.labels = labels;
    }
    let firewall = firewall.clone();
    Json(json!({"firewall": firewall_json(&state, &firewall)})).into_response()
}

pub(super) async fn delete(Extension(Project(project)): Extension<Project>, Path(id): Path<String>) -> Response {
    let mut state = lock(&project);
    let Some(firewall) = parse_id(&id).and_then(|n| state.firewalls.get(&n)) else { return not_found(&id) };
    if !firewall.applied_to.is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "resource_in_use", "firewall must not be in use to be deleted");
    }
    let n = firewall.id;
    state.firewalls.remove(&n);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(super) struct ActionBody {
    rules: Option<Vec<RuleBody>>,
    apply_to: Option<Vec<ResourceBody>>,
    remove_from: Option<Vec<ResourceBody>>,
}

pub(super) async fn action(
    Extension(Project(project)): Extension<Project>,
    Path((id, action)): Path<(String, String)>,
    body: JsonBody<ActionBody>,
) -> Response {
    let body = match json_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut state = lock(&project);
    let Some(current) = parse_id(&id).and_then(|n| state.firewalls.get(&n)).cloned() else { return not_found(&id) };
    let n = current.id;
    let actions: Vec<Value> = match action.as_str() {
        "set_rules" => {
            let Some(rules) = body.rules else { return invalid_field("rules", "is required") };
            let rules = match check_rules(&rules) {
                Ok(r) => r,
                Err(response) => return response,
            };
            if let Some(f) = state.firewalls.get_mut(&n) {
                f.rules = rules;
            }
            let set = super::action_json(&new_action_on(&mut state, "set_firewall_rules", vec![(n, "firewall")]));
            std::iter::once(set).chain(actions_for(&mut state, "apply_firewall", n, &current.applied_to)).collect()
        }
        "apply_to_resources" => {
            let Some(resources) = body.apply_to else { return invalid_field("apply_to", "is required") };
            let new = match targets(&state, &resources, "apply_to") {
                Ok(t) => t,
                Err(response) => return response,
            };
            if new.iter().any(|t| current.applied_to.contains(t)) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "firewall_already_applied",
                    "firewall is already applied to resource",
                );
            }
            let actions = actions_for(&mut state, "apply_firewall", n, &new);
            if let Some(f) = state.firewalls.get_mut(&n) {
                f.applied_to.extend(new);
            }
            actions
        }
        "remove_from_resources" => {
            let Some(resources) = body.remove_from else { return invalid_field("remove_from", "is required") };
            let gone = match targets(&state, &resources, "remove_from") {
                Ok(t) => t,
                Err(response) => return response,
            };
            if let Some(target) = gone.iter().find(|t| !current.applied_to.contains(t)) {
                let via_selector = matches!(target, FirewallTarget::Server(id)
                    if state.servers.get(id).is_some_and(|r| current.covers(*id, &r.server.labels)));
                return if via_selector {
                    error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "firewall_managed_by_label_selector",
                        "firewall is applied via a label selector and cannot be removed manually",
                    )
                } else {
                    error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "firewall_already_removed",
                        "firewall was already removed from the resource",
                    )
                };
            }
            let actions = actions_for(&mut state, "remove_firewall", n, &gone);
            if let Some(f) = state.firewalls.get_mut(&n) {
                f.applied_to.retain(|t| !gone.contains(t));
            }
            actions
        }
        _ => return error(StatusCode::NOT_FOUND, "not_found", "no such action"),
    };
    (StatusCode::CREATED, Json(json!({"actions": actions}))).into_response()
}
