//! The OpenAPI 3.1 document, built from the route table.

use axum::Json;
use serde_json::json;

use crate::{Access, endpoints};

/// The OpenAPI 3.1 document of `endpoints()`.
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for endpoint in endpoints() {
        let parameters: Vec<serde_json::Value> = endpoint
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let security = match endpoint.access {
            Access::Public | Access::Provider => json!([]),
            _ => json!([{ "bearer": [] }]),
        };
        let mut operation = json!({
            "summary": endpoint.summary,
            "operationId": format!("{} {}", endpoint.method, endpoint.path),
            "x-access": format!("{:?}", endpoint.access).to_lowercase(),
            "parameters": parameters,
            "security": security,
            "responses": {
                endpoint.ok.to_string(): { "description": "success" },
                "default": {
                    "description": "an error",
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            }
        });
        if endpoint.method == axum::http::Method::POST {
            operation["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": { "type": "object" } } }
            });
        }
        let item = paths.entry(endpoint.path.to_owned()).or_insert_with(|| json!({}));
        item[endpoint.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "boxoffice",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-region event ticketing. Field-level shapes: docs/http-api.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "code", "detail"],
                    "properties": {
                        "type": { "type": "string" }, "title": { "type": "string" },
                        "status": { "type": "integer" }, "code": { "type": "string" },
                        "detail": { "type": "string" }, "request_id": { "type": "string" }
                    }
                }
            }
        }
    })
}

pub(crate) async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi())
}
