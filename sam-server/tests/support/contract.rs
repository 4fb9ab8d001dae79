//! The OpenAPI document as a contract: [`Contract::check`] fails a test when a
//! response's status is not documented for its operation, or its JSON body
//! does not match the documented schema (JSON Schema 2020-12, formats checked).

#[path = "../../../sam-providers/tests/support/path_template.rs"]
mod path_template;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

pub struct Contract {
    document: Value,
    /// Compiled validators by JSON pointer of the response schema.
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

/// The draft OpenAPI 3.1 schemas are written in.
const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

impl Contract {
    pub fn new(document: Value) -> Self {
        Self { document, validators: Mutex::new(HashMap::new()) }
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The documented path template for a request path (literal segments win
    /// over `{parameters}`), or `None`.
    pub fn template_for(&self, path: &str) -> Option<String> {
        path_template::template_for(self.document["paths"].as_object()?.keys(), path)
    }

    /// Checks one exchange. `path` may carry a query string.
    pub fn check(&self, method: &str, path: &str, status: u16, content_type: Option<&str>, body: &str) {
        let path = path.split('?').next().unwrap_or(path);
        let Some(template) = self.template_for(path) else {
            // Only the API's own fallback may answer an undocumented /api path.
            if path.starts_with("/api/") {
                assert_eq!(status, 404, "{method} {path} is not in the OpenAPI document but answered {status}");
            }
            return;
        };
        let method = method.to_ascii_lowercase();
        let operation = &self.document["paths"][&template][&method];
        assert!(operation.is_object(), "{method} {template} is not documented");
        let responses = &operation["responses"];
        let key = status.to_string();
        let response = &responses[&key];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which the document does not list (it lists {:?})",
            responses.as_object().map(|o| o.keys().collect::<Vec<_>>())
        );
        let Some(content) = response["content"].as_object() else {
            assert!(body.is_empty(), "{method} {template} {status}: documented without a body, got {body:?}");
            return;
        };
        let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_owned();
        assert!(
            content.contains_key(&media),
            "{method} {template} {status}: content type {media:?} is not documented ({:?})",
            content.keys().collect::<Vec<_>>()
        );
        if media != "application/json" {
            return;
        }
        let instance: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: body is not JSON ({e}): {body:?}"));
        let pointer = format!("/paths/{}/{method}/responses/{key}/content/application~1json/schema", escape(&template));
        let validator = self.validator(&pointer);
        let errors: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the body does not match the documented schema:\n  {}\nbody: {instance}",
            errors.join("\n  ")
        );
    }

    fn validator(&self, pointer: &str) -> std::sync::Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(pointer.to_owned())
            .or_insert_with(|| {
                let schema = self.document.pointer(pointer).unwrap_or_else(|| panic!("no schema at {pointer}"));
                let mut root = json!({ "$schema": DIALECT, "components": self.document["components"].clone() });
                if let (Some(root), Some(schema)) = (root.as_object_mut(), schema.as_object()) {
                    for (k, v) in schema {
                        root.insert(k.clone(), v.clone());
                    }
                }
                std::sync::Arc::new(
                    jsonschema::options()
                        .should_validate_formats(true)
                        .build(&root)
                        .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}")),
                )
            })
            .clone()
    }
}

/// JSON pointer escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
