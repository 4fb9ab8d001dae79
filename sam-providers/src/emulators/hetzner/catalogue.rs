//! The Hetzner emulator's catalogue: server types, locations, datacenters and
//! images, each listed (with the reference's `name` filter, `sort` and
//! pagination) and read by id, in the shapes of the Cloud API reference.

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageQuery, error, invalid_field, paginate, sort_values};

pub(super) struct TypeDef {
    pub(super) id: u64,
    pub(super) name: &'static str,
    cores: u32,
    memory: f64,
    disk: u32,
    pub(super) arch: &'static str,
    deprecated: bool,
    hourly: &'static str,
    monthly: &'static str,
}

const fn type_def(
    id: u64,
    name: &'static str,
    (cores, memory, disk): (u32, f64, u32),
    arch: &'static str,
    deprecated: bool,
    (hourly, monthly): (&'static str, &'static str),
) -> TypeDef {
    TypeDef { id, name, cores, memory, disk, arch, deprecated, hourly, monthly }
}

pub(super) const TYPES: &[TypeDef] = &[
    type_def(22, "cx22", (2, 4.0, 40), "x86", true, ("0.0066", "4.1500")),
    type_def(104, "cx23", (2, 4.0, 40), "x86", false, ("0.0080", "4.9900")),
    type_def(105, "cx33", (4, 8.0, 80), "x86", false, ("0.0128", "7.9900")),
    type_def(106, "cx43", (8, 16.0, 160), "x86", false, ("0.0208", "12.9900")),
    type_def(107, "cx53", (16, 32.0, 320), "x86", false, ("0.0384", "23.9900")),
    type_def(45, "cax11", (2, 4.0, 40), "arm", false, ("0.0072", "4.4900")),
    type_def(96, "cpx22", (2, 4.0, 80), "x86", false, ("0.0120", "7.4900")),
];

pub(super) struct LocationDef {
    pub(super) id: u64,
    pub(super) name: &'static str,
    description: &'static str,
    country: &'static str,
    city: &'static str,
    zone: &'static str,
    latitude: f64,
    longitude: f64,
}

pub(super) const LOCATIONS: &[LocationDef] = &[
    LocationDef {
        id: 1,
        name: "fsn1",
        description: "Falkenstein DC Park 1",
        country: "DE",
        city: "Falkenstein",
        zone: "eu-central",
        latitude: 50.47612,
        longitude: 12.370071,
    },
    LocationDef {
        id: 2,
        name: "nbg1",
        description: "Nuremberg DC Park 1",
        country: "DE",
        city: "Nuremberg",
        zone: "eu-central",
        latitude: 49.452102,
        longitude: 11.076665,
    },
    LocationDef {
        id: 3,
        name: "hel1",
        description: "Helsinki DC Park 1",
        country: "FI",
        city: "Helsinki",
        zone: "eu-central",
        latitude: 60.169855,
        longitude: 24.938379,
    },
    LocationDef {
        id: 4,
        name: "ash",
        description: "Ashburn, VA",
        country: "US",
        city: "Ashburn, VA",
        zone: "us-east",
        latitude: 39.045821,
        longitude: -77.487073,
    },
];

/// `(id, name, os_flavor, os_version, architecture, type)`: system images,
/// and the `docker-ce` app (Ubuntu 24.04 with Docker CE installed, as
/// Hetzner's apps repository builds it).
pub(super) const IMAGES: &[(u64, &str, &str, &str, &str, &str)] = &[
    (161_547_269, "ubuntu-24.04", "ubuntu", "24.04", "x86", "system"),
    (103_908_070, "ubuntu-22.04", "ubuntu", "22.04", "x86", "system"),
    (114_690_387, "debian-12", "debian", "12", "x86", "system"),
    (262_230_512, "debian-13", "debian", "13", "x86", "system"),
    (161_547_270, "ubuntu-24.04", "ubuntu", "24.04", "arm", "system"),
    (187_562_941, "docker-ce", "ubuntu", "24.04", "x86", "app"),
    (187_562_942, "docker-ce", "ubuntu", "24.04", "arm", "app"),
];

/// The image `name_or_id` (the reference's `image` of a server: an ID or a
/// name) for `architecture`.
pub(super) fn find_image(
    name_or_id: &str,
    architecture: &str,
) -> Option<&'static (u64, &'static str, &'static str, &'static str, &'static str, &'static str)> {
    let id = name_or_id.parse::<u64>().ok();
    IMAGES.iter().find(|i| (Some(i.0) == id || i.1 == name_or_id) && i.4 == architecture)
}

/// Whether a type is offered in a location (ash has no shared x86 types
/// but the cpx line, as on the real service).
fn offered(t: &TypeDef, l: &LocationDef) -> bool {
    l.name != "ash" || t.name.starts_with("cpx")
}

/// The datacenter of a location (one each, `<location>-dc14`).
pub(super) fn datacenter_id(l: &LocationDef) -> u64 {
    l.id
}

pub(super) fn location_json(l: &LocationDef) -> Value {
    json!({"id": l.id, "name": l.name, "description": l.description, "country": l.country, "city": l.city,
           "latitude": l.latitude, "longitude": l.longitude, "network_zone": l.zone})
}

pub(super) fn type_json(t: &TypeDef) -> Value {
    let offered_in: Vec<&LocationDef> = LOCATIONS.iter().filter(|l| offered(t, l)).collect();
    let prices: Vec<Value> = offered_in
        .iter()
        .map(|l| {
            json!({"location": l.name,
                   "price_hourly": {"net": t.hourly, "gross": t.hourly},
                   "price_monthly": {"net": t.monthly, "gross": t.monthly},
                   "included_traffic": 21_990_232_555_520_u64,
                   "price_per_tb_traffic": {"net": "1.0000", "gross": "1.1900"}})
        })
        .collect();
    let deprecation = t
        .deprecated
        .then(|| json!({"announced": "2025-10-16T06:00:00+00:00", "unavailable_after": "2026-01-16T06:00:00+00:00"}));
    let locations: Vec<Value> =
        offered_in.iter().map(|l| json!({"id": l.id, "name": l.name, "deprecation": deprecation.clone()})).collect();
    json!({"id": t.id, "name": t.name, "description": t.name.to_uppercase(), "category": "cost_optimized",
           "cores": t.cores, "memory": t.memory, "disk": t.disk, "storage_type": "local", "cpu_type": "shared",
           "architecture": t.arch, "deprecated": t.deprecated, "deprecation": deprecation, "prices": prices,
           "locations": locations})
}

pub(super) fn datacenter_json(l: &LocationDef) -> Value {
    let ids: Vec<u64> = TYPES.iter().filter(|t| offered(t, l)).map(|t| t.id).collect();
    let available: Vec<u64> = TYPES.iter().filter(|t| offered(t, l) && !t.deprecated).map(|t| t.id).collect();
    json!({"id": datacenter_id(l), "name": format!("{}-dc14", l.name), "description": format!("{} DC 14", l.city),
           "location": location_json(l),
           "server_types": {"supported": ids, "available": available, "available_for_migration": available}})
}

pub(super) fn image_json(image: &(u64, &str, &str, &str, &str, &str)) -> Value {
    let (id, name, flavor, version, arch, kind) = *image;
    let description = if kind == "app" {
        name.to_owned()
    } else {
        format!("{} {}", flavor[..1].to_uppercase() + &flavor[1..], version)
    };
    json!({"id": id, "type": kind, "status": "available", "name": name,
           "description": description,
           "image_size": null, "disk_size": 5, "created": "2024-04-25T00:00:00+00:00", "created_from": null,
           "bound_to": null, "os_flavor": flavor, "os_version": version, "rapid_deploy": true,
           "protection": {"delete": false}, "deprecated": null, "deleted": null, "labels": {}, "architecture": arch})
}

#[derive(Deserialize, Default)]
pub(super) struct CatalogueQuery {
    name: Option<String>,
    sort: Option<String>,
    architecture: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// A listing: filtered by name (and what else applies), sorted, paged.
fn listing(key: &str, mut items: Vec<Value>, q: &CatalogueQuery) -> Result<Value, Response> {
    if let Some(name) = &q.name {
        items.retain(|v| v["name"] == name.as_str());
    }
    if let Some(arch) = &q.architecture {
        items.retain(|v| v["architecture"] == arch.as_str());
    }
    let sort: Vec<String> = q.sort.iter().flat_map(|s| s.split(',').map(str::to_owned)).collect();
    sort_values(&mut items, &sort, &["id", "name", "created"])?;
    match paginate(&items, &q.page, 25, 50) {
        Ok((page, meta)) => Ok(json!({key: page, "meta": meta})),
        Err((field, message)) => Err(invalid_field(field, message)),
    }
}

fn answer(listed: Result<Value, Response>) -> Response {
    match listed {
        Ok(value) => Json(value).into_response(),
        Err(response) => response,
    }
}

/// The query, or the reference's `invalid_input` for one that does not parse.
type CatalogueParams = Result<Query<CatalogueQuery>, axum::extract::rejection::QueryRejection>;

fn params(q: CatalogueParams) -> Result<CatalogueQuery, Response> {
    q.map(|Query(q)| q).map_err(|e| invalid_field("query", &e.body_text()))
}

fn by_id(key: &str, id: &str, found: impl Fn(u64) -> Option<Value>) -> Response {
    match id.parse::<u64>().ok().and_then(found) {
        Some(item) => Json(json!({key: item})).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", &format!("{key} with ID '{id}' not found")),
    }
}

pub(super) async fn server_types(q: CatalogueParams) -> Response {
    answer(params(q).and_then(|q| listing("server_types", TYPES.iter().map(type_json).collect(), &q)))
}

pub(super) async fn server_type(Path(id): Path<String>) -> Response {
    by_id("server_type", &id, |id| TYPES.iter().find(|t| t.id == id).map(type_json))
}

pub(super) async fn locations(q: CatalogueParams) -> Response {
    answer(params(q).and_then(|q| listing("locations", LOCATIONS.iter().map(location_json).collect(), &q)))
}

pub(super) async fn location(Path(id): Path<String>) -> Response {
    by_id("location", &id, |id| LOCATIONS.iter().find(|l| l.id == id).map(location_json))
}

pub(super) async fn datacenters(q: CatalogueParams) -> Response {
    let listed = params(q).and_then(|q| listing("datacenters", LOCATIONS.iter().map(datacenter_json).collect(), &q));
    // The reference's list also names the recommended datacenter.
    answer(listed.map(|mut value| {
        value["recommendation"] = json!(datacenter_id(&LOCATIONS[0]));
        value
    }))
}

pub(super) async fn datacenter(Path(id): Path<String>) -> Response {
    by_id("datacenter", &id, |id| LOCATIONS.iter().find(|l| datacenter_id(l) == id).map(datacenter_json))
}

pub(super) async fn images(q: CatalogueParams) -> Response {
    let q = match params(q) {
        Ok(q) => q,
        Err(response) => return response,
    };
    if q.kind.as_deref().is_some_and(|k| !["system", "snapshot", "backup", "app"].contains(&k)) {
        return invalid_field("type", "must be one of system, snapshot, backup, app");
    }
    // System and app images exist here (no snapshots or backups).
    let all = IMAGES.iter().filter(|i| q.kind.as_deref().is_none_or(|k| k == i.5)).map(image_json).collect();
    answer(listing("images", all, &q))
}

pub(super) async fn image(Path(id): Path<String>) -> Response {
    by_id("image", &id, |id| IMAGES.iter().find(|i| i.0 == id).map(image_json))
}
