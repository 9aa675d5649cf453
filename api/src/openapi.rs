//! The OpenAPI 3.1 document, built from the route table.
//!
//! Each route's request and success bodies are the API's own types, whose
//! schemas `utoipa` derives next to their serde attributes (field names,
//! types, formats, what is required, enums, descriptions from the doc
//! comments), so the document cannot describe a field the code does not
//! send. Every error is `application/problem+json` (`Problem`), under the
//! statuses the route can answer with. The document is assembled with
//! `utoipa`'s builders, not written by hand.

use std::collections::BTreeMap;

use axum::Json;
use serde_json::{Value, json};
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
};

use crate::routes::Components;
use crate::{Access, endpoints};

/// The OpenAPI 3.1 document of `endpoints()`.
pub fn openapi() -> Value {
    serde_json::to_value(document()).expect("the document serializes")
}

/// The document, assembled with `utoipa`'s builders from the route table.
fn document() -> OpenApi {
    let mut components: Components = Vec::new();
    let mut paths = PathsBuilder::new();
    for endpoint in endpoints() {
        let mut parameters: Vec<Parameter> = endpoint
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| {
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(path_schema(name)))
                    .build()
            })
            .collect();
        let has_path_ids = !parameters.is_empty();
        parameters.extend(endpoint.query.into_iter().flat_map(|params| params()));
        let takes_input = endpoint.body.is_some() || !parameters.is_empty();

        let mut success = ResponseBuilder::new().description("success");
        if let Some(doc) = endpoint.answer {
            success = success.content("application/json", content(doc(&mut components)));
        } else if let Some(kind) = non_json_answer(endpoint.path) {
            success = success.content(kind, ContentBuilder::new().build());
        }
        let mut operation = OperationBuilder::new()
            .summary(Some(endpoint.summary))
            .operation_id(Some(format!("{} {}", endpoint.method, endpoint.path)))
            .parameters(Some(parameters))
            .response(endpoint.ok.to_string(), success.build())
            .extensions(Some(
                ExtensionsBuilder::new()
                    .add("x-access", format!("{:?}", endpoint.access).to_lowercase())
                    .build(),
            ));
        for (status, why, applies) in [
            (
                "400",
                "the request is malformed or a field is invalid",
                takes_input,
            ),
            (
                "422",
                "a field names something that does not exist or breaks a rule",
                takes_input,
            ),
            (
                "401",
                "no credentials, or they are invalid or expired",
                endpoint.access != Access::Public,
            ),
            (
                "403",
                "the caller may not do this",
                !matches!(endpoint.access, Access::Public | Access::Provider),
            ),
            ("404", "no such resource", has_path_ids),
            (
                "409",
                "the request conflicts with the current state",
                endpoint.method != axum::http::Method::GET,
            ),
            (
                "429",
                "rate limited; see Retry-After",
                endpoint.path.ends_with("/holds") || endpoint.path.ends_with("/checkout"),
            ),
            (
                "503",
                "the answer cannot be given now; retry, see Retry-After",
                true,
            ),
        ] {
            if applies {
                let problem = ResponseBuilder::new().description(why).content(
                    "application/problem+json",
                    content(Ref::from_schema_name("Problem").into()),
                );
                operation = operation.response(status, problem.build());
            }
        }
        if !matches!(endpoint.access, Access::Public | Access::Provider) {
            operation = operation.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        if let Some((doc, required)) = endpoint.body {
            let body = RequestBodyBuilder::new()
                .required(Some(if required { Required::True } else { Required::False }))
                .content("application/json", content(doc(&mut components)));
            operation = operation.request_body(Some(body.build()));
        }
        let method = match endpoint.method {
            axum::http::Method::GET => HttpMethod::Get,
            axum::http::Method::PUT => HttpMethod::Put,
            axum::http::Method::POST => HttpMethod::Post,
            ref other => panic!("no OpenAPI method for {other}"),
        };
        paths = paths.path(endpoint.path, PathItem::new(method, operation.build()));
    }
    // One schema per name; two types of one name would shadow each other.
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    for (name, schema) in components {
        if let Some(previous) = schemas.insert(name.clone(), schema.clone()) {
            assert!(previous == schema, "two types are documented as {name}");
        }
    }
    let problem: Schema = serde_json::from_value(problem_schema()).expect("the problem schema is a schema");
    schemas.insert("Problem".into(), problem.into());
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("boxoffice")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Multi-region event ticketing. Field by field: docs/http-api.md.",
                )),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

fn content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// Path parameters: ids are integers, except customers and ticket codes.
fn path_schema(name: &str) -> RefOr<Schema> {
    let string = |pattern: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .into()
    };
    match name {
        "customer_id" => string("^[A-Za-z0-9._@+-]{1,128}$"),
        "code" => string("^[A-Za-z0-9-]{1,128}$"),
        "region_id" => string("^[a-z0-9-]{1,32}$"),
        _ => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .into(),
    }
}

/// The routes whose success is not JSON.
fn non_json_answer(path: &str) -> Option<&'static str> {
    if path == "/metrics" {
        Some("text/plain")
    } else if path.ends_with("/live") {
        Some("text/event-stream")
    } else if path.ends_with(".svg") {
        Some("image/svg+xml")
    } else {
        None
    }
}

/// RFC 9457 with a stable `code`; some codes add fields of their own.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "code": { "type": "string", "pattern": "^[a-z_]+$", "description": "Stable and machine-readable (docs/http-api.md lists them)" },
            "detail": { "type": "string" },
            "request_id": { "type": "string" }
        },
        "additionalProperties": true
    })
}

pub(crate) async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto;

    fn references(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target.clone());
                }
                map.values().for_each(|v| references(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, out)),
            _ => {}
        }
    }

    /// Whether `value` fits `schema`, as far as the keywords the document
    /// uses go (`$ref`, `type`, `properties`, `required`,
    /// `additionalProperties`, `items`, `enum`, `oneOf`, `allOf`); the
    /// reason when it does not.
    fn fits(schemas: &serde_json::Map<String, Value>, schema: &Value, value: &Value) -> Result<(), String> {
        if let Some(Value::String(target)) = schema.get("$ref") {
            let name = target.trim_start_matches("#/components/schemas/");
            return fits(schemas, &schemas[name], value).map_err(|e| format!("{name}: {e}"));
        }
        if let Some(Value::Array(options)) = schema.get("oneOf") {
            let fitting = options.iter().filter(|o| fits(schemas, o, value).is_ok()).count();
            if fitting != 1 {
                return Err(format!("{value} fits {fitting} of oneOf {options:?}"));
            }
        }
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for part in all {
                fits(schemas, part, value)?;
            }
        }
        if let Some(Value::Array(allowed)) = schema.get("enum")
            && !allowed.contains(value)
        {
            return Err(format!("{value} is not one of {allowed:?}"));
        }
        if let Some(kind) = schema.get("type") {
            let kinds: Vec<&str> = match kind {
                Value::String(k) => vec![k.as_str()],
                Value::Array(ks) => ks.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            if !kinds
                .iter()
                .any(|k| *k == actual || (*k == "number" && actual == "integer"))
            {
                return Err(format!("{value} is a {actual}, not {kinds:?}"));
            }
        }
        if let Value::Object(fields) = value {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("no field {name}"));
                }
            }
            for (name, field) in fields {
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => fits(schemas, property, field).map_err(|e| format!("{name}: {e}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("field {name} is not in the schema"));
                    }
                    None => {}
                }
            }
        }
        if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
            for element in items {
                fits(schemas, item, element)?;
            }
        }
        Ok(())
    }

    #[test]
    fn every_reference_resolves_and_bodies_are_typed() {
        let doc = openapi();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut found = Vec::new();
        references(&doc, &mut found);
        assert!(found.len() > 50, "{} references", found.len());
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "{target} does not resolve");
        }
        // Request bodies refuse fields they do not know, as the server does.
        assert_eq!(schemas["HoldBody"]["additionalProperties"], json!(false));
        assert_eq!(
            schemas["HoldStatus"]["enum"],
            json!(["active", "released", "expired", "confirmed"])
        );
        let hold = &doc["paths"]["/v1/events/{event_id}/holds"]["post"];
        assert_eq!(hold["requestBody"]["required"], json!(true));
        assert_eq!(
            hold["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
            json!("#/components/schemas/Hold")
        );
        assert!(hold["responses"]["429"].is_object());
        // A POST or PUT that takes a body says so, except the ones that take none.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let bodiless = path.ends_with("/publish")
                    || path.ends_with("/remove")
                    || path.ends_with("/cancel") && path.starts_with("/v1/events/{event_id}/cancel")
                    || path.ends_with("/check-in") && path.contains("{code}");
                if (method == "post" || method == "put") && !bodiless {
                    assert!(
                        operation["requestBody"].is_object(),
                        "{method} {path} documents no body"
                    );
                }
            }
        }
    }

    #[test]
    fn served_shapes_fit_their_schemas() {
        use booking::{Currency, CustomerId, EventId, HoldId};
        let doc = openapi();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let money = dto::Money {
            amount_minor: 4_500,
            currency: Currency::EUR,
        };
        let hold = dto::Hold {
            hold_id: HoldId(7),
            event_id: EventId(1),
            holder: CustomerId::new("u.1.alice").unwrap(),
            seats: vec!["A-1-1".into()],
            ga: None,
            created_at_ms: 1,
            expires_at_ms: 2,
            created_at: Some("2026-12-04T10:00:00+01:00".into()),
            expires_at: None,
            extended: false,
            status: dto::HoldStatus::Active,
            order_id: None,
            total: money,
            display_total: None,
            expires_in_ms: Some(5),
        };
        let hold = serde_json::to_value(hold).unwrap();
        fits(schemas, &json!({ "$ref": "#/components/schemas/Hold" }), &hold).unwrap();
        // And the checker can fail: a missing field, a wrong type, a bad enum.
        for (field, value) in [
            ("hold_id", Value::Null),
            ("status", json!("kept")),
            ("seats", json!("A-1-1")),
        ] {
            let mut broken = hold.clone();
            broken[field] = value;
            assert!(
                fits(schemas, &json!({ "$ref": "#/components/schemas/Hold" }), &broken).is_err(),
                "a hold with {field} = {} fits",
                broken[field]
            );
        }
        let mut missing = hold.as_object().unwrap().clone();
        missing.remove("total");
        assert!(
            fits(
                schemas,
                &json!({ "$ref": "#/components/schemas/Hold" }),
                &Value::Object(missing)
            )
            .is_err()
        );
    }
}
