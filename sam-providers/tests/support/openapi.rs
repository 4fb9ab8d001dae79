//! A provider's published OpenAPI 3.0 description as a contract for our
//! emulator of it: [`Contract::check`] fails the test when a response's
//! status is not documented for its operation, or its JSON body does not
//! match the documented schema. [`Contract::uncovered`] names the listed
//! operations no successful exchange exercised.
//!
//! OpenAPI 3.0 schemas are JSON Schema draft 4 with extensions; `nullable:
//! true` is rewritten as a union with `null` before compiling, and `oneOf`
//! as `anyOf`: the descriptions use `oneOf` for alternatives that do not
//! exclude each other (none forbids extra properties), so the real APIs'
//! own answers match several (Cloudflare's `GET /ips` matches both its
//! `ips` and `ips_jdcloud` shapes).

#![allow(dead_code)] // each test file uses part of it

#[path = "path_template.rs"]
mod path_template;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

pub struct Contract {
    name: &'static str,
    document: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
    /// `(METHOD, template)` answered with a 2xx and checked.
    covered: Mutex<BTreeSet<(String, String)>>,
    /// Where the description is known to be wrong about the real API:
    /// `(operation "METHOD /template", instance path suffix)`.
    tolerated: Mutex<Vec<(String, String)>>,
}

/// The vendored description of `provider` (`tests/contracts/<provider>.openapi.json`).
pub fn load(provider: &'static str) -> Contract {
    let path = format!("{}/tests/contracts/{provider}.openapi.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut document: Value = serde_json::from_str(&text).unwrap();
    rewrite(&mut document);
    Contract {
        name: provider,
        document,
        validators: Mutex::default(),
        covered: Mutex::default(),
        tolerated: Mutex::default(),
    }
}

/// `nullable: true` (OpenAPI 3.0) → a union with `null` (JSON Schema);
/// `oneOf` → `anyOf`.
fn rewrite(node: &mut Value) {
    match node {
        Value::Object(map) => {
            for value in map.values_mut() {
                rewrite(value);
            }
            if let Some(alternatives) = map.remove("oneOf") {
                map.insert("anyOf".into(), alternatives);
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                match map.get("type").cloned() {
                    Some(Value::String(t)) => {
                        map.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(values)) = map.get_mut("enum") {
                            values.push(Value::Null);
                        }
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        Value::Array(values) => values.iter_mut().for_each(rewrite),
        _ => {}
    }
}

/// Cloudflare describes its error answers as `allOf` [the operation's
/// success answer, the common failure], which no body can satisfy
/// (`success` would be both `true` and `false`); for an error status only
/// the failure part is checked.
fn failure_part(schema: Value, status: u16) -> Value {
    if status < 400 {
        return schema;
    }
    let failure = schema["allOf"].as_array().and_then(|parts| {
        parts.iter().find(|p| p["$ref"].as_str().is_some_and(|r| r.ends_with("api-response-common-failure"))).cloned()
    });
    failure.unwrap_or(schema)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Contract {
    /// Ignores mismatches at instance paths ending in `suffix` in the answers
    /// of `operation` (`"GET /certificates"`), where the real API is known
    /// to answer otherwise than its description says; `why` is for the
    /// reader (tests/contracts/README.md lists each).
    pub fn tolerate(&self, operation: &str, suffix: &str, why: &str) {
        assert!(!why.is_empty());
        self.tolerated.lock().unwrap().push((operation.to_owned(), suffix.to_owned()));
    }

    /// The documented template for a request path (literal segments win).
    pub fn template_for(&self, path: &str) -> Option<String> {
        path_template::template_for(self.document["paths"].as_object()?.keys(), path)
    }

    /// The response object for `status`: exact, then `4XX`-style, then
    /// `default`; `$ref`s to `#/components/responses` followed.
    fn response(&self, operation: &Value, status: u16) -> Option<(String, Value)> {
        let responses = operation["responses"].as_object()?;
        let class = format!("{}xx", status / 100);
        let key = [status.to_string(), class.clone(), class.to_ascii_uppercase(), "default".into()]
            .into_iter()
            .find(|k| responses.contains_key(k))?;
        let mut response = responses[&key].clone();
        while let Some(reference) = response["$ref"].as_str() {
            let target = reference.trim_start_matches('#').to_owned();
            response = self.document.pointer(&target)?.clone();
        }
        Some((key, response))
    }

    /// Checks one exchange: `path` without the API prefix, may carry a query.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &str) {
        let provider = self.name;
        let path = path.split('?').next().unwrap_or(path);
        let template = self
            .template_for(path)
            .unwrap_or_else(|| panic!("{provider}: {method} {path} is not in the vendored description"));
        let method_lower = method.to_ascii_lowercase();
        let operation = &self.document["paths"][&template][&method_lower];
        assert!(operation.is_object(), "{provider}: {method} {template} is not documented");
        let Some((key, response)) = self.response(operation, status) else {
            panic!(
                "{provider}: {method} {template} answered {status}, which the description does not list ({:?})",
                operation["responses"].as_object().map(|o| o.keys().collect::<Vec<_>>())
            );
        };
        let schema = response.pointer("/content/application~1json/schema").cloned().map(|s| failure_part(s, status));
        if let Some(schema) = schema {
            let instance: Value = serde_json::from_str(body).unwrap_or_else(|e| {
                panic!("{provider}: {method} {template} {status}: the body is not JSON ({e}): {body:?}")
            });
            let id = format!("{method_lower} {template} {key}");
            let validator = self.validator(&id, &schema);
            let operation_name = format!("{} {template}", method.to_ascii_uppercase());
            let tolerated = self.tolerated.lock().unwrap().clone();
            let errors: Vec<String> = validator
                .iter_errors(&instance)
                .filter(|e| {
                    let at = e.instance_path().to_string();
                    !tolerated.iter().any(|(op, suffix)| *op == operation_name && at.ends_with(suffix.as_str()))
                })
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{provider}: {method} {template} {status}: the body does not match the description:\n  {}\nbody: {:.1500}",
                errors.iter().take(12).cloned().collect::<Vec<_>>().join("\n  "),
                instance.to_string()
            );
        }
        if (200..300).contains(&status) {
            self.covered.lock().unwrap().insert((method.to_ascii_uppercase(), template));
        }
    }

    fn validator(&self, id: &str, schema: &Value) -> Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(id.to_owned())
            .or_insert_with(|| {
                let mut root = Map::new();
                root.insert("components".into(), self.document["components"].clone());
                if let Some(schema) = schema.as_object() {
                    root.extend(schema.clone());
                }
                Arc::new(
                    jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft4)
                        .should_validate_formats(true)
                        .build(&Value::Object(root))
                        .unwrap_or_else(|e| panic!("{}: the schema of {id} does not compile: {e}", self.name)),
                )
            })
            .clone()
    }

    /// The operations of `tests/contracts/<provider>.operations` that no
    /// successful exchange exercised.
    pub fn uncovered(&self) -> Vec<String> {
        let path = format!("{}/tests/contracts/{}.operations", env!("CARGO_MANIFEST_DIR"), self.name);
        let covered = self.covered.lock().unwrap();
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let (method, template) = l.split_once(' ')?;
                (!covered.contains(&(method.to_owned(), template.trim().to_owned()))).then(|| l.to_owned())
            })
            .collect()
    }
}

/// An HTTP client whose every exchange is checked against `contract`.
pub struct Checked<'a> {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub contract: &'a Contract,
}

impl<'a> Checked<'a> {
    /// The same client, base and contract (give it another token).
    pub fn clone_with_token(&self) -> Checked<'a> {
        Checked { http: self.http.clone(), base: self.base.clone(), token: self.token.clone(), contract: self.contract }
    }

    /// Sends `method path` (relative to the base) with `body`; checks and
    /// returns status and JSON (Null when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method_value = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method_value, format!("{}{path}", self.base));
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.contract.check(method, path, status, &text);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
